"""The master key checked against the worker's stored key rings before any stage starts.

A wrong master key must stop a worker at start-up with an error naming the setting, not
turn every event it reads into a dead letter. A worker on a data directory that holds rings
is checked by unwrapping one of them; an empty directory has nothing to check against (a
fresh deployment, or one that restores its state from the changelog: the first ring ingest
reads then raises the same error and stops the stage).
"""

from __future__ import annotations

from schemas.errors import JourneyLedgerError
from streams.crypto.keys import MASTER_KEY_ENV, MASTER_KEY_SETTING, KeyProvider
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
