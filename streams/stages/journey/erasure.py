"""The journey stage's side of erasing a customer: keep the skeleton, drop the personal fields.

On ingest's `kind: erased` record the stored journey is rewritten once with every personal
value (each sealed `enc:v1:` value, and whatever the split calls personal when the events were
stored in clear) replaced by `[erased]`: types, times, systems, sites, rule inputs and event
ids stay, so statistics and the flags' rule, severity and times do too. The ciphertext leaves
the journey state (its changelog keeps the older record until compaction); without the
customer's keys, which ingest destroyed, no copy of it can be read.

Like a split, this is the one other place that walks a whole journey, once per erasure.
"""

from __future__ import annotations

from typing import Any

import orjson

from projections.journey import Journey
from schemas.codec import decode_trusted, encode_event
from schemas.events import Event
from schemas.outputs import MergeHistory
from schemas.privacy.personal import personal_paths
from streams.crypto.fields import ERASED, SECTIONS, is_encrypted
from streams.store import keys
from streams.store.keys import CustomerRef


def erased_document(document: dict[str, Any]) -> dict[str, Any]:
    """An event document with every personal or sealed value replaced by `[erased]`."""
    out = dict(document)
    paths = set(personal_paths(document))
    for section in SECTIONS:
        block = document.get(section)
        if not isinstance(block, dict):
            continue
        out[section] = {
            name: ERASED
            if value is not None and (is_encrypted(value) or f"{section}.{name}" in paths)
            else value
            for name, value in block.items()
        }
    return out


def erased_event(event: Event) -> Event:
    """The event with its personal fields erased (read back as the ledger reads its state)."""
    return decode_trusted(orjson.dumps(erased_document(orjson.loads(encode_event(event)))))


def erased_journey(journey: Journey) -> Journey:
    """The journey's skeleton: the same events in the same order, personal fields erased."""
    return Journey(journey.tenant, journey.customer_id, tuple(map(erased_event, journey.events)))


def erase_stored(batch: Any, ref: CustomerRef) -> None:
    """Rewrite a customer's journey in a `JourneyBatch` (streams.stages.journey.stage) erased,
    and delete its split record.

    Stored at once, as a split's part is, so that later events of the batch append to it; the
    rules then run over it as over any changed journey (their inputs are clear, so its flags
    stay, and flag messages never quote personal fields).
    """
    stored = batch.state.get(keys.merges_key(ref))
    if stored is not None and b'"links"' in stored:  # link tags outlive nothing erased here
        history = MergeHistory.from_bytes(stored)
        merges = tuple(m.model_copy(update={"links": None}) for m in history.merges)
        batch.state.put(
            keys.merges_key(ref), history.model_copy(update={"merges": merges}).to_bytes()
        )
    # Its last split and steps (`x/`) name its parts' identifier keys: they go too (late events
    # forwarded to it stay with it, as those arriving after the erasure do).
    batch.state.delete(keys.split_key(ref))
    journey = batch.load(ref)
    if journey is None:
        return
    erased = erased_journey(journey)
    for book in (batch.added, batch.sources):
        book.pop(ref, None)
    batch.before[ref] = erased
    batch.held[ref] = len(erased.events)
    batch.segments.write_all(ref, [encode_event(event) for event in erased.events])
    batch.cache.forget(batch.state.partition, ref)
    batch.dirty[ref] = erased
