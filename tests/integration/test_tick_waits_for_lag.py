"""A stage's timer waits while its input is behind: ingest's retention must not forget a
customer whose newer events are still in the validated topic (a backlog after an outage).

A real broker, a stage reading three partitions of 30 records in small batches, a timer asked
to run at every turn of the loop: with `tick_max_lag`, no pass runs on a partition while more
records than that wait on it; without it (the control), passes run from the first batches on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.config import KafkaSettings, TopicNames
from streams.kafka.records import InRecord, OutRecord
from streams.stages.runner import OFFSET_KEY, Stage, StageRunner
from streams.store.state import BatchState, LocalStore
from tests.integration.runner_support import (
    PARTITIONS,
    PER_PARTITION,
    fresh_kafka,
    prepare,
    run_until,
)

MAX_LAG = 5


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    # many batches a partition: the input drains slowly
    return fresh_kafka(bootstrap_servers, max_batch_records=3)


async def _ticks(
    kafka: KafkaSettings, names: TopicNames, data_dir: Path, max_lag: int | None
) -> dict[int, list[int]]:
    """Run the stage until every record is stored and every partition has had a timer pass
    after that (or 60 s); the stored offset at each pass, by partition."""
    ticks: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    store = LocalStore(data_dir)

    def note(state: BatchState, records: list[InRecord]) -> list[OutRecord]:
        del state, records
        return []

    def tick(state: BatchState) -> list[OutRecord]:
        ticks[state.partition].append(store.position(state.partition, OFFSET_KEY) or 0)
        return []

    stage = Stage(
        "lagged",
        names.touchpoints,
        names.identity_changelog,
        store,
        note,
        tick=tick,
        tick_interval_s=0.0,  # a pass at every turn of the loop
        tick_max_lag=max_lag,
    )

    def caught_up() -> bool:
        return all(PER_PARTITION in ticks[p] for p in range(PARTITIONS))

    try:
        await run_until(kafka, lambda producer: StageRunner(stage, kafka, producer), caught_up, 600)
    finally:
        store.close()
    return ticks


def test_no_timer_pass_runs_while_the_input_is_behind(kafka: KafkaSettings, tmp_path: Path) -> None:
    names = asyncio.run(prepare(kafka))
    ticks = asyncio.run(_ticks(kafka, names, tmp_path / "store", MAX_LAG))
    for partition in range(PARTITIONS):
        assert PER_PARTITION in ticks[partition], partition  # caught up: the passes run
        assert min(ticks[partition]) >= PER_PARTITION - MAX_LAG, (partition, ticks[partition])


def test_without_a_bound_the_timer_runs_behind_the_input(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """The control: the test above would see the early passes if the runner did not wait."""
    names = asyncio.run(prepare(kafka))
    ticks = asyncio.run(_ticks(kafka, names, tmp_path / "store", None))
    early = [offset for offsets in ticks.values() for offset in offsets]
    assert min(early) < PER_PARTITION - MAX_LAG
