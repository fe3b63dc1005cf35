"""Erasing a customer supersedes its dead letters: the three stages over real RocksDB, the
dead letters found by the identifiers they carry, normalised as stitching normalises them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import orjson
import pytest

import tests.unit.test_stages as stages_under_test
from projections.settings import FoldSettings
from streams.crypto.suppression import Suppression
from streams.kafka.records import InRecord
from streams.stages.identity import dead_letters
from streams.stages.ingest import ingest
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.factories import raw
from tests.unit.test_erasure import MASTER, _customer, _erasure, _sealer
from tests.unit.test_stages import PARTITIONS, Pipeline


def _line(tenant: str = "acme", type_: str = "message.received", **customer: str) -> bytes:
    document = raw(type_, {"text": "hello", "medium": "email"}, customer=customer, tenant=tenant)
    return orjson.dumps(document)


def _bad(tenant: str = "acme", **customer: str) -> bytes:
    """A touchpoint the door refuses (an unknown type) that still names its customer."""
    return _line(tenant, "no.such.type", **customer)


def _feed(pipeline: Pipeline, *lines: bytes) -> None:
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["event_id"].encode(), line)
    pipeline.drain()


def _dead_key(pipeline: Pipeline, line: bytes) -> bytes:
    """The key of the dead letter made of a touchpoint (found by its event id)."""
    event_id = orjson.loads(line)["event_id"]
    (key,) = [
        k
        for k, d in zip(pipeline.dead_keys, pipeline.dead, strict=True)
        if event_id in str(d.get("original", ""))
    ]
    return key


def _index(pipeline: Pipeline) -> list[bytes]:
    prefix = keys.Prefix.DEAD_LETTERS.value
    return [
        key
        for partition in range(PARTITIONS)
        for key, _ in pipeline.identity.items(partition, prefix)
    ]


@pytest.mark.parametrize("sealed", [True, False])
def test_erasing_a_customer_sends_a_tombstone_for_exactly_its_dead_letters(
    tmp_path: Path, sealed: bool
) -> None:
    pipeline = Pipeline(tmp_path, sealer=_sealer() if sealed else None)
    ann_good = _line(email="ann@x.org", phone="07700 900123")
    ann_bad = _bad(email="ANN@x.org ")  # spelled otherwise: found as stitching finds it
    ann_phone_bad = _bad(phone="+44 7700 900123")
    bo_bad = _bad(email="bo@x.org")
    other_tenant_bad = _bad("globex", email="ann@x.org")  # another tenant's Ann
    nobody_bad = b'{"event_id": "n1", "tenant": "acme", "customer": {"email": 7}}'
    _feed(pipeline, ann_good, ann_bad, ann_phone_bad, bo_bad, other_tenant_bad, nobody_bad)
    assert len(pipeline.dead) == 5
    assert _index(pipeline)
    if sealed:  # keyed hashes only: the index never holds the identifier
        assert not any(b"ann@x.org" in k or b"900123" in k for k in _index(pipeline))
    ann = _customer(pipeline, "ann@x.org")

    _feed(pipeline, _erasure(ann))

    assert sorted(pipeline.tombstones) == sorted(
        [_dead_key(pipeline, ann_bad), _dead_key(pipeline, ann_phone_bad)]
    )
    assert all(k.startswith(b"acme/") for k in pipeline.tombstones)
    left = _index(pipeline)
    assert len(left) == 2  # Bo's and the other tenant's Ann's entries stay
    assert not any(b"ann%40" in k for k in left if k.startswith(b"dl/acme/"))
    pipeline.tombstones.clear()
    _feed(pipeline, _erasure(ann, event_id="erase-2"))  # erased again: nothing more to send
    assert pipeline.tombstones == []


def test_a_dead_letter_ingest_makes_is_found_too(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, sealer=_sealer())
    first = raw("message.received", {"text": "a", "medium": "email"}, customer={"email": "c@x.org"})
    reused = {**first, "payload": {"text": "b", "medium": "email"}}  # the same event id
    _feed(pipeline, orjson.dumps(first))
    pipeline.append("touchpoints", b"x", orjson.dumps(reused))
    pipeline.drain()
    (dead,) = pipeline.dead
    assert "already used" in str(dead["reason"])
    assert pipeline.dead_keys[0].startswith(b"acme/")  # from the validated topic: ingest's
    _feed(pipeline, _erasure(_customer(pipeline, "c@x.org")))
    assert pipeline.tombstones == pipeline.dead_keys


def test_a_suppressed_identifier_s_dead_letter_is_superseded_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suppression = Suppression(MASTER, ("acme",))
    monkeypatch.setattr(stages_under_test, "ingest", partial(ingest, suppression=suppression))
    pipeline = Pipeline(tmp_path, sealer=_sealer())
    _feed(pipeline, _line(email="ann@x.org"))
    _feed(pipeline, _erasure(_customer(pipeline, "ann@x.org")))
    late = _bad(email="ann@x.org")
    _feed(pipeline, late, _bad(email="bo@x.org"))
    assert pipeline.tombstones == [_dead_key(pipeline, late)]


def test_the_index_under_one_identifier_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letters, "MAX_PER_KEY", 3)
    pipeline = Pipeline(tmp_path)
    _feed(pipeline, _line(email="ann@x.org"), *(_bad(email="ann@x.org") for _ in range(5)))
    assert len(pipeline.dead) == 5
    assert len(_index(pipeline)) == 3
    _feed(pipeline, _erasure(_customer(pipeline, "ann@x.org")))
    assert len(pipeline.tombstones) == 3  # the other two leave with the topic's retention
    assert set(pipeline.tombstones) < set(pipeline.dead_keys)


def test_the_oldest_entry_makes_way_for_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letters, "MAX_PER_KEY", 3)
    store = LocalStore(tmp_path / "identity")
    try:
        # arriving out of key order: the notices' timestamps decide which are the oldest
        for at, name in ((5, "e"), (1, "a"), (4, "d"), (2, "b"), (3, "c")):
            notice = {"dead_letter": f"acme/raw/0/{name}/x", "customer": {"email": "a@x.org"}}
            record = InRecord("validated", 0, at, b"acme", orjson.dumps(notice), at)
            state = BatchState(store, 0)
            assert dead_letters.index_dead_letter(state, record, FoldSettings(), None) == []
            store.write(0, state.changes)
        kept = [keys.dead_letter_of(k) for k, _ in store.items(0, keys.Prefix.DEAD_LETTERS.value)]
        assert kept == [b"acme/raw/0/c/x", b"acme/raw/0/d/x", b"acme/raw/0/e/x"]
    finally:
        store.close()
