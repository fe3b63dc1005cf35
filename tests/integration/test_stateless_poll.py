"""A stateless stage's poll takes an equal share of every partition with a backlog.

A poll drained one partition's fetch before the next one's, and at a start with a backlog the
partition whose first fetch came back first ran thousands of records ahead of the others: one
customer's touchpoints, spread over all partitions by their event ids, reached stitching out of
the order they happened (`streams.stages.order`).
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from streams.admin import TopicSpec, ensure_topics
from streams.config import KafkaSettings, TopicNames
from streams.kafka.records import InRecord, OutRecord
from streams.stages.stateless import StatelessRunner, StatelessStage
from tests.integration.runner_support import fresh_kafka, run_until

PARTITIONS = 4
BACKLOG = 300
"""Records waiting in each partition when the stage starts: 1.2 MB, more than a fetch returns."""
SHARE = 25


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return fresh_kafka(bootstrap_servers, SHARE * PARTITIONS, PARTITIONS)


async def _backlog(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(kafka.topic_prefix)
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(names.touchpoints, PARTITIONS)])
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    try:
        for partition in range(PARTITIONS):
            sends = [
                await producer.send(names.touchpoints, b"x" * 4_000, partition=partition)
                for _ in range(BACKLOG)
            ]
            await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return names


async def _polls(kafka: KafkaSettings, names: TopicNames) -> list[dict[int, list[int]]]:
    """Run the stage until every record is processed (or 30 s); each poll's offsets."""
    polls: list[dict[int, list[int]]] = []

    def note(partitions: list[list[InRecord]]) -> list[OutRecord]:
        polls.append({records[0].partition: [r.offset for r in records] for records in partitions})
        return []

    stage = StatelessStage("probe", names.touchpoints, note)
    runners: list[StatelessRunner] = []

    def runner_for(producer: AIOKafkaProducer) -> StatelessRunner:
        runners.append(StatelessRunner(stage, kafka, producer))
        return runners[0]

    def all_done() -> bool:
        return runners[0].done == dict.fromkeys(range(PARTITIONS), BACKLOG)

    await run_until(kafka, runner_for, all_done)
    return polls


def test_each_poll_of_a_backlog_takes_an_equal_share_of_every_partition(
    kafka: KafkaSettings,
) -> None:
    names = asyncio.run(_backlog(kafka))

    polls = asyncio.run(_polls(kafka, names))

    for partition in range(PARTITIONS):  # every record once, in order
        offsets = [o for poll in polls for o in poll.get(partition, [])]
        assert offsets == list(range(BACKLOG)), partition
    taken = dict.fromkeys(range(PARTITIONS), 0)
    for poll in polls:  # no partition runs ahead of another by more than a share
        for partition, offsets in poll.items():
            taken[partition] += len(offsets)
        unfinished = [n for n in taken.values() if n < BACKLOG]
        assert not unfinished or max(taken.values()) - min(unfinished) <= SHARE, polls
    assert set(polls[0]) == set(range(PARTITIONS))
