"""The session broker behaves as the ledger needs: explicit topics, acks=all, ordered groups."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from journeys.devbroker import (
    BrokerNotRunningError,
    BrokerStartError,
    BrokerStartTimeoutError,
    EmbeddedBroker,
)
from streams.admin import TopicMismatchError, TopicSpec, ensure_topics_sync

PARTITIONS = 4
RECORDS = 1000
KEYS = 37


def _unique(prefix: str) -> str:
    """A topic or group name no other test run uses (the broker may be shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _partition_count(bootstrap_servers: str, topic: str) -> int:
    """Number of partitions of ``topic`` according to a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, described
    return len(described["partitions"])


@pytest.mark.timeout(60)
def test_topic_creation_is_explicit_and_idempotent(bootstrap_servers: str) -> None:
    topic = _unique("it-topics")
    spec = TopicSpec(topic, PARTITIONS, {"cleanup.policy": "delete"})

    ensure_topics_sync(bootstrap_servers, [spec])
    assert asyncio.run(_partition_count(bootstrap_servers, topic)) == PARTITIONS

    ensure_topics_sync(bootstrap_servers, [spec, (topic, PARTITIONS)])  # already there: fine
    assert asyncio.run(_partition_count(bootstrap_servers, topic)) == PARTITIONS

    with pytest.raises(TopicMismatchError, match="exists with 4 partitions"):
        ensure_topics_sync(bootstrap_servers, [(topic, PARTITIONS + 1)])


async def _produce(bootstrap_servers: str, topic: str) -> dict[bytes, set[int]]:
    """Send RECORDS keyed records with acks=all; return the partitions each key went to."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for seq in range(RECORDS):
            key = f"customer-{seq % KEYS}".encode()
            value = f"{seq}".encode()
            futures.append((key, await producer.send(topic, value, key=key)))
        placed: dict[bytes, set[int]] = defaultdict(set)
        for key, fut in futures:
            metadata = await fut
            placed[key].add(metadata.partition)
        return placed
    finally:
        await producer.stop()


async def _consume(
    bootstrap_servers: str, topic: str, group: str
) -> tuple[dict[int, list[tuple[int, bytes, bytes]]], dict[TopicPartition, int | None]]:
    """Read RECORDS records via a consumer group; return them per partition and the commits."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # Tansu holds a JoinGroup for about session_timeout/2; 6 s is Kafka's minimum.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        by_partition: dict[int, list[tuple[int, bytes, bytes]]] = defaultdict(list)
        seen = 0
        deadline = time.monotonic() + 45
        while seen < RECORDS and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=300)
            for tp, records in batches.items():
                for record in records:
                    by_partition[tp.partition].append((record.offset, record.key, record.value))
                    seen += 1
        await consumer.commit()
        committed = {
            TopicPartition(topic, p): await consumer.committed(TopicPartition(topic, p))
            for p in range(PARTITIONS)
        }
        return by_partition, committed
    finally:
        await consumer.stop()


@pytest.mark.timeout(120)
def test_produce_acks_all_then_consume_in_order_via_group(bootstrap_servers: str) -> None:
    topic = _unique("it-roundtrip")
    ensure_topics_sync(bootstrap_servers, [(topic, PARTITIONS)])

    placed = asyncio.run(_produce(bootstrap_servers, topic))
    by_partition, committed = asyncio.run(_consume(bootstrap_servers, topic, _unique("it-group")))

    assert sum(len(v) for v in by_partition.values()) == RECORDS
    assert all(len(parts) == 1 for parts in placed.values()), "a key was split across partitions"
    assert len({p for parts in placed.values() for p in parts}) > 1, "all keys on one partition"

    values_seen: list[int] = []
    key_partition: dict[bytes, int] = {}
    for partition, records in by_partition.items():
        offsets = [offset for offset, _, _ in records]
        assert offsets == list(range(len(offsets))), "offsets out of order, duplicated or gapped"
        last_seq_per_key: dict[bytes, int] = {}
        for _, key, value in records:
            seq = int(value)
            assert key_partition.setdefault(key, partition) == partition
            assert {partition} == placed[key]
            assert seq > last_seq_per_key.get(key, -1), "per-key order broken"
            last_seq_per_key[key] = seq
            values_seen.append(seq)
        # Within a partition, records come back in the order they were produced.
        seqs = [int(value) for _, _, value in records]
        assert seqs == sorted(seqs)
        assert committed[TopicPartition(topic, partition)] == len(records)
    assert sorted(values_seen) == list(range(RECORDS)), "lost or duplicated records"


async def _idempotent_send(bootstrap_servers: str, topic: str) -> int:
    """Send one record with enable_idempotence=True; return its partition (raises on refusal)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True)
    try:
        await asyncio.wait_for(producer.start(), 20)
        metadata = await asyncio.wait_for(producer.send_and_wait(topic, b"v", key=b"k"), 20)
        return int(metadata.partition)
    finally:
        await producer.stop()


@pytest.mark.timeout(60)
def test_idempotent_producer_refused_by_tansu_accepted_by_kafka(
    bootstrap_servers: str, broker_kind: str
) -> None:
    topic = _unique("it-idempotent")
    ensure_topics_sync(bootstrap_servers, [(topic, 1)])
    if broker_kind == "tansu":
        # Tansu answers InitProducerId with UNKNOWN_SERVER_ERROR straight away.
        with pytest.raises(KafkaError):
            asyncio.run(_idempotent_send(bootstrap_servers, topic))
    elif broker_kind == "kafka":
        assert asyncio.run(_idempotent_send(bootstrap_servers, topic)) == 0
    else:  # an external broker of unknown make: either outcome, but no hang
        with contextlib.suppress(KafkaError):
            asyncio.run(_idempotent_send(bootstrap_servers, topic))


# -- the embedded launcher itself (always Tansu, whatever the session broker is) -------------


@pytest.mark.timeout(60)
def test_embedded_broker_lifecycle_and_port_clash(tmp_path: Path) -> None:
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        pid = broker.pid
        assert pid is not None
        assert broker.is_running()
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        ensure_topics_sync(broker.bootstrap_servers, [("lifecycle", 2)])
        assert asyncio.run(_partition_count(broker.bootstrap_servers, "lifecycle")) == 2

        # Same port, explicit: Tansu panics with AddrInUse (and exits 0); we must notice.
        clash = EmbeddedBroker(port=broker.port, data_dir=tmp_path / "clash", startup_timeout=5)
        with pytest.raises(BrokerStartError, match="exited"):
            clash.start()
        assert not clash.is_running()

    assert not broker.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(BrokerNotRunningError):
        _ = broker.bootstrap_servers
    assert "ready in" in (tmp_path / "tansu.log").read_text()


@pytest.mark.timeout(30)
def test_embedded_broker_start_timeout_kills_the_process_group(tmp_path: Path) -> None:
    fake = tmp_path / "fake-broker.sh"
    marker = tmp_path / "child.pid"
    fake.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {marker}\nwait\n")
    fake.chmod(0o755)

    broker = EmbeddedBroker(binary=fake, data_dir=tmp_path, startup_timeout=1.0, stop_timeout=1.0)
    with pytest.raises(BrokerStartTimeoutError, match=r"within 1\.0s"):
        broker.start()

    child = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(child):
        if time.monotonic() > deadline:
            pytest.fail("the broker's child process survived stop()")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie awaiting its (new) parent's reaping."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
