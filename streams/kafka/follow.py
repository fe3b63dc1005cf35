"""Following a small topic whole: every partition from the start, no consumer group, no commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from streams.config import KafkaSettings

OnRecord = Callable[[bytes | None, bytes | None], None]
"""Called with each record's key and value, in order per partition."""


async def follow_topic(
    kafka: KafkaSettings, topic: str, on_record: OnRecord, stop: asyncio.Event
) -> None:
    """Read every partition of `topic` from the start, then keep up, until `stop` is set."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()  # a topic this client has not seen yet
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=5_000)
            for messages in batches.values():
                for message in messages:
                    on_record(message.key, message.value)
    finally:
        await consumer.stop()
