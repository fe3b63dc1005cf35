"""The master key checked against the worker's stored key rings before any stage starts, and
the identity root against the one its hashes were made with.

A wrong master key must stop a worker at start-up with an error naming the setting, not
turn every event it reads into a dead letter. A worker on a data directory that holds rings
is checked by unwrapping one of them; an empty directory has nothing to check against (a
fresh deployment, or one that restores its state from the changelog: the first ring ingest
reads then raises the same error and stops the stage).

A wrong identity root would make every keyed hash (suppressed identifiers, link tags,
identity-graph keys) silently stop matching: the ingest store records the id of the root its
hashes were made with (`keys.IDENTITY_ROOT_KEY`, on first start and by `journeys keys
rotate`), and a worker configured with another root refuses to start.
"""

from __future__ import annotations

from schemas.errors import JourneyLedgerError
from streams.crypto.keys import (
    IDENTITY_KEY_ENV,
    IDENTITY_KEY_SETTING,
    MASTER_KEY_ENV,
    MASTER_KEY_SETTING,
    KeyProvider,
)
from streams.crypto.ring import KeyRing
from streams.store import keys
from streams.store.state import LocalStore


class MissingMasterKeyError(JourneyLedgerError):
    """The worker's state holds sealed customers' key rings, but no master key is set."""

    hint = f"set {MASTER_KEY_SETTING} or {MASTER_KEY_ENV} to the deployment's master key"


def check_master_key(store: LocalStore, partitions: int, provider: KeyProvider | None) -> int:
    """Unwrap the first stored ring's keys (`WrongMasterKeyError` when another master wrapped
    them; `ConfigError` when rings are stored but no master key is set); the rings seen (0/1)."""
    for partition in range(partitions):
        for _, value in store.items(partition, keys.Prefix.RING.value):
            if provider is None:
                raise MissingMasterKeyError(
                    "this data directory holds customers' key rings, but no master key is set"
                )
            KeyRing.from_bytes(value).unwrap(provider)
            return 1
    return 0


class WrongIdentityKeyError(JourneyLedgerError):
    """The store's keyed hashes were made with another identity root than the configured one."""

    hint = (
        f"set {IDENTITY_KEY_SETTING} or {IDENTITY_KEY_ENV} to the key the hashes were made with "
        "(after `journeys keys rotate`, the master key from before it; unset, the master key "
        "is the root); to start over with new hashes, rebuild this worker's state"
    )


def identity_root_of(store: LocalStore) -> str | None:
    """The id of the identity root the store's hashes were made with, if it records one."""
    value = store.store_wide(keys.IDENTITY_ROOT_KEY)
    return None if value is None else value.decode()


def record_identity_root(store: LocalStore, root_id: str) -> None:
    """Record the identity root the store's hashes are (from now on) made with."""
    store.put_store_wide(keys.IDENTITY_ROOT_KEY, root_id.encode())


def check_identity_root(store: LocalStore, root_id: str | None) -> str | None:
    """`WrongIdentityKeyError` when the store recorded another identity root than `root_id`
    (the configured one's id, None when nothing hashes); records it when none is recorded.
    The recorded id (None: none recorded and nothing to record)."""
    recorded = identity_root_of(store)
    if recorded is None:
        if root_id is not None:
            record_identity_root(store, root_id)
        return root_id
    if recorded != root_id:
        configured = root_id or "none: neither key is set"
        raise WrongIdentityKeyError(
            f"this data directory's identity hashes were made with identity root {recorded}, "
            f"but {IDENTITY_KEY_SETTING} / {IDENTITY_KEY_ENV} (or, unset, the master key) "
            f"gives {configured}"
        )
    return recorded
