"""The producer SDK and `journeys send` / `journeys topics create` against the session broker."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from typer.testing import CliRunner

import journeys.sdk.producer as producer_module
from journeys.cli import app
from journeys.sdk.producer import BufferFullError, JourneyProducer, SyncJourneyProducer
from schemas.codec import encode_event, validate_document
from streams.config import KafkaSettings, TopicNames
from streams.topics import RAW_RETENTION_MS, create_topics, ledger_topics
from tests.factories import raw

CARD = "4929 1234 5678 9015"
PARTITIONS = 3  # not Tansu's auto-create count (4): proves the topics were created explicitly


def _settings(bootstrap_servers: str) -> KafkaSettings:
    prefix = f"it-{uuid.uuid4().hex[:10]}"
    return KafkaSettings(bootstrap_servers=bootstrap_servers, topic_prefix=prefix, partitions=3)


def _events(count: int) -> list[dict[str, Any]]:
    tenants = ["acme", "globex", "initech"]
    return [
        raw(
            "message.received",
            {"medium": "email", "text": f"card {CARD} charged twice ({n})"},
            tenant=tenants[n % len(tenants)],
        )
        for n in range(count)
    ]


async def _consume(settings: KafkaSettings, count: int) -> list[tuple[bytes, bytes]]:
    """Read `count` records of the touchpoints topic from the beginning: (key, value)."""
    topic = TopicNames(settings.topic_prefix).touchpoints
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records: list[tuple[bytes, bytes]] = []
        async with asyncio.timeout(10):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=200)
                records += [(r.key, r.value) for rs in batch.values() for r in rs]
        return records
    finally:
        await consumer.stop()


async def _partition_counts(settings: KafkaSettings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([s.name for s in ledger_topics(settings)])
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described}


def _expected(documents: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    events = [validate_document(d) for d in documents]
    return sorted((e.event_id.encode(), encode_event(e)) for e in events)


def _assert_masked(records: list[tuple[bytes, bytes]]) -> None:
    for _, value in records:
        assert CARD.encode() not in value
        assert CARD.replace(" ", "").encode() not in value
        assert orjson.loads(value)["redacted"] is True


@pytest.mark.timeout(30)
def test_topics_create_is_idempotent_with_the_right_partitions(bootstrap_servers: str) -> None:
    settings = _settings(bootstrap_servers)
    asyncio.run(create_topics(settings))
    asyncio.run(create_topics(settings))
    counts = asyncio.run(_partition_counts(settings))
    assert counts == {s.name: s.partitions for s in ledger_topics(settings)}
    assert {s.partitions for s in ledger_topics(settings)} == {PARTITIONS, 1}  # members: one
    configs = {s.name: s.config for s in ledger_topics(settings)}
    names = TopicNames(settings.topic_prefix)
    assert configs[names.identity_changelog]["cleanup.policy"] == "compact"
    assert configs[names.journey_changelog]["cleanup.policy"] == "compact"
    # clear text before the door and before the seal: kept a week (README, "Privacy")
    assert configs[names.touchpoints]["retention.ms"] == str(RAW_RETENTION_MS)
    assert configs[names.validated]["retention.ms"] == str(RAW_RETENTION_MS)
    assert RAW_RETENTION_MS == 7 * 24 * 3600 * 1000


@pytest.mark.timeout(30)
def test_async_producer_delivers_keyed_by_event_id_and_masked(
    bootstrap_servers: str, broker_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(bootstrap_servers)
    documents = _events(9)
    producer_module._refused.discard(bootstrap_servers)

    async def scenario() -> tuple[bool | None, list[tuple[bytes, bytes]]]:
        await create_topics(settings)
        async with JourneyProducer(settings) as producer:
            futures = [await producer.send(d) for d in documents]
            await producer.flush()
            deliveries = [f.result() for f in futures]
        assert {d.topic for d in deliveries} == {TopicNames(settings.topic_prefix).touchpoints}
        async with JourneyProducer(settings) as second:  # learns nothing new, says nothing
            assert second.idempotent is producer.idempotent
        return producer.idempotent, await _consume(settings, len(documents))

    with caplog.at_level(logging.WARNING):
        idempotent, records = asyncio.run(scenario())
    assert sorted(records) == _expected(documents)
    _assert_masked(records)
    fallbacks = [r for r in caplog.records if "refused an idempotent producer" in r.message]
    # A refusal is an answer, not an error: no ERROR line from aiokafka on a first run.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    if broker_kind == "tansu":
        assert idempotent is False
        assert len(fallbacks) == 1
    elif broker_kind == "kafka":
        assert idempotent is True
        assert fallbacks == []


@pytest.mark.timeout(30)
def test_sync_producer_delivers_from_threads(bootstrap_servers: str) -> None:
    settings = _settings(bootstrap_servers)
    documents = _events(6)
    asyncio.run(create_topics(settings))
    with SyncJourneyProducer(settings) as producer:
        futures = [producer.send(d) for d in documents[:3]]
        futures += [producer.send(orjson.dumps(d)) for d in documents[3:]]
        producer.flush()
        deliveries = [f.result(timeout=10) for f in futures]
    assert all(d.offset >= 0 for d in deliveries)
    records = asyncio.run(_consume(settings, len(documents)))
    assert sorted(records) == _expected(documents)
    _assert_masked(records)


@pytest.mark.timeout(30)
def test_when_full_raise_raises_at_the_bound(bootstrap_servers: str) -> None:
    settings = _settings(bootstrap_servers)

    async def scenario() -> None:
        await create_topics(settings)
        async with JourneyProducer(
            settings, max_in_flight=2, when_full="raise", linger_ms=300
        ) as producer:
            first = await producer.send(_events(1)[0])
            await producer.send(_events(1)[0])
            with pytest.raises(BufferFullError):
                await producer.send(_events(1)[0])
            await first
            await producer.flush()
            assert producer.in_flight == 0
            await producer.send_and_wait(_events(1)[0])

    asyncio.run(scenario())
    assert len(asyncio.run(_consume(settings, 3))) == 3


@pytest.mark.timeout(30)
def test_journeys_send_reports_bad_lines_and_delivers_good_ones(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    settings = _settings(bootstrap_servers)
    config = tmp_path / "settings.toml"
    config.write_text(f'[kafka]\ntopic_prefix = "{settings.topic_prefix}"\npartitions = 3\n')
    good = _events(4)
    bad = raw("form.submitted", {}, event_id="bad-1")
    lines = [orjson.dumps(good[0]), b"{not json", orjson.dumps(good[1]), b""]
    lines += [orjson.dumps(good[2]), orjson.dumps(bad), orjson.dumps(good[3])]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    base = ["--config", str(config), "--bootstrap-servers", bootstrap_servers]
    runner = CliRunner()

    for _ in range(2):
        created = runner.invoke(app, [*base, "topics", "create"])
        assert created.exit_code == 0, created.output
        assert created.output.count("partitions=3") == 8  # every topic but members (one)

    result = runner.invoke(app, [*base, "send", str(events)])
    assert result.exit_code == 1, result.output
    assert "line 2: invalid JSON" in result.output
    assert "line 6: payload.form: required" in result.output
    assert "sent 4 event(s)" in result.output
    records = asyncio.run(_consume(settings, 4))
    assert sorted(records) == _expected(good)
    assert CARD not in result.output


@pytest.mark.timeout(30)
def test_journeys_send_to_an_unreachable_broker_exits_2(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(_events(1)[0]) + b"\n")
    result = CliRunner().invoke(app, ["--bootstrap-servers", "127.0.0.1:1", "send", str(events)])
    assert result.exit_code == 2, result.output
    assert "bootstrap-servers" in result.output
    missing = CliRunner().invoke(app, ["send", str(tmp_path / "missing.jsonl")])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output
