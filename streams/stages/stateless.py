"""The batch loop of a stage without state: consume, process, produce, then commit.

A stateless stage (the validate stage) keeps nothing between records, so the consumer group's
committed offset is where reading resumes: a batch's outputs are produced and acknowledged
(acks=all) before its next offsets are committed. A crash, or a commit the group refuses (the
partition moved while the batch was processed), has the batch read again: at-least-once, which
the next stage absorbs (ingest drops an event id it has seen with the same content). No
store, no changelog, no restore: a partition moving to another worker costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError,
    IllegalStateError,
    RebalanceInProgressError,
)

from streams.config import KafkaSettings
from streams.kafka.records import InRecord, OutRecord, destination_topics, in_records
from streams.kafka.sender import BatchSender, Outgoing
from streams.stages.runner import StageStats, stage_consumer

log = logging.getLogger(__name__)

StatelessProcess = Callable[[list[list[InRecord]]], list[OutRecord]]
"""A stateless stage's batch function: a poll's records, a list per partition, in; records to
produce out."""

_REPORT_INTERVAL_S = 10.0

_CATCH_UP_S = 0.5
"""How long a poll waits for the records of partitions with a backlog it has not fetched yet."""


@dataclass
class StatelessStage:
    """A processor without state: its input topic, its batch function and its counters."""

    name: str
    input_topic: str
    process: StatelessProcess
    group: str | None = None
    stats: StageStats = field(default_factory=StageStats)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: StatelessRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self.runner.lock:  # let the batch in flight finish and commit
            for tp in revoked:
                self.runner.owned.discard(tp.partition)
                self.runner.done.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("%s: assigned %s", self.runner.stage.name, sorted(tp.partition for tp in assigned))
        self.runner.owned.update(tp.partition for tp in assigned)


class StatelessRunner:
    """Runs a stateless stage in a consumer group until asked to stop."""

    def __init__(
        self, stage: StatelessStage, settings: KafkaSettings, producer: AIOKafkaProducer
    ) -> None:
        self.stage = stage
        self.settings = settings
        self.sender = BatchSender(producer)
        self.names = settings.names()
        self.topics = destination_topics(self.names)
        self.lock = asyncio.Lock()
        self.owned: set[int] = set()
        self.done: dict[int, int] = {}
        """Per owned partition, the next offset to process (as far as this worker knows)."""
        self.consumer = stage_consumer(stage.name, stage.group, settings)
        self.stalled: set[TopicPartition] = set()
        """Partitions a poll waited for in vain, not waited for until they deliver (`_poll`)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and process until `stop` is set."""
        self.consumer.subscribe([self.stage.input_topic], listener=_Listener(self))
        await self.consumer.start()
        loop = asyncio.get_running_loop()
        next_report = loop.time() + _REPORT_INTERVAL_S
        try:
            while not stop.is_set():
                batches = await self._poll()
                if loop.time() >= next_report:
                    next_report = loop.time() + _REPORT_INTERVAL_S
                    self.report()
                async with self.lock:
                    owned = [
                        (tp, messages)
                        for tp, messages in sorted(batches.items(), key=lambda b: b[0].partition)
                        if messages
                    ]
                    if owned:
                        await self._handle(owned)
        finally:
            await self.consumer.stop()

    async def _poll(self) -> dict[TopicPartition, list[Any]]:
        """Wait for records, then take an equal share of every assigned partition with records
        waiting: a poll otherwise drains one partition's fetch before the next one's, and a
        partition whose first fetch came back first ran thousands of records ahead of the
        others (`streams.stages.order`)."""
        assigned = self.consumer.assignment()
        share = max(1, self.settings.max_batch_records // max(1, len(assigned)))
        batches: dict[TopicPartition, list[Any]] = await self.consumer.getmany(
            timeout_ms=200, max_records=share
        )
        if not batches:
            return batches
        for tp in sorted(assigned - batches.keys(), key=lambda tp: tp.partition):
            batches.update(await self.consumer.getmany(tp, timeout_ms=0, max_records=share))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CATCH_UP_S
        self.stalled.difference_update(batches)
        behind = [tp for tp in assigned - batches.keys() if await self._waiting(tp)]
        while behind and (left := deadline - loop.time()) > 0:
            got = await self.consumer.getmany(
                *behind, timeout_ms=int(left * 1000), max_records=share
            )
            if not got:
                break
            batches.update(got)
            behind = [tp for tp in behind if tp not in got]
        self.stalled.update(behind)
        return batches

    async def _waiting(self, tp: TopicPartition) -> bool:
        """Whether a poll should wait for a partition's records: never fetched yet, or fetched
        short of its high watermark (a backlog's fetch is cut), and not stalled. A partition
        that brought nothing in a whole wait, whatever the broker's reason, is not waited for
        again until it delivers: a poll never pays the wait twice for it."""
        if tp in self.stalled or tp not in self.consumer.assignment():  # or revoked meanwhile
            return False
        highwater = self.consumer.highwater(tp)
        if highwater is None:
            return True
        try:
            position = await self.consumer.position(tp)
        except IllegalStateError:  # revoked meanwhile
            return False
        return bool(highwater > position)

    async def _handle(self, batches: list[tuple[TopicPartition, list[Any]]]) -> None:
        """Process one poll: every partition's records at once, one produce, then one commit."""
        began = time.thread_time()
        outs = self.stage.process([in_records(messages) for _, messages in batches])
        self.stage.stats.cpu_seconds += time.thread_time() - began
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches}
        count = sum(len(messages) for _, messages in batches)
        topics = self.topics
        await self.sender.send(
            Outgoing(topics[out.destination], out.key, out.value, out.headers) for out in outs
        )
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            log.warning(
                "%s: partitions %s belong to another worker now (%r): their new owner reads "
                "the batch again (its events are dropped as repeats downstream)",
                self.stage.name,
                sorted(tp.partition for tp in offsets),
                exc,
            )
            return
        for tp, offset in offsets.items():
            self.done[tp.partition] = offset
        self.stage.stats.count(count, len(batches), outs)

    def lag(self) -> dict[int, int]:
        """Records not yet processed, per owned partition (from the last fetch's high water)."""
        lags: dict[int, int] = {}
        for partition in sorted(self.owned):
            highwater = self.consumer.highwater(TopicPartition(self.stage.input_topic, partition))
            if highwater is not None:
                lags[partition] = max(0, highwater - self.done.get(partition, 0))
        return lags

    def report(self) -> None:
        """Log what this stage has processed and how far behind each owned partition is."""
        log.info(
            "%s: %d records in %d batches; lag by partition %s",
            self.stage.name,
            self.stage.stats.records,
            self.stage.stats.batches,
            self.lag() or "none",
        )
