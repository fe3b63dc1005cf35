"""Identity decisions named by customer ids, on a real worker and broker (issue 13): the API
and the command line resolve `merge CUS CUS` to the value held between the customers and
`split CUS` to the customer's one merge, write the usual decision event naming it, and the
live ledger merges and splits the journeys. Refusals: 400 naming the field, one 404 for an
unknown customer and another tenant's, 409 listing what to name instead.

Polls until the journeys show the change (no timed assertion: the wait only bounds a hang).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from journeys.cli import app
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

ADMIN = "admin-token-0123456789abcdef"
OTHER_ADMIN = "northwind-admin-token-0123456"
USER = "r.khan@acme"
PHONE = "+44 113 496 0000"


def _line(event_id: str, tenant: str, hour: int, **customer: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "order.placed",
            "occurred_at": f"2024-03-09T{hour:02d}:00:00Z",
            "tenant": tenant,
            "source": {"system": "shop"},
            "customer": customer,
            "payload": {"order_id": f"NW-{event_id}", "items": ["SKU-9"]},
        }
    )


LINES = [
    _line("s-1", "acme", 10, email="carol@example.com", phone=PHONE, name="Carol"),
    _line("s-2", "acme", 11, email="dave@example.com", phone=PHONE, name="Dave"),
    _line("n-1", "northwind", 10, email="erin@example.com", phone=PHONE, name="Erin"),
]


@dataclass
class Api:
    """One worker's API and its settings file."""

    url: str
    config: Path

    def journey(self, email: str, tenant: str = "acme") -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {ADMIN if tenant == 'acme' else OTHER_ADMIN}"}
        params = {"email": email, "tenant": tenant}
        response = httpx.get(self.url + "/v1/journeys", params=params, headers=headers, timeout=10)
        return response.json() if response.status_code == 200 else None

    def decide(self, token: str = ADMIN, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.post(
            self.url + "/v1/identity/decisions", json=body, headers=headers, timeout=30
        )

    def customer(self, email: str, tenant: str = "acme") -> str:
        found = self.journey(email, tenant)
        assert found is not None, email
        return str(found["customer_id"])


@pytest.fixture(scope="module")
def api(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    kafka = kafka_for_test(bootstrap_servers, partitions=2)
    names = create(kafka)
    tmp = tmp_path_factory.mktemp("identity-decisions")
    config = write_config(tmp / "journeys.toml", kafka)
    with config.open("a") as handle:
        handle.write(
            "[api]\ntokens = [\n"
            f'  {{token = "{ADMIN}", tenants = ["acme"], user = "{USER}", role = "admin"}},\n'
            f'  {{token = "{OTHER_ADMIN}", tenants = ["northwind"], user = "nia", role = "admin"}},\n'
            "]\n"
            "[tenants.acme.identity]\nlimits = { email = 1 }\n"
        )
    port = find_free_port()
    worker = WorkerProcess(config, tmp / "w", tmp / "w.log", api_port=port).start()
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(LINES)))
    result = Api(f"http://127.0.0.1:{port}", config)

    def served() -> bool:
        try:
            found = [result.journey(e) for e in ("carol@example.com", "dave@example.com")]
            return all(j is not None for j in found)
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    try:
        wait_for(served, 90, "the worker serving Carol's and Dave's journeys", 1.0)
        yield result
    finally:
        assert worker.stop() == 0, worker.log_text()[-3000:]


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_refusals_name_the_field_and_hide_other_tenants(api: Api) -> None:
    carol, dave = api.customer("carol@example.com"), api.customer("dave@example.com")
    assert carol != dave
    erin = api.customer("erin@example.com", "northwind")
    base = {"decision": "merge", "tenant": "acme", "reason": "one person"}
    bad = api.decide(**base, customers=[carol])
    assert bad.status_code == 400
    assert _error(bad)["message"].startswith("customers: ")
    missing = api.decide(**base, customers=[carol, "cus_00000000000000ff"])
    other = api.decide(**base, customers=[carol, erin])
    assert (missing.status_code, other.status_code) == (404, 404)
    assert _error(missing)["message"].replace("cus_00000000000000ff", "X") == _error(other)[
        "message"
    ].replace(erin, "X")
    wrong = api.decide(**base, customers=[carol, dave], via="email:carol@example.com")
    assert wrong.status_code == 409
    assert "phone:+441134960000" in _error(wrong)["message"]
    split = api.decide(decision="split", tenant="acme", reason="r", customer=carol)
    assert split.status_code == 409
    assert "KIND:VALUE" in _error(split)["hint"]


def test_merge_by_customer_ids_through_the_api_then_split_from_the_command_line(
    api: Api,
) -> None:
    carol, dave = api.customer("carol@example.com"), api.customer("dave@example.com")
    response = api.decide(
        decision="merge", tenant="acme", reason="one household", customers=[carol, dave]
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["type"], answer["identifier"]) == (
        "identity.merge_confirmed",
        "phone:+441134960000",
    )
    assert answer["customers"] == [carol, dave]

    def merged() -> bool:
        # ingest's graph joins them first; the journey lists the merge once the merged
        # customer's merges have reached the survivor's partition (a hop of the events topic)
        one, two = api.journey("carol@example.com"), api.journey("dave@example.com")
        return (
            one is not None
            and two is not None
            and one["customer_id"] == two["customer_id"]
            and bool(one["merges"])
        )

    wait_for(merged, 90, "Carol and Dave merged by the confirmed merge, the merge listed", 0.5)
    journey = api.journey("carol@example.com")
    assert journey is not None
    assert [m["event_id"] for m in journey["merges"]] == [answer["event_id"]]

    # the other tenant's customer sharing the phone is not touched
    assert api.journey("erin@example.com", "northwind") is not None

    result = CliRunner().invoke(
        app,
        [
            "--config", str(api.config),
            "identity", "split", journey["customer_id"],
            "--tenant", "acme", "--reason", "two people after all", "--by", "r.khan",
            "--api", api.url, "--token", ADMIN,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{journey['customer_id']}: phone:+441134960000" in result.stdout

    def split() -> bool:
        one, two = api.journey("carol@example.com"), api.journey("dave@example.com")
        return one is not None and two is not None and one["customer_id"] != two["customer_id"]

    wait_for(split, 90, "Carol and Dave split again along the phone", 0.5)
