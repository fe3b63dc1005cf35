"""The worker on a real broker: the demo journeys round-trip to the pure fold."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from projections.settings import FoldSettings
from streams.admin import TopicSpec, ensure_topics
from streams.config import KafkaSettings, TopicNames
from streams.stages.journey.segments import journeys_in
from streams.store.state import LocalStore
from streams.worker import Worker
from tests.integration.ledger_log import read_topic, standing_flags

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}", partitions=3
    )


async def create_topics(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(kafka.topic_prefix)
    specs = [
        TopicSpec(name, kafka.partitions)
        for name in (
            names.touchpoints,
            names.validated,
            names.events,
            names.flags,
            names.dead_letters,
        )
    ] + [
        TopicSpec(name, kafka.partitions, {"cleanup.policy": "compact"})
        for name in (names.identity_changelog, names.journey_changelog)
    ]
    await ensure_topics(kafka.bootstrap_servers, specs)
    return names


def stored_journeys(data_dir: Path, partitions: int) -> dict[tuple[str, str], list[str]]:
    store = LocalStore(data_dir / "journeys")
    try:
        found = {}
        for partition in range(partitions):
            for ref, journey in journeys_in(dict(store.items(partition))).items():
                found[ref] = [e.event_id for e in journey.events]
        return found
    finally:
        store.close()


def test_demo_round_trip_equals_the_pure_fold(kafka: KafkaSettings, tmp_path: Path) -> None:
    lines = demo_lines()
    expected_report = check_lines(lines, FoldSettings(), NOW)
    expected = {
        (j.tenant, j.customer_id): [e.event_id for e in j.events] for j in expected_report.journeys
    }

    async def scenario() -> list[dict[str, object]]:
        names = await create_topics(kafka)
        producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
        await producer.start()
        try:
            for line in lines:  # keyed as the SDK keys them: one tenant over every partition
                await producer.send(
                    names.touchpoints, line, key=orjson.loads(line)["event_id"].encode()
                )
            await producer.flush()
        finally:
            await producer.stop()
        worker = Worker(kafka, FoldSettings(), tmp_path, clock=lambda: NOW)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            total = worker.journeys.stats.records
            if total and worker.ingest.stats.records >= len(lines) and _settled(worker, expected):
                break
        stop.set()
        await task
        return await read_topic(kafka, names.flags)

    flags = asyncio.run(scenario())
    assert stored_journeys(tmp_path, kafka.partitions) == expected
    standing = standing_flags(flags)
    assert standing == {
        (j.customer_id, f.flag_id): f.status for j in expected_report.journeys for f in j.flags
    }


def _settled(worker: Worker, expected: dict[tuple[str, str], list[str]]) -> bool:
    found = {}
    for partition in range(worker.kafka.partitions):
        for ref, journey in journeys_in(dict(worker.journey_store.items(partition))).items():
            found[ref] = [e.event_id for e in journey.events]
    return found == expected
