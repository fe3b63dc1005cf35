"""A customer's key ring: merges keep every key, erasure drops them, rotation re-wraps them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from streams.crypto.fields import ERASED, decrypt_personal, encrypt_personal
from streams.crypto.keys import LocalKeyProvider, MalformedWrappedKeyError, WrongMasterKeyError
from streams.crypto.ring import KeyRing

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1"
MASTER = LocalKeyProvider(bytes(range(32)))
ROTATED = LocalKeyProvider(bytes(range(1, 33)))


def load(name: str) -> dict[str, Any]:
    """A golden event as a document."""
    document: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return document


def test_a_new_ring_holds_its_current_key_wrapped() -> None:
    ring, data = KeyRing.new(MASTER, random.Random(4).randbytes)
    assert ring.current == data.key_id
    assert ring.key_ids == (data.key_id,)
    assert ring.unwrap(MASTER) == {data.key_id: data.key}
    assert data.key not in ring.to_bytes()
    assert data.key.hex().encode() not in ring.to_bytes()


def test_after_a_merge_the_survivor_reads_both_customers_events() -> None:
    survivor, own = KeyRing.new(MASTER)
    absorbed, theirs = KeyRing.new(MASTER)
    call = encrypt_personal(load("call.logged"), own.key, own.key_id)
    order = encrypt_personal(load("order.placed"), theirs.key, theirs.key_id)
    merged = survivor.merged(absorbed)
    assert merged.current == own.key_id
    assert merged.key_ids == (own.key_id, theirs.key_id)
    assert merged.merged(absorbed) == merged  # merging again adds nothing
    keys = merged.unwrap(MASTER)
    assert decrypt_personal(call, keys) == (load("call.logged"), False)
    assert decrypt_personal(order, keys) == (load("order.placed"), False)


def test_erasing_a_ring_erases_its_customers_fields_and_no_one_elses() -> None:
    rings = {"merged": KeyRing.new(MASTER), "absorbed": KeyRing.new(MASTER)}
    bystander, bystanders_key = KeyRing.new(MASTER)
    theirs = rings["absorbed"][1]
    order = encrypt_personal(load("order.placed"), theirs.key, theirs.key_id)
    call = encrypt_personal(load("call.logged"), bystanders_key.key, bystanders_key.key_id)
    topic = {
        "cus_merged": rings["merged"][0].merged(rings["absorbed"][0]).to_bytes(),
        "cus_bystander": bystander.to_bytes(),
    }
    del topic["cus_merged"]  # the erasure: a tombstone for the survivor's ring
    keys = {
        k: v for raw in topic.values() for k, v in KeyRing.from_bytes(raw).unwrap(MASTER).items()
    }
    decrypted, erased = decrypt_personal(order, keys)
    assert erased
    assert decrypted["customer"] == {"email": ERASED, "order_id": ERASED}
    assert decrypted["payload"] == load("order.placed")["payload"]
    assert decrypt_personal(call, keys) == (load("call.logged"), False)


def test_a_ring_survives_its_record_and_rotation() -> None:
    ring, data = KeyRing.new(MASTER)
    other, _ = KeyRing.new(MASTER)
    ring = ring.merged(other)
    assert KeyRing.from_bytes(ring.to_bytes()) == ring
    rotated = ring.rewrapped(MASTER, ROTATED)
    assert {w.master_key_id for w in rotated.wrapped} == {ROTATED.master_key_id}
    assert rotated.unwrap(ROTATED) == ring.unwrap(MASTER)
    with pytest.raises(WrongMasterKeyError):
        rotated.unwrap(MASTER)
    assert rotated.unwrap(ROTATED)[data.key_id] == data.key


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "current": "x", "keys": []}',
        b'{"v": 1, "current": "dk_0000000000000000", "keys": "wk"}',
        b'{"v": 1, "current": "dk_0000000000000000", "keys": []}',
        b'{"v": 1, "current": "dk_0000000000000000", "keys": ["wk:v1:bad"]}',
    ],
)
def test_a_malformed_ring_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedWrappedKeyError):
        KeyRing.from_bytes(raw)
