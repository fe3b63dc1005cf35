"""Where events are served: decrypt a stored journey with its customer's key ring.

The journey stage folds and stores events sealed (the rules read clear fields only); the API's
journey view, and what is built from it, opens them here with the customer's ring from
ingest's state. A field whose key is gone (the customer was erased) reads `[erased]`: a normal
state, never an exception and never a retry. A merge record's identifier, sealed by ingest
under the survivor's key, is opened the same way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from projections.journey import Journey, Merge
from schemas.codec import decode_trusted, encode_event
from schemas.events import Event
from streams.crypto.fields import (
    ERASED,
    PREFIX,
    UndecryptableFieldError,
    decrypt_personal,
    is_encrypted,
)
from streams.crypto.ring import KeyRing
from streams.crypto.sealing import Sealer, note_document
from streams.store import keys
from streams.store.state import LocalStore


def open_event(event: Event, data_keys: Mapping[str, bytes]) -> Event:
    """The event with its sealed fields decrypted (`[erased]` where the key is gone)."""
    raw = encode_event(event)
    return open_bytes(raw, data_keys) if _SEALED in raw else event


def open_bytes(raw: bytes, data_keys: Mapping[str, bytes]) -> Event:
    """The event of bytes the ledger wrote, its sealed fields decrypted (`[erased]` where the
    key is gone): read from the bytes, not from an event decoded and encoded again first."""
    if _SEALED not in raw:
        return decode_trusted(raw)
    document, _ = decrypt_personal(orjson.loads(raw), data_keys)
    return decode_trusted(orjson.dumps(document))


_SEALED = b'"' + PREFIX.encode()
"""How a sealed value starts in an event's bytes."""


def open_journey(journey: Journey, data_keys: Mapping[str, bytes]) -> Journey:
    """A journey with every event opened."""
    events = tuple(open_event(e, data_keys) for e in journey.events)
    return Journey(journey.tenant, journey.customer_id, events)


def open_merges(
    merges: tuple[Merge, ...], tenant: str, data_keys: Mapping[str, bytes]
) -> tuple[Merge, ...]:
    """Merges with their sealed identifiers opened (`[erased]` where the key is gone)."""
    opened = []
    for merge in merges:
        if is_encrypted(merge.identifier):
            document = note_document(tenant, merge.event_id, merge.identifier)
            clear, _ = decrypt_personal(document, data_keys)
            merge = dataclasses.replace(merge, identifier=str(clear["payload"]["note"]))
        opened.append(merge)
    return tuple(opened)


def stored_keys(
    store: LocalStore, partition: int, tenant: str, customer_id: str, sealer: Sealer | None
) -> dict[str, bytes]:
    """The data keys of a customer's ring in ingest's state (none: erased, or no sealer)."""
    if sealer is None:
        return {}
    value = store.get(partition, keys.ring_key(tenant, customer_id))
    if value is None:
        return {}
    return sealer.unwrapped(KeyRing.from_bytes(value))


def keys_from_changelog(
    entries: Iterable[tuple[bytes | None, bytes | None]], sealer: Sealer
) -> dict[str, bytes]:
    """Every data key the identity changelog still holds, by id (replay opens the log with
    them): the latest record of each ring key, in log order, a tombstone deleting it."""
    latest: dict[bytes, bytes | None] = {}
    for key, value in entries:
        if key is not None and key.startswith(keys.Prefix.RING.value):
            latest[key] = value
    found: dict[str, bytes] = {}
    for value in latest.values():
        if value is not None:
            found.update(sealer.unwrapped(KeyRing.from_bytes(value)))
    return found


SEALED_TEXT = "[sealed]"
"""What a sealed note reads when it cannot be opened now: its customer's ring could not be
read, or nothing tells which event carried it (its action is no longer among the flag's kept
actions), so its ciphertext cannot be bound to its context."""

_SEALED_ANYWHERE = re.compile(r"enc:v1:(dk_[0-9a-f]{16}):[A-Za-z0-9+/]+={0,2}")


def open_flag(
    flag: Mapping[str, Any], tenant: str, data_keys: Mapping[str, bytes] | None
) -> dict[str, Any]:
    """A served flag with the sealed notes of its handling opened (`[erased]` where the key is
    gone): each action's note with the event that carried it, then every string quoting one
    of those (the notes, `reopened_because`, `resolution`) by the same sealed value.
    `data_keys` None: the ring could not be read now, so every sealed value reads `[sealed]`."""
    handling = flag.get("handling")
    if not isinstance(handling, Mapping):
        return dict(flag)
    if data_keys is None:
        result: dict[str, Any] = _replaced(flag, lambda _match: SEALED_TEXT)
        return result
    clear: dict[str, str] = {}
    for action in handling.get("actions") or ():
        note = action.get("note")
        if is_encrypted(note) and note not in clear:
            document = note_document(tenant, str(action.get("event_id")), note)
            try:
                clear[note] = str(decrypt_personal(document, data_keys)[0]["payload"]["note"])
            except UndecryptableFieldError:  # altered after sealing: never shown, never fatal
                clear[note] = SEALED_TEXT

    def swap(match: re.Match[str]) -> str:
        if match.group(1) not in data_keys:
            return ERASED
        return clear.get(match.group(0), SEALED_TEXT)

    opened: dict[str, Any] = _replaced(flag, swap)
    return opened


def _replaced(value: Any, swap: Callable[[re.Match[str]], str]) -> Any:
    if isinstance(value, str):
        return _SEALED_ANYWHERE.sub(swap, value) if PREFIX in value else value
    if isinstance(value, Mapping):
        return {k: _replaced(v, swap) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(v, swap) for v in value]
    return value
