"""Test support: read the ledger's topics back and compare them with the pure fold.

The oracle is always the pure code: whatever the touchpoints topic holds, folded offline by
`journeys check`'s functions, is what the worker's state and flag topic must say.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]

from journeys.bench import workers as bench_workers
from journeys.cli.check import check_lines
from projections.rules import Detector
from projections.settings import FoldSettings
from schemas.outputs import FlagChange, FlagSnapshot
from streams.config import KafkaSettings, TopicNames
from streams.stages.journey.segments import journeys_in
from streams.topics import create_topics

Journeys = dict[tuple[str, str], list[str]]
"""(tenant, customer id) -> the journey's event ids in journey order."""

Flags = dict[tuple[str, str], str]
"""(customer id, flag id) -> status."""


@dataclass(frozen=True)
class Record:
    """A record read back from a topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def kafka_for_test(bootstrap_servers: str, partitions: int = 4) -> KafkaSettings:
    """Settings with a topic prefix of the test's own."""
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        partitions=partitions,
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    # Fetch the whole cluster's metadata: an unsubscribed consumer may know a topic partly.
    await consumer.topics()
    partitions = sorted(consumer.partitions_for_topic(topic) or ())
    assert partitions, f"topic {topic} does not exist"
    return partitions


async def read_topic(kafka: KafkaSettings, topic: str) -> list[Record]:
    """Every record of a topic up to its end offsets now, partition by partition."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        found: list[Record] = []
        for tp in tps:
            consumer.seek(tp, starts[tp])
            position = starts[tp]
            empty_since = time.monotonic()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                # Tansu reports the end of a partition as its last batch's first offset + 1,
                # so read on until a poll past that point comes back empty. On S3 the reported
                # end is further off, and a fetch can come back empty before its records are
                # listed: read up to the high water of the fetch responses too.
                wait_ms = 300 if position >= ends[tp] else 1_000
                batch = await consumer.getmany(tp, timeout_ms=wait_ms, max_records=10_000)
                messages = batch.get(tp, [])
                highwater = consumer.highwater(tp)
                if not messages and position >= ends[tp]:
                    if highwater is not None and position >= highwater:
                        break
                    if highwater is None or time.monotonic() - empty_since >= 10:
                        break  # no fetch answered, or a hole at the end: what came is all
                    continue
                empty_since = time.monotonic()
                for m in messages:
                    headers = {k: bytes(v) for k, v in (m.headers or ())}
                    found.append(Record(m.partition, m.offset, m.key, m.value, headers))
                    position = m.offset + 1
        return found
    finally:
        await consumer.stop()


def read_topic_sync(kafka: KafkaSettings, topic: str) -> list[Record]:
    """`read_topic` from synchronous code."""
    return asyncio.run(read_topic(kafka, topic))


def journeys_in_changelog(records: Iterable[Record]) -> Journeys:
    """The journeys the journey stage's compacted state topic holds (latest value per key)."""
    latest: dict[bytes, bytes | None] = {}
    for record in records:
        if record.key is not None:
            latest[record.key] = record.value
    entries = {key: value for key, value in latest.items() if value is not None}
    return {
        ref: [event.event_id for event in journey.events]
        for ref, journey in journeys_in(entries).items()
    }


def standing_flags(records: Iterable[Record]) -> Flags:
    """Each customer's flags as the flag topic leaves them, repeats dropped by change id."""
    seen: set[str] = set()
    standing: Flags = {}
    for record in records:
        assert record.value is not None
        change = FlagChange.from_bytes(record.value)
        if change.change_id in seen:
            continue
        seen.add(change.change_id)
        key = (change.customer_id, change.flag_id)
        if isinstance(change.flag, FlagSnapshot):  # every change but a withdrawal carries it
            standing[key] = change.flag.status
        else:
            standing.pop(key, None)
    return standing


def opened_counts(records: Iterable[Record]) -> dict[tuple[str, str], int]:
    """How many distinct 'opened' changes each customer's flag has on the flag topic."""
    ids: dict[tuple[str, str], set[str]] = {}
    for record in records:
        assert record.value is not None
        change = FlagChange.from_bytes(record.value)
        if change.change == "opened":
            key = (change.customer_id, change.flag_id)
            ids.setdefault(key, set()).add(change.change_id)
    return {key: len(found) for key, found in ids.items()}


@dataclass(frozen=True)
class Expected:
    """The pure fold of a set of touchpoints: journeys and standing flags."""

    journeys: Journeys
    flags: Flags


def pure_fold(lines: list[bytes], as_of: datetime) -> Expected:
    """What `journeys check` makes of these lines as of a moment."""
    report = check_lines(lines, FoldSettings(), as_of)
    return Expected(
        journeys={
            (j.tenant, j.customer_id): [e.event_id for e in j.events] for j in report.journeys
        },
        flags={(j.customer_id, f.flag_id): f.status for j in report.journeys for f in j.flags},
    )


def ledger_state(kafka: KafkaSettings) -> Expected:
    """What the running ledger says: journeys from the state topic, flags from the flag topic."""
    names = TopicNames(kafka.topic_prefix)
    return Expected(
        journeys=journeys_in_changelog(read_topic_sync(kafka, names.journey_changelog)),
        flags=standing_flags(read_topic_sync(kafka, names.flags)),
    )


def wait_for(
    check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 1.0
) -> None:
    """Poll until `check` holds, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f}s")


CATCH_UP_S = 600.0
"""How long a fault test waits for the ledger to catch up after a flow: a bound on liveness on a
loaded machine, never a speed target (the tests print how long catching up took)."""


def converge(kafka: KafkaSettings, expected: Callable[[], Expected], timeout_s: float) -> Expected:
    """Wait until the ledger's state equals the (recomputed) pure fold; return that state."""
    last: list[Expected] = []

    def settled() -> bool:
        state = ledger_state(kafka)
        last[:] = [state]
        return state == expected()

    with contextlib.suppress(AssertionError):  # the caller's assertion shows the difference
        wait_for(settled, timeout_s, "the ledger catching up with the pure fold", 1.5)
    return last[0]


def touchpoints_in_log(kafka: KafkaSettings) -> list[bytes]:
    """Every touchpoint the log holds (repeats included), partition by partition."""
    return [r.value for r in read_topic_sync(kafka, kafka.names().touchpoints) if r.value]


def difference(found: Mapping[Any, Any], wanted: Mapping[Any, Any], most: int = 5) -> str:
    """How two mappings differ, shortly: keys only in one, and the first values that differ."""
    missing = sorted(wanted.keys() - found.keys())
    extra = sorted(found.keys() - wanted.keys())
    changed = sorted(k for k in wanted.keys() & found.keys() if wanted[k] != found[k])
    lines = [f"{len(missing)} missing, {len(extra)} extra, {len(changed)} different"]
    lines += [f"  missing {k!r}: {wanted[k]!r}" for k in missing[:most]]
    lines += [f"  extra {k!r}: {found[k]!r}" for k in extra[:most]]
    lines += [f"  {k!r}: found {found[k]!r}, wanted {wanted[k]!r}" for k in changed[:most]]
    return "\n".join(lines)


def assert_once_each(kafka: KafkaSettings, state: Expected, expected: Expected) -> None:
    """Nothing lost, nothing twice: the pure fold's journeys (no event repeated) and standing
    flags, and each flag opened once on the flag topic."""
    assert state.journeys == expected.journeys, difference(state.journeys, expected.journeys)
    for events in state.journeys.values():
        assert len(events) == len(set(events))
    assert state.flags == expected.flags, difference(state.flags, expected.flags)
    assert set(opened_counts(read_topic_sync(kafka, kafka.names().flags)).values()) == {1}


def create(kafka: KafkaSettings) -> TopicNames:
    """Create the ledger's topics for a test."""
    asyncio.run(create_topics(kafka))
    return TopicNames(kafka.topic_prefix)


async def produce(
    kafka: KafkaSettings,
    topic: str,
    items: Iterable[tuple[bytes | None, bytes | None]],
    *,
    pause_every: int = 0,
    pause_s: float = 0.0,
) -> int:
    """Send (key, value) pairs with acks=all; optionally pause to spread them over time."""
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", linger_ms=5)
    count = 0
    try:
        await producer.start()  # inside: a producer that cannot reach the broker is closed too
        pending = []
        for key, value in items:
            pending.append(await producer.send(topic, value, key=key))
            count += 1
            if pause_every and count % pause_every == 0:
                await asyncio.gather(*pending)
                pending.clear()
                await asyncio.sleep(pause_s)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def sdk_keyed(lines: Iterable[bytes]) -> list[tuple[bytes | None, bytes | None]]:
    """Lines keyed by their event id, as the producer SDK keys them (spread over partitions)."""
    return [(orjson.loads(line)["event_id"].encode(), line) for line in lines]


def write_config(path: Path, kafka: KafkaSettings, **worker: Any) -> Path:
    """A settings file for `journeys` subprocesses pointing at the test's topics."""
    lines = [
        "[kafka]",
        f'bootstrap_servers = "{kafka.bootstrap_servers}"',
        f'topic_prefix = "{kafka.topic_prefix}"',
        f"partitions = {kafka.partitions}",
    ]
    if worker:
        lines.append("[worker]")
        lines.extend(f"{key} = {orjson.dumps(value).decode()}" for key, value in worker.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class WorkerProcess(bench_workers.WorkerProcess):
    """The benchmark's `journeys worker` subprocess, with what tests do to it besides."""

    def kill(self) -> None:
        """kill -9: no flush, no goodbye to the group."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code, fails if it had to be killed."""
        code = super().stop(timeout_s)
        assert code is not None
        if code == -signal.SIGKILL:
            raise AssertionError(f"worker did not stop within {timeout_s}s; see {self.log}")
        return code

    def log_text(self) -> str:
        """What the worker has logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


class InProcessWorker:
    """A `streams.worker.Worker` on a thread of its own, for tests that need no subprocess."""

    def __init__(
        self,
        kafka: KafkaSettings,
        data_dir: Path,
        clock: Callable[[], datetime],
        extra_rules: dict[str, Detector] | None = None,
    ) -> None:
        from streams.worker import Worker

        self.worker = Worker(kafka, FoldSettings(), data_dir, clock, extra_rules=extra_rules)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.worker.run(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc
            self._ready.set()

    def __enter__(self) -> InProcessWorker:
        self._thread = threading.Thread(target=self._main, name="worker", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        assert self._thread is not None
        self._thread.join(30)
        if self._error is not None:
            raise self._error


async def _topic_size(kafka: KafkaSettings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        ends = await consumer.end_offsets(tps)
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def topic_size(kafka: KafkaSettings, topic: str) -> int:
    """Sum of a topic's end offsets: grows with it, but on Tansu undercounts (see read_topic)."""
    return asyncio.run(_topic_size(kafka, topic))


def wait_for_progress(kafka: KafkaSettings, timeout_s: float, what: str) -> None:
    """Wait until the journey stage writes state again (its changelog grows)."""
    topic = kafka.names().journey_changelog
    before = topic_size(kafka, topic)
    wait_for(lambda: topic_size(kafka, topic) > before, timeout_s, what, 0.2)


class EventFlow:
    """Touchpoints sent from a thread in chunks spread over time, until stopped or used up.

    With `retry`, a chunk whose sending fails (the broker is down) is sent again whole, as a
    producer retrying would: events that got through the first time arrive twice.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        lines: list[bytes],
        chunk: int = 100,
        pause_s: float = 0.3,
        *,
        retry: bool = False,
    ) -> None:
        self.kafka = kafka
        self.lines = lines
        self.chunk = chunk
        self.pause_s = pause_s
        self.retry = retry
        self.sent = 0
        self.resent_chunks = 0
        self.acked: list[bytes] = []
        """The lines of every chunk acknowledged in full."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-flow")

    def _run(self) -> None:
        topic = self.kafka.names().touchpoints
        for start in range(0, len(self.lines), self.chunk):
            if self._stop.is_set():
                return
            lines = self.lines[start : start + self.chunk]
            while True:
                try:
                    self.sent += asyncio.run(produce(self.kafka, topic, sdk_keyed(lines)))
                    break
                except (KafkaError, OSError, TimeoutError):
                    if not self.retry:
                        raise
                    if self._stop.is_set():
                        return
                    self.resent_chunks += 1
                    time.sleep(0.5)
            self.acked.extend(lines)
            time.sleep(self.pause_s)

    def start(self) -> EventFlow:
        """Start sending."""
        self._thread.start()
        return self

    def flowing(self) -> bool:
        """Still sending (not stopped, events left)?"""
        return self._thread.is_alive()

    def stop(self) -> int:
        """Stop sending, wait for the chunk in flight; returns how many events were sent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.sent
