"""The live API's "why" (`linked_by`, identifiers not used for matching) applies people's
decisions held by ingest, as `journeys check` applies them: over a real RocksDB state."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from journeys.cli.check import check_lines, report_to_dict
from journeys.server import api
from journeys.server.internal import fitting
from journeys.settings import TokenEntry
from streams import queries
from streams.directory import Directory
from streams.flag_index import FlagIndex
from tests.unit import test_stages as stages
from tests.unit.test_identity_rules import BLOCK, UNBLOCK, _line, _settings
from tests.unit.test_stages import PARTITIONS, Pipeline

TOKEN = "why-test-token-admin-acme-000001"
NOW = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)

LINES = [
    _line(
        "w-1",
        "form.submitted",
        "2024-03-09T10:00:00Z",
        {"email": "carol@example.com", "phone": "0113 496 0000"},
        form="a",
    ),
    _line(
        "w-2",
        "form.submitted",
        "2024-03-09T10:30:00Z",
        {"plate": "AB12 CDE", "phone": "0113 496 0000"},
        form="a",
    ),
    _line(
        "w-3",
        "form.submitted",
        "2024-03-09T11:00:00Z",
        {"plate": "AB12 CDE", "email": "carol@example.com"},
        form="a",
    ),
]
"""w-2 shares only the switchboard with the events before it; w-3 ties it to Carol anyway."""


def _journey(tmp_path: Path, lines: list[bytes], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # the pipeline's partitioner, so the API reads where the stages wrote
    monkeypatch.setattr(queries, "partition_of", lambda key, _count: stages.partition_of(key))
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings()
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    worker = SimpleNamespace(
        tenants=frozenset,
        kafka=SimpleNamespace(partitions=PARTITIONS),
        identity_store=pipeline.identity,
        journey_store=pipeline.journeys,
        sealer=None,  # events stored in clear
        owned=lambda _stage: frozenset(range(PARTITIONS)),
    )
    found: dict[str, Any] = {}

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=2) as executor:
            context = api.ApiContext(
                worker=worker,  # type: ignore[arg-type]
                fold=_settings(),
                flags=FlagIndex(),
                directory=Directory(),
                tokens=(TokenEntry(token=TOKEN, tenants=("acme",), role="admin"),),
                clock=lambda: NOW,
                worker_id="w1",
                executor=executor,
            )
            async with TestClient(TestServer(api.create_app(context))) as client:
                response = await client.get(
                    "/v1/journeys?tenant=acme&email=carol@example.com",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                assert response.status == 200
                found.update(await response.json())

    asyncio.run(main())
    return found


def _checked(lines: list[bytes]) -> dict[str, Any]:
    document = report_to_dict(check_lines(lines, _settings(), NOW))
    (carol,) = [j for j in document["journeys"] if "w-1" in [e["event_id"] for e in j["events"]]]
    return dict(carol)


def test_a_value_a_person_blocked_links_nothing_in_the_live_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = _journey(tmp_path, [*LINES, BLOCK], monkeypatch)
    checked = _checked([*LINES, BLOCK])
    assert live["linked_by"] == checked["linked_by"] == {"w-3": "email carol@example.com"}
    assert live["identifiers"] == checked["identifiers"]
    (phone,) = [i for i in live["identifiers"] if i["kind"] == "phone"]
    assert phone["not_used_for_matching"].startswith("blocked by r.khan on 2024-03-09")


def test_unblocked_the_value_links_again_in_the_live_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = _journey(tmp_path, [*LINES, BLOCK, UNBLOCK], monkeypatch)
    checked = _checked([*LINES, BLOCK, UNBLOCK])
    assert live["linked_by"] == checked["linked_by"]
    assert live["linked_by"]["w-2"] == "phone +441134960000"
    assert all("not_used_for_matching" not in i for i in live["identifiers"])


def test_decisions_too_long_for_a_forwarded_query_are_shortened_to_fit() -> None:
    decided = {f"phone:{n}": "x" * 5_000 for n in range(4)}
    short = fitting(decided)
    assert short.keys() == decided.keys()
    assert len(orjson.dumps(short)) < 8_000
    assert all(v.endswith("…") for v in short.values())
    assert fitting({"phone:1": "why"}) == {"phone:1": "why"}
