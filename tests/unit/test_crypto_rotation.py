"""Master-key rotation: rings re-wrapped in the changelog's latest records and in a worker's
store (real RocksDB), events untouched, erased rings never written back, keys never printed."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from journeys.cli.privacy.keys import (
    RotationSettingError,
    rotate_command,
    rotate_local,
    rotation_providers,
)
from journeys.settings import load_settings
from streams.crypto.keys import LocalKeyProvider, WrongMasterKeyError
from streams.crypto.ring import KeyRing
from streams.crypto.rotation import (
    latest_rings,
    rotate_changelog_rings,
    rotate_ring,
    rotate_store,
    suppressed_entries,
)
from streams.crypto.startup import check_master_key
from streams.store import keys
from streams.store.state import LocalStore

OLD_KEY, NEW_KEY, OTHER_KEY = bytes(range(32)), bytes(range(1, 33)), bytes(32)
OLD, NEW = LocalKeyProvider(OLD_KEY), LocalKeyProvider(NEW_KEY)


def _ring(seed: int, provider: LocalKeyProvider = OLD) -> KeyRing:
    rng = random.Random(seed)
    ring, _ = KeyRing.new(provider, rng.randbytes)
    other, _ = KeyRing.new(provider, rng.randbytes)
    return ring.merged(other)  # two data keys, as after a merge


def test_a_ring_is_rewrapped_with_the_same_data_keys_and_only_once() -> None:
    ring = _ring(1)
    before, after = rotate_ring(ring.to_bytes(), OLD, NEW)
    assert before == ring
    assert after is not None
    assert after.key_ids == ring.key_ids
    assert after.unwrap(NEW) == ring.unwrap(OLD)  # every sealed field stays readable
    with pytest.raises(WrongMasterKeyError):
        after.unwrap(OLD)
    assert rotate_ring(after.to_bytes(), OLD, NEW) == (after, None)  # run again: nothing to do


def test_a_ring_wrapped_by_neither_key_is_refused_naming_the_setting() -> None:
    foreign = _ring(2, LocalKeyProvider(OTHER_KEY))
    with pytest.raises(WrongMasterKeyError, match="JOURNEYS_MASTER_KEY"):
        rotate_ring(foreign.to_bytes(), OLD, NEW)


def test_an_erased_ring_on_the_changelog_is_never_written_back() -> None:
    kept, erased, moved = _ring(3), _ring(4), _ring(5)
    ring_a, ring_b = keys.ring_key("acme", "cus_a"), keys.ring_key("acme", "cus_b")
    records = [
        (0, ring_a, _ring(6).to_bytes()),
        (0, ring_b, erased.to_bytes()),
        (0, keys.members_key("acme", "cus_a"), b'["email:a@x.org"]'),
        (0, ring_a, kept.to_bytes()),  # the latest record wins
        (0, ring_b, None),  # erased: a tombstone
        (1, ring_b, moved.to_bytes()),  # another partition's key of the same name
    ]
    latest = latest_rings(records)
    assert latest == {(0, ring_a): kept.to_bytes(), (1, ring_b): moved.to_bytes()}
    writes, done = rotate_changelog_rings(latest, OLD, NEW)
    assert [(p, k) for p, k, _ in writes] == [(0, ring_a), (1, ring_b)]
    assert (done.rings, done.data_keys, done.already) == (2, 4, 0)
    again = latest_rings([(p, k, v) for p, k, v in writes])
    assert rotate_changelog_rings(again, OLD, NEW)[0] == []


def test_suppressed_hashes_are_counted_as_the_changelog_holds_them() -> None:
    first, second = keys.suppressed_key("acme", "h:aa"), keys.suppressed_key("acme", "h:bb")
    assert suppressed_entries([(0, first, b""), (0, second, b""), (0, first, None)]) == 1
    assert suppressed_entries([(0, keys.ring_key("acme", "c"), b"{}")]) == 0


def _store_with_rings(path: Path) -> tuple[LocalStore, dict[bytes, KeyRing]]:
    store = LocalStore(path)
    rings = {keys.ring_key("acme", f"cus_{n}"): _ring(10 + n) for n in range(5)}
    for n, (key, ring) in enumerate(rings.items()):
        store.write(n % 2, {key: ring.to_bytes(), keys.members_key("acme", f"cus_{n}"): b"[]"})
    return store, rings


def test_a_worker_store_is_rewrapped_in_place_and_then_starts_with_the_new_key(
    tmp_path: Path,
) -> None:
    store, rings = _store_with_rings(tmp_path / "identity")
    done = rotate_store(store, 2, OLD, NEW)
    assert (done.rings, done.data_keys, done.already) == (5, 10, 0)
    for n, (key, ring) in enumerate(rings.items()):
        value = store.get(n % 2, key)
        assert value is not None
        assert KeyRing.from_bytes(value).unwrap(NEW) == ring.unwrap(OLD)
        assert store.get(n % 2, keys.members_key("acme", f"cus_{n}")) == b"[]"
    assert check_master_key(store, 2, NEW) == 1
    with pytest.raises(WrongMasterKeyError):
        check_master_key(store, 2, OLD)
    again = rotate_store(store, 2, OLD, NEW)
    assert (again.rings, again.already) == (0, 5)
    store.close()


def test_a_store_a_worker_holds_is_refused_naming_what_to_do(tmp_path: Path) -> None:
    store, _ = _store_with_rings(tmp_path / "identity")
    try:
        with pytest.raises(RotationSettingError) as caught:
            rotate_local(tmp_path, 2, OLD, NEW)
        assert "stop the worker" in (caught.value.hint or "")
    finally:
        store.close()
    assert rotate_local(tmp_path / "nowhere", 2, OLD, NEW).rings == 0


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "JOURNEYS_MASTER_KEY"),
        ({"JOURNEYS_MASTER_KEY": _b64(OLD_KEY)}, "JOURNEYS_NEW_MASTER_KEY"),
        (
            {"JOURNEYS_MASTER_KEY": _b64(OLD_KEY), "JOURNEYS_NEW_MASTER_KEY": _b64(OLD_KEY)},
            "is the current master key",
        ),
    ],
)
def test_missing_or_unchanged_keys_are_refused_naming_the_setting_and_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], environ: dict[str, str], named: str
) -> None:
    settings = load_settings(None, environ)
    with pytest.raises(RotationSettingError, match=named):
        rotation_providers(settings)
    assert rotate_command(settings, tmp_path) == 2
    err = capsys.readouterr().err
    assert named in err
    assert _b64(OLD_KEY) not in err


def test_the_new_key_is_read_from_the_environment_and_kept_out_of_reprs() -> None:
    settings = load_settings(
        None, {"JOURNEYS_MASTER_KEY": _b64(OLD_KEY), "JOURNEYS_NEW_MASTER_KEY": _b64(NEW_KEY)}
    )
    old, new = rotation_providers(settings)
    assert (old.master_key_id, new.master_key_id) == (OLD.master_key_id, NEW.master_key_id)
    assert _b64(NEW_KEY) not in repr(settings)
    assert _b64(NEW_KEY) not in repr(new)
