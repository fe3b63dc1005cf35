"""The batch loop that drives a stage over aiokafka: consume, process, produce, persist.

At-least-once end to end, effectively once in state: a batch's outputs are produced and
acknowledged (acks=all) before its state changes go to the changelog, and the changelog before
the local RocksDB write that also records the next input offset. First of all, an offset commit
through the consumer group fences a worker that was frozen while the group gave its partition
away (the long part of a batch is processing it, where a pause most likely lands): the group
refuses the old generation, and the batch is dropped, outputs and state. The committed offset
is only that fence: the stored offset is where reading resumes. A crash at any point replays
the batch from the stored offset; the stages are idempotent by event id. A partition that moves
to this worker is restored from its compacted changelog, from where the local copy left off,
a batch at a time (`streams.stages.units`: a batch a crash cut short is never half applied).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    RebalanceInProgressError,
)

from streams.config import KafkaSettings
from streams.kafka.records import InRecord, OutRecord, destination_topics, in_records
from streams.kafka.sender import BatchSender, Outgoing
from streams.stages.cut import Gaps, SameCut
from streams.stages.fetch_wait import FetchWait, poll_outcome
from streams.stages.restore import restore_changelog
from streams.stages.units import unit_records, whole_records
from streams.store.keys import INFLIGHT_KEY, OFFSET_KEY
from streams.store.state import BatchState, LocalStore

log = logging.getLogger(__name__)

Process = Callable[[BatchState, list[InRecord]], list[OutRecord]]
"""A stage's batch function: one partition's records in, records to produce out."""

Tick = Callable[[BatchState], list[OutRecord]]
"""A stage's timer function: evaluate one partition again without new records."""

_REPORT_INTERVAL_S = 10.0
_TAKE_OVER_RETRY_S = 1.0
_GAP_CONFIRM_S = 3.0


@dataclass(slots=True)
class StageStats:
    """Counters a stage keeps for progress and metrics."""

    records: int = 0
    batches: int = 0
    outputs: int = 0
    restored: int = 0
    restore_seconds: float = 0.0
    dead_letters: int = 0
    cpu_seconds: float = 0.0
    """CPU time of the stage's batch function (`time.thread_time`), for per-stage figures:
    the Kafka client, the event loop and persisting are outside it."""

    def count(self, records: int, batches: int, outs: Sequence[OutRecord]) -> None:
        """Count batches processed: their input records and what they produced."""
        self.records += records
        self.batches += batches
        self.outputs += len(outs)
        self.dead_letters += sum(
            1 for out in outs if out.destination == "dead_letters" and out.value is not None
        )  # a tombstone (erasure superseding a dead letter) is not one


def stage_consumer(name: str, group: str | None, settings: KafkaSettings) -> AIOKafkaConsumer:
    """A stage's consumer: its own group (`<prefix>.<stage>` unless named), offsets committed
    by the stage, batches of at most `max_batch_records`."""
    return AIOKafkaConsumer(
        **settings.client_options(),
        group_id=group or settings.names().stage_group(name),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        rebalance_timeout_ms=settings.rebalance_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_records=settings.max_batch_records,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )


@dataclass
class Stage:
    """One processor: its input and changelog topics, its store and its batch function."""

    name: str
    input_topic: str
    changelog_topic: str
    store: LocalStore
    process: Process
    tick: Tick | None = None
    tick_interval_s: float = 2.0
    tick_max_lag: int | None = None
    """A partition's timer pass waits while more input records are unread (`_behind`): ingest's
    retention must not forget a customer whose newer events wait in the input. None: never."""
    group: str | None = None
    on_revoke: Callable[[int], None] = lambda _partition: None
    on_assign: Callable[[int], None] = lambda _partition: None
    same_cut: bool = False
    """Whether a batch read again after a crash must end where the first attempt ended (its
    outputs depend on the cut: see `streams.stages.cut`)."""
    durable_first: Callable[[bytes], bool] | None = None
    """State keys whose new values go to the changelog and the store before the batch's
    outputs (ingest's key rings: an output sealed with a ring that a crash then lost would
    name a key nobody holds). Sent again with the rest of the changes, in the usual order."""
    stats: StageStats = field(default_factory=StageStats)


@dataclass(frozen=True, slots=True)
class _Done:
    """One partition's processed batch, waiting to be persisted."""

    state: BatchState
    outs: list[OutRecord]
    offset: int | None
    """The next input offset once persisted (None: a timer pass, the offset stays)."""
    records: int = 0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: StageRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        log.info("%s: revoked %s", self.runner.stage.name, sorted(tp.partition for tp in revoked))
        async with self.runner.lock:  # let the batch in flight finish and persist
            for tp in revoked:
                self.runner.owned.discard(tp.partition)
                self.runner.waiting.discard(tp.partition)
                self.runner.cut.forget(tp.partition)
                self.runner.gaps.forget(tp.partition)
                self.runner.stage.on_revoke(tp.partition)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        # aiokafka logs and swallows an exception raised here, leaving the partitions assigned
        # and fetched from the group's committed offsets: a restore that failed (the broker
        # went away again) must not leave them so. They are paused until taken over.
        log.info("%s: assigned %s", self.runner.stage.name, sorted(tp.partition for tp in assigned))
        async with self.runner.lock:
            if assigned:
                self.runner.consumer.pause(*assigned)
            self.runner.waiting.update(tp.partition for tp in assigned)
            await self.runner.take_over()


class StageRunner:
    """Runs one stage in a consumer group until asked to stop."""

    def __init__(self, stage: Stage, settings: KafkaSettings, producer: AIOKafkaProducer) -> None:
        self.stage = stage
        self.settings = settings
        self.producer = producer
        self.sender = BatchSender(producer)
        self.names = settings.names()
        self.topics = destination_topics(self.names)
        self.lock = asyncio.Lock()
        self.owned: set[int] = set()
        self.waiting: set[int] = set()
        """Assigned, paused, not yet restored and positioned (see `take_over`)."""
        self.cut = SameCut()
        self.gaps = Gaps(_GAP_CONFIRM_S)
        self.fetch_wait = FetchWait(settings.fetch_max_wait_ms)
        self.consumer = stage_consumer(stage.name, stage.group, settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and process until `stop` is set."""
        self.consumer.subscribe([self.stage.input_topic], listener=_Listener(self))
        await self.consumer.start()
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.stage.tick_interval_s
        next_report = loop.time() + _REPORT_INTERVAL_S
        next_take_over = loop.time()
        try:
            while not stop.is_set():
                if self.waiting and loop.time() >= next_take_over:
                    async with self.lock:
                        if not await self.take_over():
                            next_take_over = loop.time() + _TAKE_OVER_RETRY_S
                batches = await self.consumer.getmany(timeout_ms=200)
                self._adapt_fetch_wait(batches)
                if loop.time() >= next_report:
                    next_report = loop.time() + _REPORT_INTERVAL_S
                    self.report()
                async with self.lock:
                    owned = [
                        (tp, messages)
                        for tp, messages in sorted(batches.items(), key=lambda b: b[0].partition)
                        if tp.partition in self.owned and messages
                    ]
                    if owned:
                        await self._handle(owned)
                    if self.stage.tick is not None and loop.time() >= next_tick:
                        next_tick = loop.time() + self.stage.tick_interval_s
                        for partition in sorted(self.owned):
                            if not self._behind(partition):
                                await self._tick(partition)
        finally:
            await self.consumer.stop()

    async def take_over(self) -> bool:
        """Restore each assigned partition not yet owned, position it at its stored offset and
        resume it; False when the broker failed (those left stay paused, tried again later).

        Only then are a partition's records processed: whatever the consumer fetched for it
        before (from the group's committed offset) is never handed out. The partitions restore
        at once: a restore ends with a poll the broker holds for its whole fetch wait (0.6 s on
        Tansu), and one after another they kept the last partition's records waiting that many
        times over (four partitions: 2.5 s after every start and rebalance).
        """
        partitions = sorted(self.waiting)
        offsets = await asyncio.gather(*(self._restored(p) for p in partitions))
        for partition, offset in zip(partitions, offsets, strict=True):
            if offset is None:
                continue
            tp = TopicPartition(self.stage.input_topic, partition)
            self.stage.on_assign(partition)
            log.info("%s: partition %d from offset %d", self.stage.name, partition, offset)
            self.consumer.seek(tp, offset)
            self.gaps.forget(partition)
            self.cut.forget(partition)
            self.expect_same_cut(partition, offset)
            self.waiting.discard(partition)
            self.owned.add(partition)
            self.consumer.resume(tp)
        return None not in offsets

    async def _restored(self, partition: int) -> int | None:
        """Restore one partition; the offset to read its input from, None if the broker failed."""
        tp = TopicPartition(self.stage.input_topic, partition)
        try:
            await self.restore(partition)
            offset = self.stage.store.position(partition, OFFSET_KEY)
            if offset is None:
                # seek_to_beginning() resets lazily and can hand out a batch twice
                offset = (await self.consumer.beginning_offsets([tp]))[tp]
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning(
                "%s: partition %d not taken over yet (%r): it stays paused, trying again",
                self.stage.name,
                partition,
                exc,
            )
            return None
        return offset

    def expect_same_cut(self, partition: int, offset: int) -> None:
        """After a crash with a batch in flight, read that batch again with its own end."""
        inflight = self.stage.store.position(partition, INFLIGHT_KEY)
        if self.stage.same_cut and inflight is not None and inflight > offset:
            log.info(
                "%s: partition %d: reading %d..%d again as one batch, as before the crash",
                self.stage.name,
                partition,
                offset,
                inflight - 1,
            )
            self.cut.expect(partition, inflight)

    def _in_sequence(self, tp: TopicPartition, messages: list[Any]) -> list[Any]:
        """The messages that continue exactly where this partition's stored state left off.

        The stored offset, written with the state, is the truth; the consumer's position is not
        (a rebalance can hand out a batch fetched before or after the listener's seek). Records
        before it were processed already; a batch starting after it would skip records, so read
        again from the stored offset, until the broker confirms it has no records there
        (`streams.stages.cut.Gaps`).
        """
        stored = self.stage.store.position(tp.partition, OFFSET_KEY)
        expected = self.cut.next_offset(tp.partition, stored)
        if expected is None:
            return messages
        first = messages[0].offset
        if self.gaps.accept(tp.partition, expected, first, asyncio.get_running_loop().time()):
            if first > expected:
                log.warning(
                    "%s: partition %d has no records %d..%d (the broker kept answering a read "
                    "from %d with %d): skipped",
                    self.stage.name,
                    tp.partition,
                    expected,
                    first - 1,
                    expected,
                    first,
                )
            return [m for m in messages if m.offset >= expected]
        log.warning(
            "%s: partition %d batch starts at %d, state is at %d: reading again from there",
            self.stage.name,
            tp.partition,
            first,
            expected,
        )
        self.consumer.seek(tp, expected)
        return []

    async def _handle(self, batches: list[tuple[TopicPartition, list[Any]]]) -> None:
        """Process one `getmany`: each partition's batch, then one persist for them all."""
        done: list[_Done] = []
        touched: list[int] = []
        try:
            for tp, messages in batches:
                messages, seek = self.cut.take(tp.partition, self._in_sequence(tp, messages))
                if seek is not None:
                    self.consumer.seek(tp, seek)  # past the cut: read those again next
                if not messages:
                    continue
                records = in_records(messages)
                touched.append(tp.partition)
                state = BatchState(self.stage.store, tp.partition)
                began = time.thread_time()
                outs = self.stage.process(state, records)
                self.stage.stats.cpu_seconds += time.thread_time() - began
                state.drop_unchanged()  # no changelog record for a value written back as it was
                state.put(OFFSET_KEY, str(records[-1].offset + 1).encode())
                done.append(_Done(state, outs, records[-1].offset + 1, len(records)))
            if done and not await self._persist(done):
                for partition in touched:
                    self.stage.on_revoke(partition)
                self._read_again(touched)
                return
        except BaseException:
            for partition in touched:
                self.stage.on_revoke(partition)  # drop hot copies built from these batches
            raise
        for item in done:
            self.stage.stats.count(item.records, 1, item.outs)

    def _read_again(self, partitions: list[int]) -> None:
        """Position partitions whose batches were dropped at their stored offsets again.

        The consumer's position is already past those batches; if the group lets this worker
        keep the partitions, their records must still be read (not skipped as a gap).
        """
        assigned = self.consumer.assignment()
        for partition in partitions:
            tp = TopicPartition(self.stage.input_topic, partition)
            stored = self.stage.store.position(partition, OFFSET_KEY)
            if partition in self.owned and tp in assigned:
                if stored is None:
                    self.waiting.add(partition)  # positioned from the beginning, as on assignment
                    self.owned.discard(partition)
                    self.consumer.pause(tp)
                else:
                    self.consumer.seek(tp, stored)
                    self.cut.forget(partition)
                    self.expect_same_cut(partition, stored)

    def report(self) -> None:
        """Log where each partition is: owned or not, stored offset, fetched, high water."""
        assigned = sorted(tp.partition for tp in self.consumer.assignment())
        parts = []
        for partition in sorted(set(assigned) | self.owned):
            tp = TopicPartition(self.stage.input_topic, partition)
            parts.append(
                f"p{partition}{'' if partition in self.owned else '(not owned)'} "
                f"stored={self.stage.store.position(partition, OFFSET_KEY)} "
                f"position={self._position(tp)} "
                f"highwater={self.consumer.highwater(tp)}"
            )
        log.info(
            "%s: %d records in %d batches; fetches wait %d ms; assigned %s; %s",
            self.stage.name,
            self.stage.stats.records,
            self.stage.stats.batches,
            self.fetch_wait.wait_ms,
            assigned,
            "; ".join(parts) or "no partitions",
        )

    def _adapt_fetch_wait(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Wait longer in each fetch while an owned partition is behind and gets nothing."""
        got = {tp.partition for tp, messages in batches.items() if messages}
        behind, stalled = poll_outcome(
            [
                (
                    partition,
                    self.consumer.highwater(TopicPartition(self.stage.input_topic, partition)),
                    self.stage.store.position(partition, OFFSET_KEY) or 0,
                )
                for partition in self.owned
            ],
            got,
            sum(len(messages) for messages in batches.values()),
            self.settings.max_batch_records,
        )
        before = self.fetch_wait.wait_ms
        wait = self.fetch_wait.observe(behind=behind, stalled=stalled)
        if wait == before:
            return
        fetcher = getattr(self.consumer, "_fetcher", None)
        if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
            return  # another aiokafka: the wait stays as configured
        fetcher._fetch_max_wait_ms = wait
        if wait == self.fetch_wait.max_ms:
            log.warning(
                "%s: partitions behind their high water get no records: fetches wait %d ms",
                self.stage.name,
                wait,
            )
        else:
            log.debug("%s: fetches wait %d ms", self.stage.name, wait)

    def _position(self, tp: TopicPartition) -> int | None:
        """The consumer's fetch position (None when it has none yet), for the report."""
        try:
            state = self.consumer._subscription.subscription.assignment.state_value(tp)
            return int(state.position) if state is not None and state.has_valid_position else None
        except (AttributeError, AssertionError, TypeError):
            return None

    def lag(self) -> dict[int, int]:
        """Records not yet processed, per owned partition (from the last fetch's high water)."""
        lags: dict[int, int] = {}
        for partition in sorted(self.owned):
            tp = TopicPartition(self.stage.input_topic, partition)
            highwater = self.consumer.highwater(tp)
            done = self.stage.store.position(partition, OFFSET_KEY) or 0
            if highwater is not None:
                lags[partition] = max(0, highwater - done)
        return lags

    def _behind(self, partition: int) -> bool:
        """Whether the partition's timer pass waits: more input than `tick_max_lag` unread, or
        nothing fetched since it was taken over (how far behind is unknown)."""
        most, lag = self.stage.tick_max_lag, self.lag().get(partition)
        return most is not None and (lag is None or lag > most)

    async def _tick(self, partition: int) -> None:
        assert self.stage.tick is not None
        state = BatchState(self.stage.store, partition)
        outs = self.stage.tick(state)
        state.drop_unchanged()
        if outs or state.changes:
            offset = self.stage.store.position(partition, OFFSET_KEY)
            if not await self._persist([_Done(state, outs, offset)]):
                self.stage.on_revoke(partition)

    async def _still_owner(self, offsets: dict[int, int]) -> bool:
        """Fence a zombie: commit through the group, which refuses an old generation.

        A worker frozen past its session timeout (a long GC pause, SIGSTOP) wakes up still
        holding batches for partitions the group has given to another worker. Its commit
        then fails, and it must not write those batches' state after the new owner's.
        """
        if not offsets:
            return True
        topic = self.stage.input_topic
        try:
            await self.consumer.commit(
                {TopicPartition(topic, partition): offset for partition, offset in offsets.items()}
            )
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            log.warning(
                "%s: partitions %s belong to another worker now (%r): batch state dropped; "
                "the new owner resumes from the stored offsets",
                self.stage.name,
                sorted(offsets),
                exc,
            )
            return False
        return True

    async def _persist(self, done: list[_Done]) -> bool:
        """The ownership fence, then outputs, then the changelog, then the local store.

        One round trip of each for every partition of a `getmany`, not one per partition.
        """
        offsets = {d.state.partition: d.offset for d in done if d.offset is not None}
        if not await self._still_owner(offsets):
            return False
        if self.stage.same_cut:
            await self._note_inflight(offsets)
        await self._persist_first(done)
        topics = self.topics
        await self.sender.send(
            Outgoing(topics[out.destination], out.key, out.value, out.headers)
            for item in done
            for out in item.outs
        )
        changelog = self.stage.changelog_topic
        ends = await self.sender.send_grouped(
            {
                (changelog, item.state.partition): unit_records(
                    item.state.changes, str(item.offset).encode()
                )
                for item in done
            }
        )
        for item in done:
            partition = item.state.partition
            self.stage.store.write(partition, item.state.changes, ends.get((changelog, partition)))
        return True

    async def _note_inflight(self, offsets: dict[int, int]) -> None:
        """Where each batch ends, before its outputs, for a restart here and for a worker that
        takes the partition over (`streams.stages.cut`: the outputs repeat with the same ids)."""
        await self._write_alone({p: {INFLIGHT_KEY: str(o).encode()} for p, o in offsets.items()})

    async def _write_alone(self, changes: Mapping[int, Mapping[bytes, bytes | None]]) -> None:
        """Records that stand alone to the changelog, then the local store (no position moves)."""
        changelog = self.stage.changelog_topic
        await self.sender.send_grouped(
            {(changelog, p): whole_records(c) for p, c in changes.items()}
        )
        for partition, values in changes.items():
            self.stage.store.write(partition, dict(values))

    async def _persist_first(self, done: list[_Done]) -> None:
        """The `durable_first` values the batches wrote, to the changelog then the store (no
        offset or changelog position moves: a batch read again finds them and reuses them)."""
        wanted = self.stage.durable_first
        if wanted is None:
            return
        first = {
            item.state.partition: {k: v for k, v in item.state.changes.items() if wanted(k) and v}
            for item in done
        }
        first = {partition: changes for partition, changes in first.items() if changes}
        if first:
            await self._write_alone(first)

    async def restore(self, partition: int) -> None:
        """Catch the local store up with the partition's changelog."""
        await restore_changelog(self.stage, self.settings, partition)
