"""A ring lost in a crash: ingest's new key rings reach the changelog and the store before the
batch's outputs, so a batch read again after a crash seals with the same ring and sends the
very bytes it sent before (no first copy names a key nobody holds)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from projections.settings import FoldSettings
from schemas.outputs import HEADER_KIND, KIND_EVENT
from streams.config import KafkaSettings
from streams.crypto.fields import ERASED, decrypt_personal
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.ring import KeyRing
from streams.crypto.sealing import Sealer
from streams.kafka.records import InRecord, OutRecord, destination_topics
from streams.kafka.sender import Grouped, Outgoing
from streams.stages.ingest import ingest
from streams.stages.runner import Stage, StageRunner, _Done
from streams.stages.validate import validate
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.factories import raw

MASTER = bytes(range(32))
CHANGELOG = "journeys.identity-state.v1"


class Crash(Exception):
    """The worker dies."""


class DyingSender:
    """Records what each send carried; the send of the ordinary changelog records dies (the
    outputs went out, the batch's state never reached the changelog)."""

    def __init__(self) -> None:
        self.sent: list[list[Outgoing]] = []

    async def send(self, records: Iterable[Outgoing]) -> dict[tuple[str, int], int]:
        batch = list(records)
        self.sent.append(batch)
        if any(r.topic == CHANGELOG and not keys.is_ring_key(r.key or b"") for r in batch):
            raise Crash
        return {}

    async def send_grouped(self, groups: Grouped) -> dict[tuple[str, int], int]:
        return await self.send(
            Outgoing(topic, key, value, headers, partition)
            for (topic, partition), items in groups.items()
            for key, value, headers in items
        )


def _validated() -> list[InRecord]:
    lines = [
        orjson.dumps(
            raw(
                "form.submitted",
                {"form": "f"},
                customer={"email": f"p{n}@example.com"},
                event_id=f"e-{n}",
            )
        )
        for n in range(3)
    ]
    door = validate([InRecord("touchpoints", 0, n, None, line) for n, line in enumerate(lines)])
    wanted = [o for o in door if o.destination == "validated"]
    return [InRecord("validated", 0, n, o.key, o.value, 0, o.headers) for n, o in enumerate(wanted)]


def _events(outs: list[OutRecord]) -> list[bytes]:
    return [o.value or b"" for o in outs if dict(o.headers).get(HEADER_KIND) == KIND_EVENT]


def _ingest(store: LocalStore, records: list[InRecord]) -> tuple[BatchState, list[OutRecord]]:
    state = BatchState(store, 0)
    sealer = Sealer(LocalKeyProvider(MASTER))  # a new process: nothing in memory
    return state, ingest(state, records, FoldSettings(), sealer=sealer)


def _crash_after_outputs(store: LocalStore, durable_first: bool) -> tuple[list[bytes], DyingSender]:
    """Ingest a batch and persist it as the runner does, dying after the outputs went out."""
    records = _validated()
    state, outs = _ingest(store, records)

    async def persist() -> DyingSender:
        stage = Stage(
            "ingest",
            "journeys.validated",
            CHANGELOG,
            store,
            lambda _state, _records: [],
            durable_first=keys.is_ring_key if durable_first else None,
        )
        # only what `_persist` uses: no consumer, no producer (the sender stands in for both)
        runner = StageRunner.__new__(StageRunner)
        runner.stage, runner.names = stage, KafkaSettings().names()
        runner.topics = destination_topics(runner.names)
        sender = DyingSender()
        runner.sender = sender  # type: ignore[assignment]

        async def owner(_offsets: dict[int, int]) -> bool:
            return True

        runner._still_owner = owner  # type: ignore[method-assign]
        with pytest.raises(Crash):
            await runner._persist([_Done(state, outs, len(records))])
        return sender

    return _events(outs), asyncio.run(persist())


def _rings(store: LocalStore) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for _key, value in store.items(0, keys.Prefix.RING.value):
        ring = KeyRing.from_bytes(value)
        found.update(ring.unwrap(LocalKeyProvider(MASTER)))
    return found


def test_new_rings_reach_the_changelog_and_store_before_the_outputs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "identity")
    first, sender = _crash_after_outputs(store, durable_first=True)
    rings, outputs, _ = sender.sent
    assert {r.topic for r in rings} == {CHANGELOG}
    assert len(rings) == 3
    assert all(keys.is_ring_key(r.key or b"") for r in rings)
    assert CHANGELOG not in {r.topic for r in outputs}
    # the worker comes back: the batch is read again from the stored offset (none moved)
    again = _ingest(store, _validated())[1]
    assert _events(again) == first  # the very same bytes
    data_keys = _rings(store)
    for event in first:
        opened, erased = decrypt_personal(orjson.loads(event), data_keys)
        assert not erased
        assert "@example.com" in opened["customer"]["email"]
    store.close()


def test_without_it_the_first_copies_name_keys_nobody_holds(tmp_path: Path) -> None:
    """The loss this guards against (the test above could fail)."""
    store = LocalStore(tmp_path / "identity")
    first, _ = _crash_after_outputs(store, durable_first=False)
    again = _ingest(store, _validated())[1]
    assert _events(again) != first
    for event in first:
        opened, erased = decrypt_personal(orjson.loads(event), _rings(store))
        assert erased
        assert opened["customer"]["email"] == ERASED
    store.close()
