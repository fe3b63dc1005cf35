"""The validate stage's poll waits for a partition behind its high watermark once, not forever.

The broker side (equal shares of a real backlog) is `tests/integration/test_stateless_poll.py`;
this holds the runner's decision with a consumer whose answers the test sets: a partition whose
high watermark says records wait but whose fetches bring none must not cost every poll the wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]

from streams.config import KafkaSettings
from streams.kafka.records import InRecord, OutRecord
from streams.stages.stateless import StatelessRunner, StatelessStage

A = TopicPartition("t.touchpoints", 0)
B = TopicPartition("t.touchpoints", 1)


class Answers:
    """A consumer that hands out what the test queued and reports the positions it is told."""

    def __init__(self) -> None:
        self.queued: dict[TopicPartition, list[list[object]]] = {A: [], B: []}
        self.highwaters: dict[TopicPartition, int | None] = {A: 5, B: 10}
        self.waits: list[tuple[int, ...]] = []

    def assignment(self) -> set[TopicPartition]:
        return {A, B}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters[tp]

    async def position(self, _tp: TopicPartition) -> int:
        return 0

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, **_limits: int
    ) -> dict[TopicPartition, list[object]]:
        wanted = partitions or (A, B)
        got = {tp: self.queued[tp].pop(0) for tp in wanted if self.queued[tp]}
        if not got and timeout_ms and partitions:
            self.waits.append(tuple(tp.partition for tp in partitions))
        return got


async def _runner(answers: Answers) -> StatelessRunner:
    """A runner over `answers` (the consumer it made, never started, closed)."""

    def nothing(_partitions: list[list[InRecord]]) -> list[OutRecord]:
        return []

    producer: Any = object.__new__(AIOKafkaProducer)  # never started: nothing is sent
    runner = StatelessRunner(
        StatelessStage("probe", "t.touchpoints", nothing),
        KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix="t"),
        producer,
    )
    await runner.consumer.stop()
    runner.consumer = answers
    return runner


def test_a_partition_that_brings_nothing_is_waited_for_once_until_it_delivers() -> None:
    answers = Answers()

    async def polls() -> list[set[int]]:
        runner = await _runner(answers)  # its consumer is made in a running loop
        seen = []
        for batch in ([1], [2], [3]):
            answers.queued[A].append(batch)
            seen.append({tp.partition for tp in await runner._poll()})
        answers.queued[A].append([4])
        answers.queued[B].append([1])  # B delivers: waited for again when behind
        seen.append({tp.partition for tp in await runner._poll()})
        answers.queued[A].append([5])
        seen.append({tp.partition for tp in await runner._poll()})
        return seen

    seen = asyncio.run(polls())

    assert seen == [{0}, {0}, {0}, {0, 1}, {0}]
    assert answers.waits == [(1,), (1,)]  # the first poll, and the first after B delivered
