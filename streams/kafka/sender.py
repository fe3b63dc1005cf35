"""Batched produce: records grouped by partition into aiokafka batches, sent together.

One `send()` per record costs about 30 µs of Python in aiokafka; building a batch per
partition and submitting it with `send_batch` is several times cheaper. Keyed records go to
the partition aiokafka's default partitioner would pick, so keys land exactly where
`send(key=...)` from any other producer puts them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped]

from streams.kafka.records import Headers

_PARTITIONER = DefaultPartitioner()


@functools.lru_cache(maxsize=200_000)
def partition_of(key: bytes, count: int) -> int:
    """The partition of `count` a keyed record lands on (Kafka's default murmur2 partitioner).

    Cached: aiokafka's murmur2 is pure Python, and a customer's key recurs batch after batch.
    """
    partitions = list(range(count))
    return int(_PARTITIONER(key, partitions, partitions))


class Outgoing(NamedTuple):
    """One record to produce: to a given partition, or by key when `partition` is None.

    A named tuple: a worker builds one for every output and changelog record, and a frozen
    dataclass costs several times as much to build."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    partition: int | None = None


Grouped = Mapping[tuple[str, int], Iterable[tuple[bytes | None, bytes | None, Headers]]]
"""Records to produce by (topic, partition), each as (key, value, headers)."""


class BatchSender:
    """Sends many records as per-partition batches and waits until all are acknowledged."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partition a keyed record goes to (key None: partition 0 is never chosen blindly)."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(await self.producer.partitions_for(topic))
            self._partitions[topic] = partitions
        if key is None:
            return int(_PARTITIONER(key, partitions, partitions))
        return partition_of(key, len(partitions))  # partitions are always 0..n-1

    async def send(self, records: Iterable[Outgoing]) -> dict[tuple[str, int], int]:
        """Produce every record, in order per partition; return each partition's next offset."""
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Headers]]] = {}
        counts = self._partitions
        for topic, key, value, headers, partition in records:
            if partition is None:
                known = counts.get(topic)
                if key is None or known is None:
                    partition = await self.partition_for(topic, key)
                else:  # the usual case, without a coroutine per record
                    partition = partition_of(key, len(known))
            group = groups.get((topic, partition))
            if group is None:
                group = groups[(topic, partition)] = []
            group.append((key, value, headers))
        return await self.send_grouped(groups)

    async def send_grouped(self, groups: Grouped) -> dict[tuple[str, int], int]:
        """Produce records already grouped by topic and partition, in order within each;
        return each partition's next offset (a batch's changelog is grouped by partition)."""
        pending: list[tuple[tuple[str, int], int, asyncio.Future[Any]]] = []
        for (topic, partition), items in groups.items():
            batch = self.producer.create_batch()
            for key, value, headers in items:
                listed = list(headers)
                if batch.append(timestamp=None, key=key, value=value, headers=listed):
                    continue
                if batch.record_count():
                    pending.append(await self._submit(batch, topic, partition))
                batch = self.producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value, headers=listed):
                    continue
                # Larger than a whole batch: send() sizes one for it (up to max_request_size).
                future = await self.producer.send(
                    topic, value, key=key, partition=partition, headers=listed
                )
                pending.append(((topic, partition), 1, future))
            if batch.record_count():
                pending.append(await self._submit(batch, topic, partition))
        metadata = await asyncio.gather(*(future for _, _, future in pending))
        ends: dict[tuple[str, int], int] = {}
        for (tp, count, _), meta in zip(pending, metadata, strict=True):
            ends[tp] = max(ends.get(tp, 0), meta.offset + count)
        return ends

    async def _submit(
        self, batch: Any, topic: str, partition: int
    ) -> tuple[tuple[str, int], int, asyncio.Future[Any]]:
        count = batch.record_count()
        future = await self.producer.send_batch(batch, topic, partition=partition)
        return (topic, partition), count, future
