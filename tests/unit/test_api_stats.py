"""`GET /v1/stats/flags` in aiohttp's test server over the in-memory flag index (no broker)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from journeys.server import api, stats
from journeys.settings import TokenEntry
from projections.settings import FoldSettings
from streams.directory import Directory
from streams.flag_index import FlagIndex
from tests.factories import flag_change

EVERY = "stats-test-token-every-tenant-01"
ACME = "stats-test-token-acme-only-00001"
NOW = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)


def _index() -> FlagIndex:
    index = FlagIndex()
    for tenant, customer, flag_id, opened, resolved in [
        ("acme-motors", "c1", "f1", "2026-11-01T09:00:00+00:00", None),
        ("acme-motors", "c2", "f2", "2026-10-20T09:00:00+00:00", "2026-11-02T09:00:00+00:00"),
        ("other-co", "c3", "f3", "2026-11-03T09:00:00+00:00", None),
    ]:
        status = "open" if resolved is None else "resolved"
        index.apply(
            flag_change(
                "opened" if resolved is None else "resolved",
                tenant,
                customer,
                flag_id,
                opened_at=opened,
                resolved_at=resolved,
                status=status,
                sites=["leeds"],
            )
        )
    return index


def _run(scenario: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        with ThreadPoolExecutor(max_workers=2) as executor:
            context = api.ApiContext(
                worker=SimpleNamespace(tenants=frozenset),  # type: ignore[arg-type]
                fold=FoldSettings(),
                flags=_index(),
                directory=Directory(),
                tokens=(
                    TokenEntry(token=EVERY, tenants=("*",)),
                    TokenEntry(token=ACME, tenants=("acme-motors",)),
                ),
                clock=lambda: NOW,
                worker_id="w1",
                executor=executor,
            )
            async with TestClient(TestServer(api.create_app(context))) as client:
                await scenario(client)

    asyncio.run(main())


async def _get(client: TestClient[Any, Any], query: str, token: str = EVERY) -> Any:
    response = await client.get(
        f"/v1/stats/flags{query}", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, await response.json()


def test_the_default_window_is_the_last_thirty_days_by_day_on_the_api_clock() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        status, body = await _get(client, "")
        assert status == 200
        assert body["until"] == NOW.isoformat()
        assert body["since"] == "2026-10-06T18:00:00+00:00"
        assert body["bucket"] == "day"
        points = body["open_over_time"]
        assert len(points) == 30
        assert points[-1]["at"] == NOW.isoformat()
        # At the end: f1 (acme) and f3 (other-co) open; f2 was resolved on 2 Nov.
        assert points[-1]["total"] == 2
        assert [f["flag_id"] for f in body["oldest_unacknowledged_high"]] == ["f1", "f3"]
        assert body["time_to_resolve"] == [
            {"rule": "DATE_MISMATCH", "site": "leeds", "median_s": 13 * 86400.0, "count": 1}
        ]

    _run(scenario)


def test_a_token_never_sees_another_tenants_flags() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        _, mine = await _get(client, "", token=ACME)
        assert [f["flag_id"] for f in mine["oldest_unacknowledged_high"]] == ["f1"]
        assert mine["open_over_time"][-1]["total"] == 1
        status, theirs = await _get(client, "?tenant=other-co", token=ACME)
        assert status == 200
        assert theirs["oldest_unacknowledged_high"] == []
        assert theirs["open_over_time"][-1]["total"] == 0
        _, asked = await _get(client, "?tenant=other-co")
        assert [f["flag_id"] for f in asked["oldest_unacknowledged_high"]] == ["f3"]

    _run(scenario)


def test_an_explicit_window_and_bucket() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        query = "?since=2026-11-01T00:00:00Z&until=2026-11-04T00:00:00Z&bucket=hour"
        status, body = await _get(client, query)
        assert status == 200
        assert len(body["open_over_time"]) == 72
        assert body["since"] == "2026-11-01T00:00:00+00:00"

    _run(scenario)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?since=yesterday", "since"),
        ("?until=2026-13-01T00:00:00Z", "until"),
        ("?since=2026-11-05T00:00:00Z&until=2026-11-01T00:00:00Z", "since"),
        ("?bucket=month", "bucket"),
        ("?since=2025-01-01T00:00:00Z&bucket=hour", "bucket"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(query: str, field: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        status, body = await _get(client, query)
        assert status == 400
        assert body["error"]["code"] == "bad_request"
        assert body["error"]["message"].startswith(f"{field}: ")

    _run(scenario)


def test_without_a_token_it_is_a_401() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/stats/flags")
        assert response.status == 401

    _run(scenario)


def test_without_since_the_window_is_the_thirty_days_before_until() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        status, body = await _get(client, "?until=2026-11-03T12:00:00%2B01:00")
        assert status == 200
        assert body["until"] == "2026-11-03T11:00:00+00:00"
        assert body["since"] == "2026-10-04T11:00:00+00:00"

    _run(scenario)


def test_the_counting_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    counted = stats.flag_stats

    def slow(*args: Any) -> dict[str, Any]:
        started.set()
        release.wait(60)  # held until /v1/flags has answered
        return counted(*args)

    monkeypatch.setattr(stats, "flag_stats", slow)

    async def scenario(client: TestClient[Any, Any]) -> None:
        trends = asyncio.create_task(_get(client, ""))
        while not started.is_set():
            await asyncio.sleep(0.01)
        try:
            flags = await client.get(
                "/v1/flags?limit=1", headers={"Authorization": f"Bearer {EVERY}"}
            )
            assert flags.status == 200
            assert not trends.done()  # answered while the trends were still being counted
        finally:
            release.set()
        status, body = await trends
        assert status == 200
        assert body["open_over_time"][-1]["total"] == 2

    _run(scenario)
