"""Dead letters are erased with their customer, on a real broker: a refused touchpoint carrying
a customer's e-mail, then the customer's erasure; the dead-letter topic (created as the ledger
creates it: compacted and deleted by age) then holds a tombstone for that dead letter's key,
and none for an unrelated one."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from journeys.settings import Settings
from projections.identifiers import normalise
from streams.config import KafkaSettings
from streams.store import keys
from streams.topics import create_topics, ledger_topics
from streams.worker import Worker
from tests.factories import raw
from tests.integration.ledger_log import Record, read_topic

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
MASTER = bytes(range(40, 72))


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}", partitions=2
    )


def _line(email: str, event_id: str, type_: str = "message.received") -> bytes:
    document = raw(
        type_,
        {"text": "call me", "medium": "email"},
        customer={"email": email},
        when=NOW,
        event_id=event_id,
    )
    return orjson.dumps(document)


def _erasure(customer: str) -> bytes:
    document = raw(
        "identity.erased",
        {"customer_id": customer, "decided_by": "r.khan", "grounds": "DSR-16"},
        customer={"anonymous_id": customer},
        system="journeys-api",
        event_id="erase-16",
        when=NOW,
    )
    return orjson.dumps(document)


async def _send(kafka: KafkaSettings, *lines: bytes) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    try:
        for line in lines:  # keyed by event id, as producers do: any partition
            await producer.send(
                kafka.names().touchpoints, line, key=orjson.loads(line)["event_id"].encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


def _customer_of(worker: Worker, email: str) -> str | None:
    # the worker seals, so its graph keys are keyed hashes: look the e-mail up as ingest keys it
    key = normalise("email", email, None, worker.fold.hasher_for("acme")).key
    for partition in range(worker.kafka.partitions):
        value = worker.identity_store.get(partition, keys.identifier_key("acme", key))
        if value is not None:
            return value.decode()
    return None


def _indexed(worker: Worker) -> int:
    prefix = keys.Prefix.DEAD_LETTERS.value
    return sum(
        1 for p in range(worker.kafka.partitions) for _ in worker.identity_store.items(p, prefix)
    )


def test_erasing_a_customer_supersedes_its_dead_letter_and_no_other(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    settings = Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": kafka.bootstrap_servers,
                "topic_prefix": kafka.topic_prefix,
                "partitions": kafka.partitions,
            },
            "privacy": {"master_key": base64.b64encode(MASTER).decode()},
        }
    )
    specs = {s.name: s.config for s in ledger_topics(kafka)}
    assert specs[kafka.names().dead_letters]["cleanup.policy"] == "compact,delete"

    async def scenario() -> Worker:
        await create_topics(kafka)  # the broker takes the dead-letter topic's config
        await _send(
            kafka,
            _line("ann@x.org", "ev-ann"),
            _line("ANN@x.org", "ev-ann-bad", "no.such.type"),  # refused, names Ann
            _line("bo@x.org", "ev-bo-bad", "no.such.type"),  # refused, names Bo
        )
        worker = Worker(  # as `journeys worker` builds it: a hashed graph with the sealer
            kafka, settings.fold_settings(), tmp_path, clock=lambda: NOW, sealer=settings.sealer()
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        erased = False
        try:
            while loop.time() < deadline and not task.done():
                await asyncio.sleep(0.5)
                if worker.dead_letters_erased:
                    break
                ann = _customer_of(worker, "ann@x.org")
                if not erased and ann is not None and _indexed(worker) == 2:
                    await _send(kafka, _erasure(ann))  # both dead letters are indexed: erase
                    erased = True
        finally:
            stop.set()
            await task
        return worker

    worker = asyncio.run(scenario())
    assert worker.dead_letters_erased == {"acme": 1}
    assert worker.validate.stats.dead_letters == 2
    records = asyncio.run(read_topic(kafka, kafka.names().dead_letters))
    letters = {_event_id(r): r for r in records if r.value is not None}
    assert letters.keys() == {"ev-ann-bad", "ev-bo-bad"}
    tombstones = [r for r in records if r.value is None]
    assert [(r.key, r.partition) for r in tombstones] == [
        (letters["ev-ann-bad"].key, letters["ev-ann-bad"].partition)
    ]
    assert tombstones[0].offset > letters["ev-ann-bad"].offset  # it supersedes the dead letter
    assert not any(r.key == letters["ev-bo-bad"].key for r in tombstones)


def _event_id(record: Record) -> str:
    original = orjson.loads(record.value or b"{}")["original"]
    return str(orjson.loads(original)["event_id"])
