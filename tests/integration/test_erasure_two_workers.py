"""Sealed journeys on two real workers: each serves every journey opened, even one whose
tenant's ingest partition (and so its customer's key ring) the other worker holds.

Both workers seal with the same master key and share the peer secret. Every journey, asked of
either worker, equals the pure fold of the clear events (`journeys check`); the flags and the
exports carry no ciphertext; and at least one journey is served by a worker that had to ask
the other for the ring (the test says so, so it cannot pass by luck of the partitioning).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from journeys.devbroker import find_free_port
from projections.settings import FoldSettings
from projections.view import view_to_dict
from streams.crypto.fields import ERASED, PREFIX
from streams.crypto.keys import LocalKeyProvider
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
from tests.integration.test_api import strip_moment

ADMIN = "two-workers-admin-token-0123456789"
PEER_SECRET = "two-workers-peer-secret-0123456789abcdef"
MASTER = bytes(range(32, 64))


@dataclass
class Stack:
    """Two sealing workers with their APIs, fed the demo journeys."""

    urls: list[str]
    lines: list[bytes]
    partitions: int

    def get(self, path: str, url: int, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return httpx.get(self.urls[url] + path, params=params, headers=headers, timeout=10)

    def expected(self) -> dict[str, dict[str, Any]]:
        # with the workers' master key: the graph's keys, so the customer ids, are keyed hashes
        hashing = replace(FoldSettings(), identity_secret=LocalKeyProvider(MASTER).identity_secret)
        report = check_lines(self.lines, hashing, datetime.now(UTC))
        return {v.customer_id: view_to_dict(v) for v in report.journeys}


@pytest.fixture(scope="module")
def stack(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    kafka = kafka_for_test(bootstrap_servers)
    names = create(kafka)
    tmp = tmp_path_factory.mktemp("sealed-two")
    config = write_config(tmp / "journeys.toml", kafka)
    with config.open("a") as handle:
        handle.write(f'[privacy]\nmaster_key = "{base64.b64encode(MASTER).decode()}"\n')
        handle.write(
            f'[api]\ntokens = [{{token = "{ADMIN}", tenants = ["*"], role = "admin"}}]\n'
            f'peer_secret = "{PEER_SECRET}"\n'
        )
    ports = [find_free_port(), find_free_port()]
    workers = [
        WorkerProcess(config, tmp / f"w{i}", tmp / f"w{i}.log", api_port=port).start()
        for i, port in enumerate(ports)
    ]
    lines = demo_lines()
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(lines)))
    result = Stack([f"http://127.0.0.1:{p}" for p in ports], lines, kafka.partitions)
    expected = result.expected()

    def served() -> bool:
        try:
            flags = result.get("/v1/flags", 0, limit=500).json()["flags"]
            owned = [result.get("/health", i).json()["partitions"] for i in range(2)]
            answers = [result.get(f"/v1/journeys/{c}", i) for c in expected for i in (0, 1)]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        want = sum(len(j["flags"]) for j in expected.values())
        split = all(o["journeys"] and o["ingest"] for o in owned)
        return len(flags) == want and split and all(a.status_code == 200 for a in answers)

    try:
        wait_for(served, 120, "both sealing workers serving the demo's journeys", 1.0)
        yield result
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.log_text()[-3000:]
            log = worker.log_text()
            assert "wk:v1:" not in log
            assert PREFIX not in log


def test_every_journey_opens_on_both_workers_even_where_the_ring_is_elsewhere(
    stack: Stack,
) -> None:
    owned = [stack.get("/health", i).json()["partitions"] for i in range(2)]
    asked_elsewhere = 0
    for customer_id, expected in stack.expected().items():
        tenant = expected["tenant"]
        journey_at = partition_of(customer_key(tenant, customer_id), stack.partitions)
        ring_at = partition_of(tenant.encode(), stack.partitions)
        server = next(i for i in (0, 1) if journey_at in owned[i]["journeys"])
        asked_elsewhere += ring_at not in owned[server]["ingest"]
        for url in (0, 1):
            response = stack.get(f"/v1/journeys/{customer_id}", url)
            assert response.status_code == 200, response.text
            assert PREFIX not in response.text
            assert ERASED not in response.text
            assert strip_moment(response.json()) == strip_moment(expected)
    assert asked_elsewhere > 0, "no journey served away from its ring: the test proves nothing"


def test_flags_and_exports_carry_no_ciphertext_on_either_worker(stack: Stack) -> None:
    for url in (0, 1):
        page = stack.get("/v1/flags", url, limit=500)
        assert page.status_code == 200
        assert PREFIX not in page.text
    customer_id, expected = next(iter(sorted(stack.expected().items())))
    tenant = expected["tenant"]
    exports = [
        stack.get(f"/v1/customers/{customer_id}/export", url, tenant=tenant) for url in (0, 1)
    ]
    for export in exports:
        assert export.status_code == 200, export.text
        assert PREFIX not in export.text
    first, second = (orjson.loads(e.content) for e in exports)
    assert (first["tenant"], first["customer_id"]) == (tenant, customer_id)
    assert strip_moment(first["journey"]) == strip_moment(expected)
    assert strip_moment(second["journey"]) == strip_moment(first["journey"])
