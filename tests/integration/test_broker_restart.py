"""Fault injection: the broker crashes (SIGKILL) and comes back with its data, twice, while
events flow.

The session's broker keeps memory only, so this scenario runs on a broker of its own that
keeps data across restarts (Tansu on S3, see `durable_broker`). The producer resends a chunk
whose sending failed, so events that got through before the crash arrive twice. A worker whose
stage fails while the broker is away exits for its supervisor; the test restarts it then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from journeys.bench.synthetic import synthetic_lines
from streams.config import KafkaSettings
from tests.integration.durable_broker import DurableBroker, durable_broker
from tests.integration.ledger_log import (
    CATCH_UP_S,
    EventFlow,
    Expected,
    WorkerProcess,
    assert_once_each,
    converge,
    create,
    kafka_for_test,
    pure_fold,
    read_topic_sync,
    touchpoints_in_log,
    wait_for,
    write_config,
)
from tests.integration.runner_support import (
    PARTITIONS,
    every_record_once,
    prepare,
    run_until_all_seen,
)

pytestmark = pytest.mark.faults

CRASHES = 2


def committed_offsets(kafka: KafkaSettings, group: str, topic: str) -> list[int | None]:
    """The offsets a consumer group has committed on a topic, per partition."""

    async def read() -> list[int | None]:
        # Never subscribes, so it never joins the group: it only asks for the commits.
        consumer = AIOKafkaConsumer(
            **kafka.client_options(), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return [
                await consumer.committed(TopicPartition(topic, partition))
                for partition in range(kafka.partitions)
            ]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def committed(kafka: KafkaSettings, group: str, topic: str) -> int:
    """The offsets a consumer group has committed on a topic, summed over its partitions."""
    return sum(offset or 0 for offset in committed_offsets(kafka, group, topic))


def where_the_stages_are(kafka: KafkaSettings, worker: WorkerProcess) -> str:
    """Per stage and partition: the log's end (records read back) against the offset the stage
    committed with its last batch; whether the worker lives; its last progress lines."""
    names = kafka.names()
    lines = [f"worker alive: {worker.alive()}"]
    for stage, group, topic in (
        ("validate", f"{kafka.topic_prefix}.validate", names.touchpoints),
        ("ingest", f"{kafka.topic_prefix}.ingest", names.validated),
        ("journeys", names.journey_group, names.events),
    ):
        ends: dict[int, int] = {}
        for record in read_topic_sync(kafka, topic):
            ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
        done = committed_offsets(kafka, group, topic)
        for partition in range(kafka.partitions):
            end, at = ends.get(partition, 0), done[partition] or 0
            behind = f"{end - at} records behind" if end > at else "caught up"
            lines.append(f"{stage} p{partition}: log ends at {end}, committed {at}: {behind}")
    progress = [line for line in worker.log_text().splitlines() if " batches; " in line]
    lines += ["last progress lines of the worker:", *progress[-4:]]
    return "\n".join(lines)


def missing(state: Expected, expected: Expected) -> str:
    """How the ledger's journeys differ from the pure fold's."""
    absent = [key for key in expected.journeys if key not in state.journeys]
    short = [
        key
        for key, events in expected.journeys.items()
        if key in state.journeys and state.journeys[key] != events
    ]
    extra = [key for key in state.journeys if key not in expected.journeys]
    return (
        f"{len(state.journeys)} of {len(expected.journeys)} journeys; {len(absent)} missing, "
        f"{len(short)} different ({sum(len(set(expected.journeys[k]) - set(state.journeys[k])) for k in short)} "
        f"events missing from them), {len(extra)} not in the pure fold"
    )


def crash_the_broker(
    broker: DurableBroker, worker: WorkerProcess, progress: Callable[[], int], crash: int
) -> tuple[WorkerProcess, int]:
    """SIGKILL the broker and start it again; the worker after it (restarted if it exited)."""
    before = progress()
    broker.crash()
    time.sleep(2.0)  # long enough for every client to notice
    broker.start()
    wait_for(
        lambda: not worker.alive() or progress() > before,
        120,
        f"progress or an exit after crash {crash}",
        0.5,
    )
    if worker.alive():
        return worker, 0
    # A stage that failed while the broker was away stops its worker; a supervisor restarts it.
    again = WorkerProcess(worker.config, worker.data_dir, worker.log).start()
    wait_for(lambda: progress() > before, 120, f"progress after crash {crash}", 0.5)
    return again, 1


def test_a_broker_crash_and_restart_loses_and_doubles_nothing(
    tmp_path: Path, figures: list[str]
) -> None:
    with durable_broker(tmp_path / "broker") as broker:
        kafka = kafka_for_test(broker.bootstrap_servers)
        names = create(kafka)
        config = write_config(tmp_path / "journeys.toml", kafka)
        log = tmp_path / "worker.log"
        worker = WorkerProcess(config, tmp_path / "data", log).start()
        # More lines than the scenario sends before the flow is stopped after the last crash:
        # on a busy machine a worker slow to start let 200 copies run out before it.
        flow = EventFlow(kafka, list(synthetic_lines(400)), pause_s=0.2, retry=True)
        worker_restarts = 0

        def progress() -> int:
            return committed(kafka, names.journey_group, names.events)

        try:
            flow.start()
            wait_for(lambda: progress() > 0, 120, "the journey stage committing", 0.5)
            for crash in range(1, CRASHES + 1):
                worker, restarted = crash_the_broker(broker, worker, progress, crash)
                worker_restarts += restarted
                assert flow.flowing(), "the events ran out before the last crash"
            flow.stop()

            in_log = touchpoints_in_log(kafka)
            logged = {orjson.loads(value)["event_id"] for value in in_log}
            acked = {orjson.loads(line)["event_id"] for line in flow.acked}
            assert acked <= logged  # the broker kept every acknowledged event
            expected = pure_fold(in_log, datetime.now(UTC))
            started = time.monotonic()
            state = converge(kafka, lambda: expected, CATCH_UP_S)
            caught_up = time.monotonic() - started
            try:
                assert_once_each(kafka, state, expected)
            except AssertionError as failure:
                report = where_the_stages_are(kafka, worker)
                raise AssertionError(f"{missing(state, expected)}\n{report}") from failure
            assert read_topic_sync(kafka, names.dead_letters) == []
        finally:
            flow.stop()
            if worker.alive():
                worker.stop()
        figures.append(
            f"broker SIGKILL + restart x{CRASHES} (Tansu on S3) while {len(logged):,} events "
            f"flowed ({len(in_log) - len(logged):,} resent by the producer): broker back in "
            f"{max(broker.restart_seconds):.2f}s, worker restarted {worker_restarts}x, "
            f"caught up {caught_up:.1f}s after the flow stopped; "
            f"{len(expected.journeys):,} journeys equal the pure fold"
        )


def test_a_stage_keeps_reading_when_tansu_on_s3_answers_short_fetches_with_nothing(
    tmp_path: Path,
) -> None:
    """Tansu with S3 storage stops listing a partition's records when the fetch's wait is over
    and then answers with nothing: with a wait shorter than the listing (a busy machine, a
    long partition; here 1 ms), a stage would never get a record. It waits longer instead."""
    with durable_broker(tmp_path / "broker") as broker:
        kafka = kafka_for_test(broker.bootstrap_servers, partitions=PARTITIONS)
        kafka = dataclasses.replace(kafka, fetch_max_wait_ms=1, max_batch_records=5)
        names = asyncio.run(prepare(kafka))
        seen = asyncio.run(run_until_all_seen(kafka, names, tmp_path / "store", lambda _r: None))
        every_record_once(seen)
