"""Fault injection: a worker frozen past its session timeout, then resumed, while events flow.

The frozen worker wakes up holding a batch for partitions the group has given away; the offset
commit that fences each batch refuses it, so its stale state never lands after the new owner's.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journeys.synthetic import synthetic_lines
from streams.config import KafkaSettings
from tests.integration.ledger_log import (
    EventFlow,
    WorkerProcess,
    converge,
    create,
    kafka_for_test,
    pure_fold,
    read_topic_sync,
    wait_for,
    wait_for_progress,
    write_config,
)

pytestmark = pytest.mark.faults


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return kafka_for_test(bootstrap_servers)


def test_a_worker_frozen_past_its_session_timeout_loses_and_doubles_nothing(
    kafka: KafkaSettings, tmp_path: Path, figures: list[str]
) -> None:
    names = create(kafka)
    config = write_config(tmp_path / "journeys.toml", kafka)
    flow = EventFlow(kafka, list(synthetic_lines(400)))
    a = WorkerProcess(config, tmp_path / "a", tmp_path / "a.log").start()
    b = WorkerProcess(config, tmp_path / "b", tmp_path / "b.log").start()
    try:
        flow.start()
        wait_for_progress(kafka, 60, "progress")
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        time.sleep(kafka.session_timeout_ms / 1000 + 4)  # the group gives a's partitions to b
        a.proc.send_signal(signal.SIGCONT)
        time.sleep(8)
        flow.stop()
        in_log = [r.value for r in read_topic_sync(kafka, names.touchpoints) if r.value]
        expected = pure_fold(in_log, datetime.now(UTC))
        state = converge(kafka, lambda: expected, 180)
        assert state.journeys == expected.journeys
        assert state.flags == expected.flags
    finally:
        flow.stop()
        for worker in (a, b):
            if worker.alive():
                worker.stop()
    figures.append(
        f"SIGSTOP past the session timeout: {len(in_log):,} events, "
        f"{a.log_text().count('belongs to another worker now')} stale batch(es) fenced"
    )


def test_scaling_one_to_two_to_one_while_events_flow(
    kafka: KafkaSettings, tmp_path: Path, figures: list[str]
) -> None:
    names = create(kafka)
    config = write_config(tmp_path / "journeys.toml", kafka)
    flow = EventFlow(kafka, list(synthetic_lines(400)))
    a = WorkerProcess(config, tmp_path / "a", tmp_path / "a.log").start()
    b: WorkerProcess | None = None
    try:
        flow.start()
        wait_for_progress(kafka, 60, "progress")
        b = WorkerProcess(config, tmp_path / "b", tmp_path / "b.log").start()  # 1 → 2
        wait_for(lambda: "restored partition" in b.log_text(), 60, "b taking partitions", 0.5)
        wait_for_progress(kafka, 60, "progress")
        assert a.stop() == 0  # 2 → 1: b takes everything over
        wait_for_progress(kafka, 60, "progress")
        flow.stop()
        in_log = [r.value for r in read_topic_sync(kafka, names.touchpoints) if r.value]
        expected = pure_fold(in_log, datetime.now(UTC))
        state = converge(kafka, lambda: expected, 180)
        assert state.journeys == expected.journeys
        assert state.flags == expected.flags
        figures.append(f"scaling 1 -> 2 -> 1 while {len(in_log):,} events flowed: equal")
    finally:
        flow.stop()
        for worker in (a, b):
            if worker is not None and worker.alive():
                worker.stop()
