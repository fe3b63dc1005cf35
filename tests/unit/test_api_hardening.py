"""The API under hostile requests: slow journeys do not hold up others, every error is JSON.

The app runs in aiohttp's test server over a stub worker (no broker, no RocksDB); the producer
validates each event as the real one does and pretends to write it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from journeys.sdk.producer import Delivery, prepare
from journeys.server import api
from journeys.settings import TokenEntry
from projections.settings import FoldSettings
from streams.directory import Directory
from streams.flag_index import FlagIndex

TOKEN = "hardening-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class _Producer:
    """Validates like `JourneyProducer.send`, then answers at once as if written."""

    async def send(self, event: Any) -> asyncio.Future[Delivery]:
        prepare(event)
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        future.set_result(Delivery("touchpoints", 0, 0))
        return future


def _context(executor: ThreadPoolExecutor) -> api.ApiContext:
    worker = SimpleNamespace(
        kafka=SimpleNamespace(partitions=1),
        owned=lambda _stage: frozenset({0}),
        tenants=lambda: frozenset({"acme-motors"}),
        sealer=None,  # nothing sealed: no ring to read
    )
    return api.ApiContext(
        worker=worker,  # type: ignore[arg-type]
        fold=FoldSettings(),
        flags=FlagIndex(),
        directory=Directory(),
        tokens=(TokenEntry(token=TOKEN, tenants=("*",)),),
        clock=lambda: datetime(2026, 11, 4, tzinfo=UTC),
        worker_id="w1",
        producer=_Producer(),  # type: ignore[arg-type]
        executor=executor,
    )


def _run(scenario: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        with ThreadPoolExecutor(max_workers=2) as executor:
            async with TestClient(TestServer(api.create_app(_context(executor)))) as client:
                await scenario(client)

    asyncio.run(main())


def _event(**payload: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "type": "message.received",
        "occurred_at": "2026-11-02T09:00:00+00:00",
        "tenant": "acme-motors",
        "source": {"system": "web"},
        "customer": {"email": "a@example.com"},
        "payload": {"medium": "email", **payload},
    }


def _nested(depth: int) -> bytes:
    """A JSON array nested `depth` deep (orjson itself writes at most 255 levels)."""
    return b"[" * depth + b'"x"' + b"]" * depth


def test_a_slow_journey_does_not_hold_up_other_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(_context: api.ApiContext, tenant: str, customer_id: str, *_: object) -> dict[str, Any]:
        started.set()
        release.wait(60)  # held until /health and /v1/flags have answered
        return {"customer_id": customer_id, "tenant": tenant}

    monkeypatch.setattr(api, "_local_journey", slow)

    async def scenario(client: TestClient[Any, Any]) -> None:
        path = "/v1/journeys/cus_0123456789abcdef?tenant=acme-motors"
        journey = asyncio.create_task(client.get(path, headers=AUTH))
        while not started.is_set():
            await asyncio.sleep(0.01)
        try:
            health = await client.get("/health")
            flags = await client.get("/v1/flags?limit=1", headers=AUTH)
            assert health.status == 200
            assert flags.status == 200
            assert not journey.done()  # both answered while the journey was still being read
        finally:
            release.set()
        answer = await journey
        assert answer.status == 200
        assert (await answer.json())["customer_id"] == "cus_0123456789abcdef"

    _run(scenario)


def test_an_oversized_body_gets_a_json_413() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        body = b'{"events": ["' + b"x" * (9 * 1024 * 1024) + b'"]}'
        response = await client.post("/v1/events", data=io.BytesIO(body), headers=AUTH)
        assert response.status == 413
        error = (await response.json())["error"]
        assert error["code"] == "too_large"
        assert "split" in error["hint"]

    _run(scenario)


@pytest.mark.parametrize("size", [300 * 1024, 900 * 1024, 1536 * 1024])
def test_an_event_over_the_size_limit_is_refused_at_the_door(size: int) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        events = [_event(text="y" * 9000, **{f"f{i}": "z" * 9000 for i in range(size // 9000)})]
        body = io.BytesIO(orjson.dumps({"events": events}))
        response = await client.post("/v1/events", data=body, headers=AUTH)
        assert response.status == 200
        result = (await response.json())["results"][0]
        assert result["status"] == "rejected"
        assert "the limit is 262,144" in result["problems"][0]["reason"]

    _run(scenario)


@pytest.mark.parametrize("depth", [300, 900])
def test_deep_nesting_is_a_reason_not_a_traceback(
    depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        event = orjson.dumps(_event(extra="EXTRA")).replace(b'"EXTRA"', _nested(depth))
        body = b'{"events": [' + event + b", " + _nested(depth) + b"]}"
        response = await client.post("/v1/events", data=body, headers=AUTH)
        assert response.status == 200, await response.text()
        results = (await response.json())["results"]
        assert [r["status"] for r in results] == ["rejected", "rejected"]
        assert all("nested too deep" in r["problems"][0]["reason"] for r in results)

    with caplog.at_level(logging.DEBUG):
        _run(scenario)
    assert not [r for r in caplog.records if r.exc_info]


def test_an_unexpected_failure_is_json_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*_: object) -> None:
        raise RecursionError("maximum recursion depth exceeded \x1b[2J")

    monkeypatch.setattr(api, "_local_journey", boom)

    async def scenario(client: TestClient[Any, Any]) -> None:
        path = "/v1/journeys/cus_0123456789abcdef?tenant=acme-motors"
        response = await client.get(path, headers=AUTH)
        assert response.status == 500
        assert (await response.json())["error"]["code"] == "internal"

    with caplog.at_level(logging.DEBUG):
        _run(scenario)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is None
    assert "\x1b" not in failures[0].getMessage()
