"""`journeys forget` looks the customer up, then posts the erasure naming only its id;
`journeys export` looks it up, then writes what the API's export route answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from journeys.cli.privacy.export import export_command
from journeys.cli.privacy.forget import forget_command
from journeys.sdk.client import ApiClient


def _client(seen: list[httpx.Request], tenant: str = "acme") -> ApiClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        journey = {"tenant": tenant, "customer_id": "cus_00000000000000aa"}
        if request.method == "GET" and request.url.path.endswith("/export"):
            header = {"export_version": 1, "tenant": request.url.params["tenant"]}
            return httpx.Response(200, json={**header, "customer_id": "cus_00000000000000aa"})
        if request.method == "GET":
            return httpx.Response(200, json=journey)
        body = json.loads(request.content)
        return httpx.Response(
            202,
            json={
                "event_id": "erasure-1",
                "tenant": body["tenant"],
                "customer_id": "cus_00000000000000aa",
            },
        )

    return ApiClient("http://api.test", "t" * 20, transport=httpx.MockTransport(answer))


def test_forget_posts_the_customer_id_and_the_reference_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[httpx.Request] = []
    status = forget_command(_client(seen), "email:ann@example.org", "acme", "DSR-7")
    assert status == 0
    get, post = seen
    assert get.url.params["email"] == "ann@example.org"
    assert post.url.path == "/v1/customers/cus_00000000000000aa/erasure"
    assert json.loads(post.content) == {"tenant": "acme", "grounds": "DSR-7"}
    assert b"ann@" not in post.content
    assert "cus_00000000000000aa" in capsys.readouterr().out


def test_forget_refuses_a_customer_of_another_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[httpx.Request] = []
    status = forget_command(
        _client(seen, tenant="northwind"), "cus_00000000000000aa", "acme", "DSR-7"
    )
    assert status == 1
    assert [r.method for r in seen] == ["GET"]
    assert "northwind" in capsys.readouterr().err


def test_export_writes_the_served_journey_under_a_header(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    target = tmp_path / "export.json"
    assert export_command(_client(seen), "email:ann@example.org", "acme", target) == 0
    document = json.loads(target.read_text())
    assert document["export_version"] == 1
    assert (document["tenant"], document["customer_id"]) == ("acme", "cus_00000000000000aa")
    lookup, export = seen
    assert lookup.url.params["email"] == "ann@example.org"
    assert export.url.path == "/v1/customers/cus_00000000000000aa/export"  # the API builds it
    assert export.url.params["tenant"] == "acme"
    assert b"ann@" not in export.url.raw_path


def test_export_refuses_another_tenant_s_customer(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    target = tmp_path / "export.json"
    assert (
        export_command(_client(seen, tenant="northwind"), "cus_00000000000000aa", "acme", target)
        == 1
    )
    assert not target.exists()
    assert [r.url.path for r in seen] == ["/v1/journeys/cus_00000000000000aa"]
