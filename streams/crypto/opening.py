"""Where events are served: decrypt a stored journey with its customer's key ring.

The journey stage folds and stores events sealed (the rules read clear fields only); the API's
journey view, and what is built from it, opens them here with the customer's ring from
ingest's state. A field whose key is gone (the customer was erased) reads `[erased]`: a normal
state, never an exception and never a retry. A merge record's identifier, sealed by ingest
under the survivor's key, is opened the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import orjson

from projections.journey import Journey, Merge
from schemas.codec import decode_trusted, encode_event
from schemas.events import Event
from streams.crypto.fields import decrypt_personal, is_encrypted
from streams.crypto.ring import KeyRing
from streams.crypto.sealing import Sealer, note_document
from streams.store import keys
from streams.store.state import LocalStore


def open_event(event: Event, data_keys: Mapping[str, bytes]) -> Event:
    """The event with its sealed fields decrypted (`[erased]` where the key is gone)."""
    raw = encode_event(event)
    if b'"enc:v1:' not in raw:
        return event
    document, _ = decrypt_personal(orjson.loads(raw), data_keys)
    return decode_trusted(orjson.dumps(document))


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
