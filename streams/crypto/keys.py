"""Data keys and the master key that wraps them, behind a provider a KMS or Vault can implement.

Each customer gets a random 256-bit AES-GCM data key with an opaque id (`dk_` and 16 hex
digits). The data key never leaves the process in clear: it is stored wrapped (encrypted) by
the master key, as `wk:v1:<master key id>:<data key id>:<base64 nonce+ciphertext>`. The master
key id is derived from the master key (HKDF), so a wrapped key says which master wrapped it
and rotation (`rewrap`) can tell old from new without a registry. Erasing a customer deletes
its wrapped keys: every field encrypted with them is then unreadable, by design.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from schemas.errors import JourneyLedgerError

MASTER_KEY_SETTING = "[privacy] master_key"
"""Where the master key is set in the settings file."""

MASTER_KEY_ENV = "JOURNEYS_MASTER_KEY"
"""The environment variable overriding `[privacy] master_key` (base64 of 32 bytes)."""

IDENTITY_KEY_SETTING = "[privacy] identity_key"
"""Where the identity hashes' root is set, apart from the master key (unset: the master key)."""

IDENTITY_KEY_ENV = "JOURNEYS_IDENTITY_KEY"
"""The environment variable overriding `[privacy] identity_key` (base64 of 32 bytes)."""

KEY_BYTES = 32
"""AES-256: the length of master and data keys."""

NONCE_BYTES = 12
"""AES-GCM's 96-bit nonce, random for every encryption."""

Random = Callable[[int], bytes]
"""Where nonces and new keys come from: `os.urandom` unless a test gives a seeded source."""

_WRAP_PREFIX = "wk:v1:"
_DATA_KEY_ID = re.compile(r"^dk_[0-9a-f]{16}$")
_MASTER_KEY_ID = re.compile(r"^mk_[0-9a-f]{12}$")


class WrongMasterKeyError(JourneyLedgerError):
    """A wrapped data key was wrapped by another master key than the one configured."""

    hint = (
        f"set {MASTER_KEY_SETTING} or {MASTER_KEY_ENV} to the master key the keys were wrapped "
        "with (after a rotation, re-wrap the keys before switching)"
    )


class MalformedWrappedKeyError(JourneyLedgerError, ValueError):
    """A stored wrapped key is not `wk:v1:<master key id>:<data key id>:<base64>`."""

    hint = "the keys topic holds a record it did not write: check what else writes to it"


def master_key_problem(text: str, what: str = "master key") -> str | None:
    """Why a configured master (or identity) key is unusable (never showing it); None when it
    is usable."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "is not base64 (write 32 random bytes in base64, e.g. `openssl rand -base64 32`)"
    if len(raw) != KEY_BYTES:
        return f"decodes to {len(raw)} bytes; the {what} is {KEY_BYTES} bytes"
    return None


def derive(master_key: bytes, purpose: str, length: int = KEY_BYTES) -> bytes:
    """A sub-key of the master key for one purpose (HKDF-SHA256, no salt, `info` = purpose)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
    return hkdf.derive(master_key)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key encrypted by a master key: which master, which data key, the ciphertext."""

    master_key_id: str
    key_id: str
    # the ciphertext is no secret without the master key, but a repr is read by people and
    # logs: it names the keys, never carries them (as every key-holding type here)
    blob: bytes = field(repr=False)
    """The AES-GCM nonce followed by the ciphertext and tag."""

    def to_text(self) -> str:
        """The stored form: `wk:v1:<master key id>:<data key id>:<base64>`."""
        encoded = base64.b64encode(self.blob).decode()
        return f"{_WRAP_PREFIX}{self.master_key_id}:{self.key_id}:{encoded}"

    @classmethod
    def parse(cls, text: str) -> WrappedKey:
        """Read the stored form back (`MalformedWrappedKeyError` when it is not one)."""
        body = text.removeprefix(_WRAP_PREFIX)
        parts = body.split(":")
        if body == text or len(parts) != 3:
            raise MalformedWrappedKeyError("not a wrapped key of version 1")
        master_key_id, key_id, encoded = parts
        if not _MASTER_KEY_ID.match(master_key_id) or not _DATA_KEY_ID.match(key_id):
            raise MalformedWrappedKeyError("a wrapped key names malformed key ids")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedWrappedKeyError("a wrapped key's ciphertext is not base64") from None
        return cls(master_key_id, key_id, blob)


@dataclass(frozen=True, slots=True)
class DataKey:
    """One customer's data key: its opaque id and the 32 key bytes (never in a repr)."""

    key_id: str
    key: bytes = field(repr=False)


def new_data_key(random: Random = os.urandom) -> DataKey:
    """A fresh random data key with a fresh random id."""
    return DataKey("dk_" + random(8).hex(), random(KEY_BYTES))


class KeyProvider(Protocol):
    """What wraps and unwraps data keys: the local master key now, a KMS or Vault later."""

    @property
    def master_key_id(self) -> str:
        """The id of the master key new wraps use (stored in each wrapped key)."""
        ...

    def wrap(self, data_key: bytes, key_id: str) -> WrappedKey:
        """The data key encrypted by the master key, bound to its data key id."""
        ...

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        """The data key back; `WrongMasterKeyError` when another master key wrapped it."""
        ...


def decode_key(text: str) -> bytes:
    """The 32 bytes of a base64 key setting (validated at load: `master_key_problem`)."""
    return base64.b64decode(text.strip(), validate=True)


class LocalKeyProvider:
    """Wraps data keys with AES-256-GCM under a 32-byte master key from the settings."""

    __slots__ = ("_aead", "_id", "_identity_root", "_random")

    def __init__(
        self, master_key: bytes, random: Random = os.urandom, identity_root: bytes | None = None
    ) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes")
        if identity_root is not None and len(identity_root) != KEY_BYTES:
            raise ValueError(f"an identity key is {KEY_BYTES} bytes")
        # The wrapping key and the id are both derived: the id shows nothing of either.
        self._aead = AESGCM(derive(master_key, "journeys wrap v1"))
        self._id = "mk_" + derive(master_key, "journeys master key id v1", 6).hex()
        self._random = random
        # The tenants' identity secrets (`identity_secret`) derive from the identity root:
        # `[privacy] identity_key` when set, so that rotating the master key keeps every hash.
        self._identity_root = master_key if identity_root is None else identity_root

    @classmethod
    def from_setting(
        cls, text: str, random: Random = os.urandom, identity_text: str | None = None
    ) -> LocalKeyProvider:
        """From the base64 settings: the master key and the identity key, if one is set."""
        root = decode_key(identity_text) if identity_text is not None else None
        return cls(decode_key(text), random, root)

    def __repr__(self) -> str:
        return f"LocalKeyProvider({self._id})"

    def identity_secret(self, tenant: str) -> bytes:
        """The tenant's identity secret (`streams.crypto.hashing.tenant_secret`)."""
        from streams.crypto.hashing import tenant_secret  # hashing imports this module

        return tenant_secret(self._identity_root, tenant)

    @property
    def identity_key_id(self) -> str:
        """The id derived from the identity root, e.g. `ik_5b0e7d21c4a9` (the key never shown)."""
        from streams.crypto.hashing import identity_key_id  # hashing imports this module

        return identity_key_id(self._identity_root)

    @property
    def master_key_id(self) -> str:
        """The id derived from the master key, e.g. `mk_3f2a9c0d1b7e`."""
        return self._id

    def wrap(self, data_key: bytes, key_id: str) -> WrappedKey:
        """AES-GCM under the wrapping key; the master and data key ids are associated data."""
        nonce = self._random(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, data_key, _wrap_context(self._id, key_id))
        return WrappedKey(self._id, key_id, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        """The data key; `WrongMasterKeyError` for another master's key or a tampered one."""
        if wrapped.master_key_id != self._id:
            raise WrongMasterKeyError(
                f"data key {wrapped.key_id} was wrapped by master key {wrapped.master_key_id}, "
                f"but {MASTER_KEY_SETTING} / {MASTER_KEY_ENV} is master key {self._id}"
            )
        nonce, sealed = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, _wrap_context(self._id, wrapped.key_id))
        except InvalidTag:
            raise WrongMasterKeyError(
                f"data key {wrapped.key_id} does not unwrap with master key {self._id} "
                f"({MASTER_KEY_SETTING} / {MASTER_KEY_ENV}): it was altered or wrapped elsewhere"
            ) from None


def _wrap_context(master_key_id: str, key_id: str) -> bytes:
    return f"journeys data key v1|{master_key_id}|{key_id}".encode()


def rewrap(wrapped: WrappedKey, old: KeyProvider, new: KeyProvider) -> WrappedKey:
    """Rotation: the same data key wrapped by the new master key (events stay as they are).

    A key the new master already wraps is returned unchanged, so a rotation can be re-run.
    """
    if wrapped.master_key_id == new.master_key_id:
        return wrapped
    return new.wrap(old.unwrap(wrapped), wrapped.key_id)
