"""The live journey shows the `IDENTITY_CONFLICT` flags ingest opened (issue 13), on two real
workers and a real broker: `GET /v1/journeys/{id}` on either worker (one of them forwards the
read to the worker holding the journey) carries the flag the flag topic carries, naming the
tenant's own customers only; a confirmed merge resolves it, and the merge back is listed by
the identifier as the journey shows it (`phone +441134960000`).

Polls until the journeys show the change (no timed assertion: the wait only bounds a hang).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from journeys.devbroker import find_free_port
from streams.kafka.records import customer_key
from streams.kafka.sender import partition_of
from tests.integration.ledger_log import (
    WorkerProcess,
    create,
    kafka_for_test,
    produce,
    sdk_keyed,
    wait_for,
    write_config,
)

ACME = "acme-admin-token-0123456789abcdef"
NORTHWIND = "northwind-admin-token-0123456"
PEER_SECRET = "conflict-journey-peer-secret-0123456789"
PHONE = "+44 113 496 0000"
CONFLICT = "IDENTITY_CONFLICT"


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
    _line("n-2", "northwind", 11, email="finn@example.com", phone=PHONE, name="Finn"),
]
EMAILS = {
    "acme": ("carol@example.com", "dave@example.com"),
    "northwind": ("erin@example.com", "finn@example.com"),
}


@dataclass
class Stack:
    """Two workers' APIs."""

    urls: list[str]
    partitions: int

    def get(self, worker: int, path: str, tenant: str, **params: str) -> httpx.Response:
        token = ACME if tenant == "acme" else NORTHWIND
        headers = {"Authorization": f"Bearer {token}"}
        query = {"tenant": tenant, **params}
        return httpx.get(self.urls[worker] + path, params=query, headers=headers, timeout=10)

    def journey(self, worker: int, tenant: str, email: str) -> dict[str, Any] | None:
        response = self.get(worker, "/v1/journeys", tenant, email=email)
        return response.json() if response.status_code == 200 else None

    def by_id(self, worker: int, tenant: str, customer_id: str) -> dict[str, Any]:
        response = self.get(worker, f"/v1/journeys/{customer_id}", tenant)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def owner(self, tenant: str, customer_id: str) -> int:
        """The worker holding the customer's journey partition."""
        partition = partition_of(customer_key(tenant, customer_id), self.partitions)
        owned = [self.get(i, "/health", tenant).json()["partitions"]["journeys"] for i in (0, 1)]
        return next(i for i in (0, 1) if partition in owned[i])


def _conflicts(journey: dict[str, Any] | None) -> list[dict[str, Any]]:
    flags = [] if journey is None else journey["flags"]
    return [f for f in flags if f["rule"] == CONFLICT and f["status"] == "open"]


@pytest.fixture(scope="module")
def stack(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    kafka = kafka_for_test(bootstrap_servers)
    names = create(kafka)
    tmp = tmp_path_factory.mktemp("conflict-journey")
    config = write_config(tmp / "journeys.toml", kafka)
    with config.open("a") as handle:
        handle.write(
            "[api]\ntokens = [\n"
            f'  {{token = "{ACME}", tenants = ["acme"], user = "r.khan", role = "admin"}},\n'
            f'  {{token = "{NORTHWIND}", tenants = ["northwind"], user = "nia", role = "admin"}},\n'
            "]\n"
            f'peer_secret = "{PEER_SECRET}"\n'
            "[tenants.acme.identity]\nlimits = { email = 1 }\n"
            "[tenants.northwind.identity]\nlimits = { email = 1 }\n"
        )
    ports = [find_free_port(), find_free_port()]
    workers = [
        WorkerProcess(config, tmp / f"w{i}", tmp / f"w{i}.log", api_port=port).start()
        for i, port in enumerate(ports)
    ]
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(LINES)))
    result = Stack([f"http://127.0.0.1:{p}" for p in ports], kafka.partitions)

    def served() -> bool:
        try:
            owned = [result.get(i, "/health", "acme").json()["partitions"] for i in (0, 1)]
            if not all(o["journeys"] and o["ingest"] for o in owned):
                return False  # both workers hold partitions: some reads are forwarded
            return all(
                len(_conflicts(result.journey(i, tenant, email))) == 1
                for tenant, emails in EMAILS.items()
                for email in emails
                for i in (0, 1)
            )
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    try:
        wait_for(served, 120, "both workers showing each customer's IDENTITY_CONFLICT", 1.0)
        yield result
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.log_text()[-3000:]


def test_the_live_journey_shows_the_flag_topics_conflict_on_either_worker(stack: Stack) -> None:
    ids = {
        tenant: [str((stack.journey(0, tenant, e) or {})["customer_id"]) for e in emails]
        for tenant, emails in EMAILS.items()
    }
    forwarded = 0
    for tenant, customers in ids.items():
        others = [c for t, cs in ids.items() if t != tenant for c in cs]
        for customer in customers:
            listed = stack.get(0, "/v1/flags", tenant, rule=CONFLICT).json()["flags"]
            (topic,) = [f for f in listed if f["customer_id"] == customer]
            owner = stack.owner(tenant, customer)
            for worker in (0, 1):
                forwarded += worker != owner
                (flag,) = _conflicts(stack.by_id(worker, tenant, customer))
                # the flag as the topic carries it (the listing adds tenant and customer)
                assert {**flag, "tenant": tenant, "customer_id": customer} == topic
                assert all(c in flag["message"] for c in customers)
                assert not any(c in flag["message"] for c in others)
            # another tenant's token does not see the customer, nor its conflict
            other = "northwind" if tenant == "acme" else "acme"
            response = stack.get(0, f"/v1/journeys/{customer}", other)
            assert response.status_code == 404
    assert forwarded == 4  # each customer read once where it is not held


def test_a_confirmed_merge_resolves_the_conflict_and_lists_the_journeys_identifier(
    stack: Stack,
) -> None:
    carol, dave = (str((stack.journey(1, "acme", e) or {})["customer_id"]) for e in EMAILS["acme"])
    response = httpx.post(
        stack.urls[1] + "/v1/identity/decisions",
        json={"decision": "merge", "customers": [carol, dave], "tenant": "acme", "reason": "one"},
        headers={"Authorization": f"Bearer {ACME}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    decided = response.json()
    assert decided["identifier"] == "phone:+441134960000"  # through the conflict's value

    def merged() -> bool:
        one, two = (stack.journey(0, "acme", e) for e in EMAILS["acme"])
        return (
            one is not None
            and two is not None
            and one["customer_id"] == two["customer_id"]
            and not _conflicts(one)
            and len(one.get("merges", ())) == 1
        )

    wait_for(merged, 90, "Carol and Dave merged and their conflict resolved", 0.5)
    journey = stack.journey(0, "acme", "carol@example.com") or {}
    assert [(m["event_id"], m["identifier"]) for m in journey["merges"]] == [
        (decided["event_id"], "phone +441134960000")
    ]
    shown = {f"{i['kind']} {i['value']}" for i in journey["identifiers"]}
    assert "phone +441134960000" in shown
    # the other tenant's conflict on the same number stands
    for email in EMAILS["northwind"]:
        assert len(_conflicts(stack.journey(0, "northwind", email))) == 1
