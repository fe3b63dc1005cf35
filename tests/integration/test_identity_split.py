"""Done when: a block issued while the stack runs splits a merged customer and withdraws the
false DUPLICATE_ORDER, with a reason on the flag topic (issue 13, the shop's switchboard);
an unblock then merges them back and the flag opens again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journeys.cli.send import decision_line, send_lines
from schemas.outputs import FlagChange
from streams.config import KafkaSettings
from streams.stages.journey.segments import journeys_in
from streams.worker import Worker
from tests.integration.ledger_log import read_topic
from tests.integration.test_worker import NOW, create_topics
from tests.unit.test_identity_rules import SHOP, _settings

PATIENCE_S = 120
"""How long to wait for the worker before saying what did not happen (not a timed claim)."""


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}", partitions=3
    )


def _journeys(worker: Worker) -> list[list[str]]:
    found = []
    for partition in range(worker.kafka.partitions):
        for journey in journeys_in(dict(worker.journey_store.items(partition))).values():
            events = [e.event_id for e in journey.events]
            if not any(e.startswith("decision-") for e in events):
                found.append(events)
    return sorted(found)


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE_S
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} did not happen")


def test_a_block_sent_while_the_worker_runs_splits_carol_and_dave(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    block = decision_line(
        "identity.blocked",
        "phone:0113 496 0000",
        "acme",
        "switchboard",
        "r.khan",
        datetime(2024, 3, 9, 12, tzinfo=UTC),
    )

    unblock = decision_line(
        "identity.unblocked",
        "phone:0113 496 0000",
        "acme",
        "not the switchboard after all",
        "r.khan",
        datetime(2024, 3, 9, 13, tzinfo=UTC),
    )

    async def scenario() -> list[FlagChange]:
        names = await create_topics(kafka)
        worker = Worker(kafka, _settings(), tmp_path, clock=lambda: NOW)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            sent = await send_lines(SHOP, kafka)
            assert sent.sent == 2

            async def merged() -> bool:
                return _journeys(worker) == [["s-1", "s-2"]]

            await _until("Carol and Dave becoming one customer", merged)

            async def flags() -> list[FlagChange]:
                return [
                    FlagChange.from_bytes(r.value)
                    for r in await read_topic(kafka, names.flags)
                    if r.value
                ]

            async def duplicate_opened() -> bool:
                return any(c.change == "opened" for c in await flags())

            await _until("the DUPLICATE_ORDER opening", duplicate_opened)
            assert (await send_lines([block], kafka)).sent == 1

            async def split() -> bool:
                return _journeys(worker) == [["s-1"], ["s-2"]]

            await _until("the block splitting Carol and Dave", split)

            async def withdrawn() -> bool:
                return any(c.change == "withdrawn" for c in await flags())

            await _until("the DUPLICATE_ORDER being withdrawn", withdrawn)
            assert (await send_lines([unblock], kafka)).sent == 1

            async def merged_again() -> bool:
                opened = [c for c in await flags() if c.change == "opened"]
                return await merged() and len(opened) == 2

            await _until("the unblock merging them back and opening the flag again", merged_again)
            return await flags()
        finally:
            stop.set()
            await task

    changes = asyncio.run(scenario())
    opened, again = [c for c in changes if c.change == "opened"]
    assert opened.flag.to_document()["rule"] == "DUPLICATE_ORDER"
    assert (again.customer_id, again.flag_id) == (opened.customer_id, opened.flag_id)
    assert again.change_id != opened.change_id
    (withdrawn,) = [c for c in changes if c.change == "withdrawn"]
    assert (withdrawn.customer_id, withdrawn.flag_id) == (opened.customer_id, opened.flag_id)
    assert withdrawn.reason is not None
    assert withdrawn.reason.startswith("blocked by r.khan on 2024-03-09: switchboard")
