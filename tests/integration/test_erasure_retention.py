"""Retention and master-key rotation on a real broker: a worker's timer erases a silent
customer as `journeys forget` does; `journeys keys rotate` then re-wraps the rings left on
the identity changelog and in the worker's store, the erased ring stays erased, and a worker
started with the new key seals the next event with the same data key. Suppression survives a
rotation when `[privacy] identity_key` is set, and the rotation refuses to break it when not."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from journeys.cli.privacy.keys import rotate_command
from journeys.settings import Settings
from projections.settings import FoldSettings
from streams.config import KafkaSettings
from streams.crypto.hashing import identity_key_id
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.ring import KeyRing
from streams.crypto.rotation import latest_rings
from streams.crypto.sealing import Sealer
from streams.crypto.startup import identity_root_of
from streams.stages.journey.segments import journeys_in
from streams.store import keys
from streams.store.state import LocalStore
from streams.worker import Worker
from tests.factories import raw
from tests.integration.ledger_log import read_topic
from tests.integration.test_worker import create_topics

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
OLD_KEY, NEW_KEY = bytes(range(32)), bytes(range(7, 39))


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}", partitions=2
    )


def _line(email: str, when: datetime, event_id: str) -> bytes:
    document = raw(
        "message.received",
        {"text": "call me", "medium": "email"},
        customer={"email": email, "name": "Pat"},
        when=when,
        event_id=event_id,
    )
    return orjson.dumps(document)


async def _send(kafka: KafkaSettings, *lines: bytes) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    try:
        for line in lines:
            await producer.send(kafka.names().touchpoints, line, key=b"acme")
        await producer.flush()
    finally:
        await producer.stop()


async def _run_until(worker: Worker, done: object, seconds: float = 90) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while loop.time() < deadline and not task.done():
            await asyncio.sleep(0.5)
            if done():  # type: ignore[operator]
                break
    finally:
        stop.set()
        await task


def _erased_journey(worker: Worker, customer: str) -> bool:
    for partition in range(worker.kafka.partitions):
        journey = journeys_in(dict(worker.journey_store.items(partition))).get(("acme", customer))
        if journey is not None:
            return all(e.customer.email == "[erased]" for e in journey.events)
    return False


def _customer_of(worker: Worker, email: str) -> str | None:
    for partition in range(worker.kafka.partitions):
        value = worker.identity_store.get(partition, keys.identifier_key("acme", f"email:{email}"))
        if value is not None:
            return value.decode()
    return None


def test_the_timer_forgets_a_silent_customer_and_rotation_keeps_the_rest_readable(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    old, new = LocalKeyProvider(OLD_KEY), LocalKeyProvider(NEW_KEY)

    async def scenario() -> tuple[str, str]:
        await create_topics(kafka)
        await _send(
            kafka,
            _line("silent@x.org", NOW - timedelta(days=90), "ev-silent"),
            _line("active@x.org", NOW - timedelta(days=2), "ev-active"),
        )
        worker = Worker(
            kafka,
            FoldSettings(),
            tmp_path,
            clock=lambda: NOW,
            sealer=Sealer(old),
            retention_days={"acme": 30},
        )
        seen: dict[str, str] = {}

        def erased() -> bool:  # read while the stores are open (the worker closes them)
            for email in ("silent", "active"):
                if email not in seen and (found := _customer_of(worker, f"{email}@x.org")):
                    seen[email] = found
            if "silent" in seen and _customer_of(worker, "silent@x.org") is None:
                seen["silent gone"] = "yes"
            if "silent" in seen and _erased_journey(worker, seen["silent"]):
                seen["skeleton"] = "yes"
            return worker.retention_erased == {"acme": 1} and "skeleton" in seen

        await _run_until(worker, erased)
        assert worker.retention_erased == {"acme": 1}
        assert seen.keys() == {"silent", "active", "silent gone", "skeleton"}
        return seen["silent"], seen["active"]

    silent, active = asyncio.run(scenario())
    changelog = kafka.names().identity_changelog
    records = asyncio.run(read_topic(kafka, changelog))
    rings = latest_rings((r.partition, r.key, r.value) for r in records)
    assert [keys.customer_of(keys.Prefix.RING, k) for _, k in rings] == [("acme", active)]
    assert ("acme", silent) not in [keys.customer_of(keys.Prefix.RING, k) for _, k in rings]
    before = KeyRing.from_bytes(next(iter(rings.values()))).unwrap(old)

    settings = Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": kafka.bootstrap_servers,
                "topic_prefix": kafka.topic_prefix,
                "partitions": kafka.partitions,
            },
            "privacy": {
                "master_key": base64.b64encode(OLD_KEY).decode(),
                "new_master_key": base64.b64encode(NEW_KEY).decode(),
            },
        }
    )
    # The worker has stopped, but on Tansu its groups' only members (generation 0) are never
    # seen to leave (README "Rotation limits"): the check is tested on its own elsewhere.
    # No identity key: the hashes change with the master key, as the flag acknowledges.
    assert rotate_command(settings, tmp_path, change_hashes=True, force=True) == 0
    records = asyncio.run(read_topic(kafka, changelog))
    rings = latest_rings((r.partition, r.key, r.value) for r in records)
    (ring_key,) = rings  # the erased customer's ring was not written back
    assert keys.customer_of(keys.Prefix.RING, ring_key[1]) == ("acme", active)
    assert KeyRing.from_bytes(rings[ring_key]).unwrap(new) == before
    again = rotate_command(settings, tmp_path, change_hashes=True, force=True)
    assert again == 0  # run again: nothing to do
    assert len(asyncio.run(read_topic(kafka, changelog))) == len(records)
    assert _recorded_root(tmp_path) == identity_key_id(NEW_KEY)  # the hashes' root from now on

    async def after_rotation() -> Worker:
        await _send(kafka, _line("active@x.org", NOW, "ev-after"))
        worker = Worker(kafka, FoldSettings(), tmp_path, clock=lambda: NOW, sealer=Sealer(new))
        await _run_until(worker, lambda: worker.ingest.stats.records >= 1)
        return worker

    worker = asyncio.run(after_rotation())
    assert worker.ingest.stats.records >= 1
    assert worker.ingest.stats.dead_letters == 0
    events = asyncio.run(read_topic(kafka, kafka.names().events))
    sealed = [r.value for r in events if r.value and b'"ev-after"' in r.value]
    assert sealed
    current = KeyRing.from_bytes(rings[ring_key]).current
    assert all(f"enc:v1:{current}:".encode() in value for value in sealed)


def _recorded_root(data_dir: Path) -> str | None:
    store = LocalStore(data_dir / "identity")
    try:
        return identity_root_of(store)
    finally:
        store.close()


def _settings(kafka: KafkaSettings, **privacy: str) -> Settings:
    return Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": kafka.bootstrap_servers,
                "topic_prefix": kafka.topic_prefix,
                "partitions": kafka.partitions,
            },
            "tenants": {"acme": {"privacy": {"suppress_erased": True}}},
            "privacy": {
                "master_key": base64.b64encode(OLD_KEY).decode(),
                "new_master_key": base64.b64encode(NEW_KEY).decode(),
                **privacy,
            },
        }
    )


def _erasure(customer: str) -> bytes:
    document = raw(
        "identity.erased",
        {"customer_id": customer, "decided_by": "r.khan", "grounds": "DSR-7"},
        customer={"anonymous_id": customer},
        system="journeys-api",
        event_id="erase-7",
    )
    return orjson.dumps(document)


def test_an_erased_identifier_is_suppressed_and_still_is_after_a_rotation(
    kafka: KafkaSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(kafka)
    suppression = settings.suppression()
    assert suppression is not None

    async def scenario() -> dict[tuple[str, str], int]:
        await create_topics(kafka)
        await _send(kafka, _line("gone@x.org", NOW, "ev-1"))
        worker = Worker(
            kafka,
            FoldSettings(),
            tmp_path,
            clock=lambda: NOW,
            sealer=settings.sealer(),
            suppression=suppression,
        )
        seen: dict[str, str] = {}
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        try:
            while loop.time() < deadline and not task.done() and not worker.suppressed:
                await asyncio.sleep(0.5)
                if "customer" not in seen and (found := _customer_of(worker, "gone@x.org")):
                    seen["customer"] = found
                    await _send(kafka, _erasure(found))
                    await _send(kafka, _line("GONE@x.org", NOW, "ev-2"))
        finally:
            stop.set()
            await task
        assert worker.ingest.stats.dead_letters == 0
        return dict(worker.suppressed)

    assert asyncio.run(scenario()) == {("acme", "customer.email"): 1}
    capsys.readouterr()
    # (forced past the look for running workers: see the rotation above)
    assert rotate_command(settings, tmp_path, force=True) == 2
    err = capsys.readouterr().err
    assert "[privacy] identity_key is not set" in err
    assert "--change-identity-hashes" in err
    assert base64.b64encode(NEW_KEY).decode() not in err
    # The identity key set to the current master key: the hashes keep their root.
    kept = _settings(kafka, identity_key=base64.b64encode(OLD_KEY).decode())
    assert rotate_command(kept, tmp_path, force=True) == 0
    out = capsys.readouterr().out
    assert "identity hashes kept" in out
    assert "1 suppressed identifier hashes still match" in out
    assert _recorded_root(tmp_path) == identity_key_id(OLD_KEY)
    assert base64.b64encode(OLD_KEY).decode() not in out

    # A worker started as the rotation says: the new master key, the same identity key.
    rotated = _settings(kafka, identity_key=base64.b64encode(OLD_KEY).decode())
    privacy = rotated.privacy.model_copy(
        update={"master_key": base64.b64encode(NEW_KEY).decode(), "new_master_key": None}
    )
    rotated = rotated.model_copy(update={"privacy": privacy})

    async def after_rotation() -> tuple[dict[tuple[str, str], int], int]:
        await _send(kafka, _line("Gone@X.org", NOW, "ev-3"))
        worker = Worker(
            kafka,
            FoldSettings(),
            tmp_path,
            clock=lambda: NOW,
            sealer=rotated.sealer(),
            suppression=rotated.suppression(),
        )
        await _run_until(worker, lambda: bool(worker.suppressed))
        return dict(worker.suppressed), worker.ingest.stats.dead_letters

    assert asyncio.run(after_rotation()) == ({("acme", "customer.email"): 1}, 0)
