"""Fault injection: a worker frozen past its session timeout, then resumed, while events flow.

The frozen worker wakes up holding a batch for partitions the group has given away; the offset
commit that fences each batch refuses it, so its stale state never lands after the new owner's.
A SIGSTOP lands wherever it lands; a rule that holds the worker mid-batch makes sure a batch is
in flight when the group moves on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from journeys.bench.synthetic import synthetic_lines
from journeys.bench.workers import wait_for_members
from projections.flags import FlagDraft
from projections.settings import RuleSettings
from schemas.events import Event
from streams.config import KafkaSettings
from tests.factories import raw
from tests.integration.ledger_log import (
    CATCH_UP_S,
    EventFlow,
    InProcessWorker,
    WorkerProcess,
    assert_once_each,
    converge,
    create,
    kafka_for_test,
    produce,
    pure_fold,
    sdk_keyed,
    touchpoints_in_log,
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
    create(kafka)
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
        in_log = touchpoints_in_log(kafka)
        expected = pure_fold(in_log, datetime.now(UTC))
        state = converge(kafka, lambda: expected, CATCH_UP_S)
        assert state.journeys == expected.journeys
        assert state.flags == expected.flags
    finally:
        flow.stop()
        for worker in (a, b):
            if worker.alive():
                worker.stop()
    figures.append(
        f"SIGSTOP past the session timeout: {len(in_log):,} events, "
        f"{a.log_text().count('belong to another worker now')} stale batch(es) fenced"
    )


def test_scaling_one_to_two_to_one_while_events_flow(
    kafka: KafkaSettings, tmp_path: Path, figures: list[str]
) -> None:
    create(kafka)
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
        in_log = touchpoints_in_log(kafka)
        expected = pure_fold(in_log, datetime.now(UTC))
        state = converge(kafka, lambda: expected, CATCH_UP_S)
        assert state.journeys == expected.journeys
        assert state.flags == expected.flags
        figures.append(f"scaling 1 -> 2 -> 1 while {len(in_log):,} events flowed: equal")
    finally:
        flow.stop()
        for worker in (a, b):
            if worker is not None and worker.alive():
                worker.stop()


class HoldOnce:
    """A rule that holds its worker's event loop, once, in the middle of a batch.

    Nothing else runs meanwhile, heartbeats included: to the group it is a frozen worker.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.held = threading.Event()

    def __call__(
        self,
        events: Sequence[Event],
        as_of: datetime,  # noqa: ARG002  (a rule's signature)
        rules: RuleSettings,  # noqa: ARG002
    ) -> list[FlagDraft]:
        if not self.held.is_set() and any(e.event_id.startswith("hold-") for e in events):
            self.held.set()
            time.sleep(self.seconds)
        return []


def test_a_batch_held_past_the_session_timeout_is_fenced_and_nothing_lands_twice(
    kafka: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture, figures: list[str]
) -> None:
    caplog.set_level(logging.WARNING, logger="streams.stages.runner")
    names = create(kafka)
    config = write_config(tmp_path / "journeys.toml", kafka)
    hold = HoldOnce(kafka.session_timeout_ms / 1000 + 4)
    flow = EventFlow(kafka, list(synthetic_lines(150)))
    b = WorkerProcess(config, tmp_path / "b", tmp_path / "b.log").start()
    try:
        with InProcessWorker(kafka, tmp_path / "a", lambda: datetime.now(UTC), {"hold": hold}):
            asyncio.run(wait_for_members(kafka, 2, [b]))
            flow.start()
            wait_for_progress(kafka, 60, "progress with two workers")
            # Customers on every partition: whichever the held worker owns, it meets one.
            triggers = [
                orjson.dumps(
                    raw(
                        "form.submitted",
                        {"form": "contact"},
                        event_id=f"hold-{n}",
                        customer={"email": f"hold-{n}@example.com"},
                    )
                )
                for n in range(16)
            ]
            asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(triggers)))
            wait_for(hold.held.is_set, 60, "a worker holding a batch", 0.2)
            wait_for(
                lambda: "belong to another worker now" in caplog.text,
                60,
                "the held batch fenced",
                0.5,
            )
        flow.stop()
        in_log = touchpoints_in_log(kafka)
        expected = pure_fold(in_log, datetime.now(UTC))
        assert_once_each(kafka, converge(kafka, lambda: expected, CATCH_UP_S), expected)
    finally:
        flow.stop()
        if b.alive():
            b.stop()
    fenced = caplog.text.count("belong to another worker now")
    figures.append(
        f"a batch held {hold.seconds:.0f}s mid-way (past the session timeout): "
        f"{fenced} fenced, {len(in_log):,} events equal the pure fold"
    )
