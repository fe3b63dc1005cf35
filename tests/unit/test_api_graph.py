"""`GET /v1/identity/stats` and the graph gauges of `/metrics`, over a real RocksDB state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from journeys.server import api
from journeys.server.metrics import render_metrics
from journeys.settings import TokenEntry
from projections.settings import FoldSettings
from streams.directory import Directory, Member, sealed_record
from streams.flag_index import FlagIndex
from streams.graph_health import GraphHealthCache, worker_health
from streams.stages.runner import StageStats
from tests.unit.test_identity_rules import DEALER, SHOP, _settings
from tests.unit.test_stages import PARTITIONS, Pipeline

ADMIN = "graph-test-token-admin-acme-0001"
VIEWER = "graph-test-token-viewer-acme-001"
OTHER = "graph-test-token-admin-other-001"
NOW = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)


def _worker(tmp_path: Path) -> SimpleNamespace:
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings()
    for line in (*DEALER, *SHOP):
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    stats = SimpleNamespace(stats=StageStats())
    return SimpleNamespace(
        tenants=frozenset,
        graph_health=GraphHealthCache(pipeline.identity, lambda: range(PARTITIONS)),
        refused_links={"junk": 2, "blocked": 0, "limit": 0},
        retention_erased={"acme": 4},
        suppressed={("acme", "customer.email"): 1},
        dead_letters_erased={"acme": 2},
        kafka=SimpleNamespace(partitions=PARTITIONS),
        owned=lambda _stage: frozenset(range(PARTITIONS)),
        validate=stats,
        ingest=stats,
        journeys=stats,
        runners={},
    )


def _run(tmp_path: Path, scenario: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        with ThreadPoolExecutor(max_workers=2) as executor:
            context = api.ApiContext(
                worker=_worker(tmp_path),  # type: ignore[arg-type]
                fold=FoldSettings(),
                flags=FlagIndex(),
                directory=Directory(),
                tokens=(
                    TokenEntry(token=ADMIN, tenants=("acme",), role="admin"),
                    TokenEntry(token=VIEWER, tenants=("acme",), role="viewer"),
                    TokenEntry(token=OTHER, tenants=("other",), role="admin"),
                ),
                clock=lambda: NOW,
                worker_id="w1",
                executor=executor,
            )
            async with TestClient(TestServer(api.create_app(context))) as client:
                await scenario(client)

    asyncio.run(main())


async def _get(client: TestClient[Any, Any], query: str, token: str) -> tuple[int, Any]:
    response = await client.get(
        f"/v1/identity/stats{query}", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, await response.json()


def test_an_admin_sees_values_a_viewer_counts_and_another_tenant_nothing(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        status, admin = await _get(client, "?tenant=acme", ADMIN)
        assert status == 200
        assert admin["held_here"] is True
        assert admin["largest_customer_identifiers"] == 3
        assert admin["suspected_shared"] == [
            {"identifier": "phone:+44:1134960000", "strong_identifiers": 2}
        ]
        assert "customer_id" in admin["largest_customers"][0]
        status, viewer = await _get(client, "?tenant=acme", VIEWER)
        assert status == 200
        assert viewer["suspected_shared"] == [{"kind": "phone", "strong_identifiers": 2}]
        assert "customer_id" not in viewer["largest_customers"][0]
        assert viewer["customers"] == admin["customers"]
        assert (await _get(client, "?tenant=acme", OTHER))[0] == 403
        assert (await _get(client, "", ADMIN))[0] == 400
        response = await client.get("/v1/identity/stats?tenant=acme")
        assert response.status == 401

    _run(tmp_path, scenario)


def test_metrics_carry_counts_by_tenant_and_no_customer_data(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    health = worker_health(worker.graph_health.store, range(PARTITIONS))
    body, _ = render_metrics(worker, FlagIndex(), health=health)  # type: ignore[arg-type]
    text = body.decode()
    assert 'journeys_identity_largest_customer_identifiers{tenant="acme"} 3.0' in text
    assert 'journeys_identity_suspected_shared_identifiers{tenant="acme"} 1.0' in text
    assert 'journeys_identity_most_strong_identifiers{tenant="acme"} 2.0' in text
    assert 'journeys_identity_stats_truncated{tenant="acme"} 0.0' in text
    assert f'journeys_identity_customers{{tenant="acme"}} {health["acme"].customers}.0' in text
    assert 'journeys_retention_erased_total{tenant="acme"} 4.0' in text
    assert 'journeys_dead_letters_erased_total{tenant="acme"} 2.0' in text
    dropped = (
        'journeys_erased_identifier_events_dropped_total{field="customer.email",tenant="acme"}'
    )
    assert f"{dropped} 1.0" in text
    for secret in ("1134960000", "cus_", "@"):
        assert secret not in text


def test_a_worker_not_holding_the_tenant_asks_the_one_that_does(tmp_path: Path) -> None:
    """Every worker answers `/v1/identity/stats` for every tenant: the owner's figures."""
    secret = "peer-secret-for-the-graph-tests-0123456789"
    answers: dict[str, list[Any]] = {}

    def context(worker: Any, directory: Directory, session: Any, name: str) -> api.ApiContext:
        return api.ApiContext(
            worker=worker,
            fold=FoldSettings(),
            flags=FlagIndex(),
            directory=directory,
            tokens=(
                TokenEntry(token=ADMIN, tenants=("acme",), role="admin"),
                TokenEntry(token=VIEWER, tenants=("acme",), role="viewer"),
            ),
            clock=lambda: NOW,
            worker_id=name,
            session=session,
            executor=ThreadPoolExecutor(1),
            peer_secret=secret,
        )

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            owner = context(_worker(tmp_path), Directory(secret), session, "owner")
            async with TestClient(TestServer(api.create_app(owner))) as owner_client:
                url = str(owner_client.make_url("")).rstrip("/")
                directory = Directory(secret)
                member = Member("owner", url, (0, 1, 2), (0, 1, 2), ("acme",), 1.0)
                directory.apply(b"owner", sealed_record(secret, member))
                idle = SimpleNamespace(
                    kafka=SimpleNamespace(partitions=PARTITIONS),
                    owned=lambda _stage: frozenset(),  # it holds nothing: it must ask
                    tenants=lambda: frozenset(),
                )
                asker = context(idle, directory, session, "asker")
                async with TestClient(TestServer(api.create_app(asker))) as client:
                    for token in (ADMIN, VIEWER):
                        answers[token] = [
                            await _get(client, "?tenant=acme", token),
                            await _get(owner_client, "?tenant=acme", token),
                        ]

    asyncio.run(main())
    for token in (ADMIN, VIEWER):
        (status, asked), (_, direct) = answers[token]
        assert status == 200
        assert asked == direct
        assert asked["held_here"] is True
        assert asked["worker_id"] == "owner"
    assert "customer_id" in answers[ADMIN][0][1]["largest_customers"][0]
    assert "customer_id" not in answers[VIEWER][0][1]["largest_customers"][0]
