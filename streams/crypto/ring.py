"""A customer's key ring: the wrapped data keys that read its events, as one keys-topic record.

The keys topic (compacted, later) holds one record per customer: key `<tenant>` and the
customer id, value this ring. The ring names the data key new events are encrypted with
(`current`) and every wrapped key its events may name: when customers merge, the survivor's
ring takes the other's keys as well (each keeps its own key, so events encrypted before the
merge stay readable). Erasing the customer is a tombstone for its record: with the ring gone,
every field encrypted under its keys reads `[erased]`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson

from streams.crypto.keys import (
    DataKey,
    KeyProvider,
    MalformedWrappedKeyError,
    Random,
    WrappedKey,
    new_data_key,
    rewrap,
)

RING_VERSION = 1
"""The version of the ring's JSON record."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """One customer's wrapped data keys: its own (`current`) and those merged into it."""

    current: str
    wrapped: tuple[WrappedKey, ...]

    @classmethod
    def new(cls, provider: KeyProvider, random: Random = os.urandom) -> tuple[KeyRing, DataKey]:
        """A ring with one fresh data key, and that key (to encrypt the first event with)."""
        data = new_data_key(random)
        return cls(data.key_id, (provider.wrap(data.key, data.key_id),)), data

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The data key ids this ring can read, current first."""
        return tuple(w.key_id for w in self.wrapped)

    def merged(self, absorbed: KeyRing) -> KeyRing:
        """The survivor's ring after a merge: its current key, and every key of both."""
        have = set(self.key_ids)
        extra = tuple(w for w in absorbed.wrapped if w.key_id not in have)
        return KeyRing(self.current, self.wrapped + extra)

    def unwrap(self, provider: KeyProvider) -> dict[str, bytes]:
        """Data key id -> data key (`WrongMasterKeyError` when another master wrapped one)."""
        return {w.key_id: provider.unwrap(w) for w in self.wrapped}

    def rewrapped(self, old: KeyProvider, new: KeyProvider) -> KeyRing:
        """The same ring with every key wrapped by the new master key (rotation)."""
        return KeyRing(self.current, tuple(rewrap(w, old, new) for w in self.wrapped))

    def to_bytes(self) -> bytes:
        """The keys-topic record value."""
        document = {
            "v": RING_VERSION,
            "current": self.current,
            "keys": [w.to_text() for w in self.wrapped],
        }
        return orjson.dumps(document)

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyRing:
        """Read a keys-topic record value (`MalformedWrappedKeyError` when it is not a ring)."""
        try:
            document: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MalformedWrappedKeyError("a key ring is not JSON") from None
        if not isinstance(document, dict) or document.get("v") != RING_VERSION:
            raise MalformedWrappedKeyError(f"not a key ring of version {RING_VERSION}")
        texts, current = document.get("keys"), document.get("current")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise MalformedWrappedKeyError("a key ring's keys are not a list of wrapped keys")
        ring = cls(str(current), tuple(WrappedKey.parse(t) for t in texts))
        if current not in ring.key_ids:
            raise MalformedWrappedKeyError("a key ring's current key is not among its keys")
        return ring
