"""People acting on flags through the API of a real worker: the action is written as an event,
stitched into the flag's journey, and the flag's handling shows who did what.

Polls until the flag shows the change (no timed assertion: the wait only bounds a hang).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from journeys.cli import app
from journeys.demo import demo_lines
from journeys.devbroker import find_free_port
from tests.integration.ledger_log import (
    WorkerProcess,
    create,
    kafka_for_test,
    produce,
    sdk_keyed,
    wait_for,
    write_config,
)

MANAGER = "manager-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
NORTHWIND = "northwind-manager-token-012345"
USER = "sam@acme-motors"


@dataclass
class Api:
    """One worker's API, fed the demo journeys."""

    url: str

    def get(self, path: str, token: str = MANAGER, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(self.url + path, params=params, headers=headers, timeout=10)

    def act(self, flag_id: str, token: str = MANAGER, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        path = f"{self.url}/v1/flags/{flag_id}/actions"
        return httpx.post(path, json=body, headers=headers, timeout=10)

    def flag(self, flag_id: str) -> dict[str, Any] | None:
        flags = self.get("/v1/flags", limit=500).json()["flags"]
        return next((f for f in flags if f["flag_id"] == flag_id), None)

    def wait_until(self, flag_id: str, holds: Callable[[dict[str, Any]], bool], what: str) -> None:
        def shown() -> bool:
            found = self.flag(flag_id)
            return found is not None and holds(found)

        wait_for(shown, 90, what, 0.5)


@pytest.fixture(scope="module")
def api(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    kafka = kafka_for_test(bootstrap_servers, partitions=2)
    names = create(kafka)
    tmp = tmp_path_factory.mktemp("flag-actions")
    config = write_config(tmp / "journeys.toml", kafka)
    with config.open("a") as handle:
        handle.write(
            "[api]\ntokens = [\n"
            f'  {{token = "{MANAGER}", tenants = ["acme-motors"], user = "{USER}", '
            'role = "manager"},\n'
            f'  {{token = "{VIEWER}", tenants = ["acme-motors"]}},\n'
            f'  {{token = "{NORTHWIND}", tenants = ["northwind"], user = "nia", role = "manager"}},\n'
            "]\n"
        )
    port = find_free_port()
    worker = WorkerProcess(config, tmp / "w", tmp / "w.log", api_port=port).start()
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(demo_lines())))
    result = Api(f"http://127.0.0.1:{port}")

    def served() -> bool:
        try:
            return len(result.get("/v1/flags", limit=500).json()["flags"]) >= 2
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    try:
        wait_for(served, 90, "the worker serving the demo's flags", 1.0)
        yield result
    finally:
        assert worker.stop() == 0, worker.log_text()[-3000:]


def _acme_flags(api: Api) -> list[dict[str, Any]]:
    flags = api.get("/v1/flags", limit=500, status="open").json()["flags"]
    return sorted((f for f in flags if f["tenant"] == "acme-motors"), key=lambda f: f["flag_id"])


def test_a_manager_acknowledges_resolves_and_takes_a_flag(api: Api) -> None:
    flag_id = _acme_flags(api)[0]["flag_id"]
    acked = api.act(flag_id, action="acknowledge", note="looking into it")
    assert acked.status_code == 202, acked.text
    assert acked.json()["event_id"].startswith("act_")
    api.wait_until(
        flag_id,
        lambda f: f.get("handling", {}).get("acknowledged_by") == USER,
        "the flag showing who acknowledged it",
    )
    resolved = api.act(flag_id, action="resolve", note="booking moved to the 14th in both systems")
    assert resolved.status_code == 202, resolved.text
    api.wait_until(
        flag_id,
        lambda f: f["status"] == "resolved" and f["handling"]["state"] == "resolved",
        "the flag resolved by hand",
    )
    flag = api.flag(flag_id)
    assert flag is not None
    assert flag["handling"]["resolved_by"] == USER
    assert "booking moved to the 14th in both systems" in flag["resolution"]
    assert [a["action"] for a in flag["handling"]["actions"]] == ["acknowledge", "resolve"]

    assert api.get("/v1/flags", handling="mine").json()["flags"] == []
    assert api.act(flag_id, action="assign", assignee=USER).status_code == 202
    api.wait_until(flag_id, lambda f: f["handling"]["assignee"] == USER, "the flag assigned")
    mine = api.get("/v1/flags", handling="mine").json()["flags"]
    assert [f["flag_id"] for f in mine] == [flag_id]


def test_a_viewer_is_refused(api: Api) -> None:
    flag_id = _acme_flags(api)[-1]["flag_id"]
    refused = api.act(flag_id, VIEWER, action="acknowledge")
    assert refused.status_code == 403
    assert "manager role" in refused.json()["error"]["message"]
    me = api.get("/v1/me", VIEWER).json()
    assert (me["role"], me["may_act_on_flags"]) == ("viewer", False)


def test_another_tenants_flag_is_answered_like_a_missing_one(api: Api) -> None:
    flag_id = _acme_flags(api)[-1]["flag_id"]
    missing = "flg_0123456789abcdef"
    other = api.act(flag_id, NORTHWIND, action="acknowledge")
    unknown = api.act(missing, NORTHWIND, action="acknowledge")
    assert other.status_code == unknown.status_code == 404
    assert other.text.replace(flag_id, missing) == unknown.text
    bad = api.act(flag_id, action="assign")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("assignee: ")


def test_journeys_flag_ack_from_the_command_line(api: Api) -> None:
    flag_id = _acme_flags(api)[-1]["flag_id"]
    result = CliRunner().invoke(
        app,
        ["flag", "ack", flag_id, "--note", "on it", "--api", api.url, "--token", MANAGER],
    )
    assert result.exit_code == 0, result.output
    assert "event act_" in result.stdout
    api.wait_until(
        flag_id,
        lambda f: f.get("handling", {}).get("acknowledged_by") == USER,
        "the flag acknowledged from the command line",
    )
    refused = CliRunner().invoke(app, ["flag", "ack", flag_id, "--api", api.url, "--token", VIEWER])
    assert refused.exit_code == 2
    assert "manager role" in refused.stderr


def test_metrics_count_the_links_ingest_refused(api: Api) -> None:
    text = httpx.get(api.url + "/metrics", timeout=10).text
    for reason in ("junk", "blocked", "limit"):
        assert f'journeys_identity_links_refused_total{{reason="{reason}"}}' in text
