"""Master-key rotation: every stored key ring re-wrapped by a new master key, events untouched.

A ring holds data keys wrapped by the master key (`streams.crypto.keys`); rotating re-wraps
each data key (`KeyRing.rewrapped`), so every sealed field of every event stays readable with
the same data keys. Two copies of the rings exist: the compacted identity changelog (the
durable one) and each worker's ingest store. Both are rewritten: the changelog from its
latest record per ring (so a ring erased since is never written back), each local store in
place (its changelog position is left alone: the next start reads the re-wrapped records
again, to the same values). Rings a master key already re-wrapped are skipped, so a rotation
that stopped half-way can be run again.

Suppressed identifiers (`streams.crypto.suppression`) are keyed hashes of a secret derived
from the identity root: `[privacy] identity_key` when set (a rotation keeps them), else the
master key (a new one stops them matching: they cannot be re-hashed without the identifiers).
`suppressed_entries` counts them for the command to report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.crypto.keys import KeyProvider
from streams.crypto.ring import KeyRing
from streams.store import keys
from streams.store.state import LocalStore


@dataclass(slots=True)
class Rotated:
    """What a rotation changed in one copy of the rings."""

    rings: int = 0
    """Rings re-wrapped."""
    data_keys: int = 0
    """Data keys re-wrapped in them."""
    already: int = 0
    """Rings the new master key wrapped already (a rotation run again)."""

    def add(self, before: KeyRing, after: KeyRing | None) -> None:
        """Count one ring: re-wrapped (`after`) or already under the new key (None)."""
        if after is None:
            self.already += 1
            return
        self.rings += 1
        self.data_keys += sum(
            1 for old, new in zip(before.wrapped, after.wrapped, strict=True) if old != new
        )


def rotate_ring(value: bytes, old: KeyProvider, new: KeyProvider) -> tuple[KeyRing, KeyRing | None]:
    """A stored ring and the same ring re-wrapped by `new` (None when `new` wraps it already);
    `WrongMasterKeyError` when a key of it was wrapped by neither master key."""
    ring = KeyRing.from_bytes(value)
    if all(w.master_key_id == new.master_key_id for w in ring.wrapped):
        return ring, None
    return ring, ring.rewrapped(old, new)


def latest_rings(
    records: Iterable[tuple[int, bytes | None, bytes | None]],
) -> dict[tuple[int, bytes], bytes]:
    """(partition, state key) -> the latest ring of each, from a changelog's records in log
    order (a tombstone, an erasure, removes the ring: it is never written back)."""
    latest: dict[tuple[int, bytes], bytes] = {}
    for partition, key, value in records:
        if key is None or not key.startswith(keys.Prefix.RING.value):
            continue
        if value is None:
            latest.pop((partition, key), None)
        else:
            latest[(partition, key)] = value
    return latest


def rotate_changelog_rings(
    latest: dict[tuple[int, bytes], bytes], old: KeyProvider, new: KeyProvider
) -> tuple[list[tuple[int, bytes, bytes]], Rotated]:
    """The changelog records to write ((partition, key, re-wrapped ring)) and what they change."""
    writes: list[tuple[int, bytes, bytes]] = []
    done = Rotated()
    for (partition, key), value in sorted(latest.items()):
        ring, after = rotate_ring(value, old, new)
        done.add(ring, after)
        if after is not None:
            writes.append((partition, key, after.to_bytes()))
    return writes, done


def rotate_store(store: LocalStore, partitions: int, old: KeyProvider, new: KeyProvider) -> Rotated:
    """Re-wrap every ring of a worker's ingest store in place, a partition at a time."""
    done = Rotated()
    for partition in range(partitions):
        changes: dict[bytes, bytes | None] = {}
        for key, value in store.items(partition, keys.Prefix.RING.value):
            ring, after = rotate_ring(value, old, new)
            done.add(ring, after)
            if after is not None:
                changes[key] = after.to_bytes()
        if changes:
            store.write(partition, changes)
    return done


def suppressed_entries(records: Iterable[tuple[int, bytes | None, bytes | None]]) -> int:
    """How many suppressed identifier hashes a changelog still holds (latest record per key)."""
    held: dict[tuple[int, bytes], bool] = {}
    for partition, key, value in records:
        if key is not None and key.startswith(keys.Prefix.SUPPRESSED.value):
            held[(partition, key)] = value is not None
    return sum(held.values())
