"""Test support: a stage runner over a few partitions that notes every record it is given."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from streams.admin import TopicSpec, ensure_topics
from streams.config import KafkaSettings, TopicNames
from streams.kafka.records import InRecord, OutRecord
from streams.stages.runner import Stage, StageRunner
from streams.store.state import BatchState, LocalStore

PARTITIONS = 3
PER_PARTITION = 30


class Runs(Protocol):
    """A stage runner: it runs until its stop event is set."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and process until `stop` is set."""


async def run_until(
    kafka: KafkaSettings,
    runner_for: Callable[[AIOKafkaProducer], Runs],
    done: Callable[[], bool],
    tries: int = 300,
) -> None:
    """Run the runner made with a started producer until `done()`, until it stops, or for
    `tries` tenths of a second; then stop it and the producer."""
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(runner_for(producer).run(stop))
    try:
        for _ in range(tries):
            if task.done() or done():
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await producer.stop()


def fresh_kafka(
    bootstrap_servers: str, max_batch_records: int, partitions: int = PARTITIONS
) -> KafkaSettings:
    """Settings for one test's own topics on the test broker (a prefix no other test uses)."""
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        partitions=partitions,
        max_batch_records=max_batch_records,
    )


async def prepare(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(kafka.topic_prefix)
    await ensure_topics(
        kafka.bootstrap_servers,
        [
            TopicSpec(names.touchpoints, PARTITIONS),
            TopicSpec(names.identity_changelog, PARTITIONS, {"cleanup.policy": "compact"}),
        ],
    )
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    try:
        for partition in range(PARTITIONS):
            for chunk in range(3):  # three produce batches per partition
                sends = [
                    await producer.send(
                        names.touchpoints, f"{partition}-{chunk}-{i}".encode(), partition=partition
                    )
                    for i in range(PER_PARTITION // 3)
                ]
                await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return names


async def run_until_all_seen(
    kafka: KafkaSettings,
    names: TopicNames,
    data_dir: Path,
    rig: Callable[[StageRunner], None],
) -> dict[int, list[int]]:
    """Run a stage that notes each record's offset until every record is stored (or 30 s)."""
    seen: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}

    def note(state: BatchState, records: list[InRecord]) -> list[OutRecord]:
        seen[state.partition].extend(r.offset for r in records)
        return []

    store = LocalStore(data_dir)
    stage = Stage("probe", names.touchpoints, names.identity_changelog, store, note)

    def runner_for(producer: AIOKafkaProducer) -> StageRunner:
        runner = StageRunner(stage, kafka, producer)
        rig(runner)
        return runner

    def all_stored() -> bool:
        stored = [store.position(p, b"__offset__") for p in range(PARTITIONS)]
        return stored == [PER_PARTITION] * PARTITIONS

    try:
        await run_until(kafka, runner_for, all_stored)
    finally:
        store.close()
    return seen


def every_record_once(seen: dict[int, list[int]]) -> None:
    for partition in range(PARTITIONS):
        assert sorted(set(seen[partition])) == list(range(PER_PARTITION)), partition
