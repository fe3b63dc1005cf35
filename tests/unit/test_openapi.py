"""The OpenAPI document kept in the repository describes exactly the routes the API serves."""

from __future__ import annotations

import json
from importlib import resources

from journeys.server.api import routes


def document() -> dict[str, object]:
    return json.loads(resources.files("journeys.server").joinpath("openapi.json").read_text())


def test_every_route_is_documented_and_nothing_else() -> None:
    served = {(route.method.lower(), route.path) for route in routes()}  # type: ignore[attr-defined]
    paths = document()["paths"]
    assert isinstance(paths, dict)
    documented = {(method, path) for path, item in paths.items() for method in item}
    assert documented == served


def test_data_endpoints_require_a_bearer_token() -> None:
    doc = document()
    assert doc["security"] == [{"bearer": []}]
    paths = doc["paths"]
    assert isinstance(paths, dict)
    open_paths = {
        p for p, item in paths.items() for op in item.values() if op.get("security") == []
    }
    assert open_paths == {"/health", "/metrics", "/v1/openapi.json"}
