"""The journey stage's side of a split: deal a customer's events out, as records to send.

Kept apart from `stage` so that the stage reads as it did: `JourneyBatch.on_regroup`
calls `deal_out` and stores what it keeps. The events for other customers go to them as
`moved` records, each naming the split that dealt it out (`<customer id>/<generation>`): the
receiving customer may still forward to the customer split, if ingest's word that it stands
again has not reached it yet; the generation tells that stale pointer from a merge since.

Events can also reach the split customer after its split, passed on by a customer that merged
into it before the split (the merge's events were in flight). The customer keeps its last split
(`x/`: the parts' keys and the keys dropped) and deals such an event out as the split would
have (`assign_late`); forwarded events carry the generation of the customer that passed them
on, so one merged after the split (it saw the split) is not sent back and forth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from projections.identifiers import customer_ids
from projections.identity import PRIORITY, customer_id_for
from projections.journey import Journey
from projections.regroup import (
    assign,
    assign_keys,
    assign_late,
    assign_late_keys,
    decided_form,
    split,
    split_reason,
)
from schemas.codec import encode_event
from schemas.events import Event
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_EVENT,
    KIND_MERGE,
    KIND_MOVED,
    MergeRecord,
    RegroupRecord,
)
from streams.crypto.links import keys_by_priority, known_keys
from streams.kafka.records import OutRecord, customer_key
from streams.store import keys
from streams.store.keys import CustomerRef
from streams.store.state import BatchState

HEADER_FORWARDED = "forwarded"
"""On an event a merged customer passed on to the customer it merged into: the generation of
the customer that passed it on ("" if no split ever touched it)."""

HEADER_SPLIT_FROM = "split_from"
"""On a `moved` event: `<customer id>/<generation>` of the split that dealt it out."""


def split_document(regroup: RegroupRecord, alone: Mapping[str, list[str]]) -> bytes:
    """What the journey stage keeps of a customer's last split (`keys.split_key`): the parts'
    keys, the keys dropped, and the customers of events it left alone with their keys (with
    sealing on, the keys' link tags too: `tags`)."""
    document: dict[str, object] = {
        "parts": regroup.parts,
        "dropped": regroup.dropped,
        "alone": alone,
    }
    if regroup.links or regroup.dropped_links:
        document["tags"] = known_keys(regroup)
    return orjson.dumps(document)


def note_alone(stored: bytes, customer: str, event: Event, region: str | None) -> bytes:
    """The split record with one more event left standing alone (dealt out late), if
    `customer` is that event's own (not a customer an unblock merged it into)."""
    if customer != customer_id_for(event.tenant, [f"event:{event.event_id}"]):
        return stored
    document = orjson.loads(stored)
    document.setdefault("alone", {})[customer] = _own_keys(event, region, document.get("tags"))
    return orjson.dumps(document)


def _own_keys(event: Event, region: str | None, known: Mapping[str, str] | None) -> list[str]:
    sealed = keys_by_priority(event.customer, known or {}, PRIORITY)
    if sealed is not None:  # as far as the split's link tags tell them
        return sorted(sealed)
    return sorted(i.key for i in customer_ids(event.customer, region) if i.unusable is None)


def rejoin(
    state: BatchState, ref: CustomerRef, lifted: frozenset[str], into: str
) -> list[OutRecord]:
    """Values a split of `ref` dropped link again: the customers it left alone whose values all
    link again merge into `into` (the merge records); the split record notes it."""
    stored = state.get(keys.split_key(ref))
    if stored is None:
        return []
    document = orjson.loads(stored)
    alone: dict[str, list[str]] = document.get("alone", {})
    back = sorted(c for c, held in alone.items() if {decided_form(k) for k in held} <= lifted)
    for customer in back:
        del alone[customer]
    # Those values link again: an event still forwarded with them goes to `into`.
    document["dropped"] = [k for k in document["dropped"] if decided_form(k) not in lifted]
    document.setdefault("rejoined", {}).update(dict.fromkeys(sorted(lifted), into))
    merges = [
        OutRecord(
            "events",
            customer_key(ref[0], customer),
            MergeRecord(tenant=ref[0], from_=customer, into=into).to_bytes(),
            ((HEADER_KIND, KIND_MERGE),),
        )
        for customer in back
        if customer != into
    ]
    state.put(keys.split_key(ref), orjson.dumps(document))
    return merges


def late_target(ref: CustomerRef, event: Event, stored: bytes, region: str | None) -> str:
    """Where an event forwarded to a split customer belongs (`assign_late`)."""
    document = orjson.loads(stored)
    parts = {part: frozenset(held) for part, held in document["parts"].items()}
    dropped = frozenset(document["dropped"])
    rejoined = document.get("rejoined", {})
    sealed = keys_by_priority(event.customer, document.get("tags") or {}, PRIORITY)
    if sealed is not None:
        return assign_late_keys(ref[0], event.event_id, sealed, ref[1], parts, dropped, rejoined)
    return assign_late(ref[0], event, ref[1], parts, dropped, region, rejoined)


def generation_of(regroup: RegroupRecord) -> str:
    """The generation a split begins (the same for every record of one split)."""
    return hashlib.blake2b(regroup.to_bytes(), digest_size=6).hexdigest()


def forwarded_record(
    ref: CustomerRef, event: Event, raw: bytes | None = None, generation: str = ""
) -> OutRecord:
    """An event a merged customer of that `generation` passes on to customer `ref`."""
    return OutRecord(
        "events",
        customer_key(*ref),
        encode_event(event) if raw is None else raw,
        (
            (HEADER_KIND, KIND_EVENT),
            (HEADER_CUSTOMER_ID, ref[1].encode()),
            (HEADER_FORWARDED, generation.encode()),
        ),
    )


def moved_record(ref: CustomerRef, event: Event, raw: bytes | None, split_from: str) -> OutRecord:
    """An event a split dealt out to customer `ref`."""
    return OutRecord(
        "events",
        customer_key(*ref),
        encode_event(event) if raw is None else raw,
        (
            (HEADER_KIND, KIND_MOVED),
            (HEADER_CUSTOMER_ID, ref[1].encode()),
            (HEADER_SPLIT_FROM, split_from.encode()),
        ),
    )


@dataclass(frozen=True, slots=True)
class Dealt:
    """What a split does to one customer's journey."""

    kept: Journey
    """The customer's own part (no events: it was split away entirely)."""
    encoded: bytes | None
    """The kept part as stored (None when it holds no event)."""
    moved: list[OutRecord]
    reason: str
    """Why the customer's flags that no longer hold are withdrawn."""
    alone: dict[str, list[str]]
    """The customers of events left standing alone, with their keys (for an unblock)."""


def deal_out(
    journey: Journey,
    regroup: RegroupRecord,
    region: str | None,
    raw_of: Mapping[str, bytes | None],
    priority: tuple[str, ...] = PRIORITY,
) -> Dealt:
    """Deal a journey out to the customers of a split (`projections.regroup.split`), each
    event to the customer of its highest-priority identifier in the tenant's `priority`."""
    parts = {customer: frozenset(held) for customer, held in regroup.parts.items()}
    known = known_keys(regroup) if regroup.links or regroup.dropped_links else None
    if known is not None:
        pieces = _split_sealed(journey, parts, known, region, priority)
    else:
        pieces = split(journey, parts, region, priority)
    origin = f"{journey.customer_id}/{generation_of(regroup)}"
    kept = Journey(journey.tenant, journey.customer_id)
    moved: list[OutRecord] = []
    alone: dict[str, list[str]] = {}
    for piece in pieces:
        if piece.customer_id == journey.customer_id:
            kept = piece
            continue
        if piece.customer_id not in parts:
            alone[piece.customer_id] = _own_keys(piece.events[0], region, known)
        target = (journey.tenant, piece.customer_id)
        moved.extend(moved_record(target, e, raw_of.get(e.event_id), origin) for e in piece.events)
    raws = [raw_of.get(e.event_id) or encode_event(e) for e in kept.events]
    encoded = b"[" + b",".join(raws) + b"]" if raws else None
    reason = split_reason(regroup.reason, journey.customer_id, (p.customer_id for p in pieces))
    return Dealt(kept, encoded, moved, reason, alone)


def _split_sealed(
    journey: Journey,
    parts: Mapping[str, frozenset[str]],
    known: Mapping[str, str],
    region: str | None,
    priority: tuple[str, ...],
) -> tuple[Journey, ...]:
    """`projections.regroup.split` of a journey whose events hold their identifiers sealed:
    each event's keys are read from its link tags through the split's (`known`), never opened;
    an event held in clear is read as always."""
    dealt: dict[str, list[Event]] = {}
    for event in journey.events:
        ordered = keys_by_priority(event.customer, known, priority)
        if ordered is None:
            target = assign(journey.tenant, event, parts, region, priority)
        else:
            target = assign_keys(journey.tenant, event.event_id, ordered, parts)
        dealt.setdefault(target, []).append(event)
    return tuple(
        Journey(journey.tenant, customer, tuple(events))
        for customer, events in sorted(dealt.items())
    )


def deal_late(
    state: BatchState,
    ref: CustomerRef,
    event: Event,
    raw: bytes | None,
    late: tuple[str, str | None],
    statuses: Callable[[CustomerRef], tuple[object, str]],
) -> OutRecord | None:
    """The moved record of an event forwarded to a split customer by a merge from before its
    split, or None when the event stays (`late`: the generation of the customer that passed
    it on, and the tenant's region; `statuses` gives this customer's generation).

    One passed on by a customer that had seen the split (the same generation) merged since,
    and stays.
    """
    stored = state.get(keys.split_key(ref))
    if stored is None:
        return None
    generation = statuses(ref)[1]
    if late[0] == generation:
        return None
    target = late_target(ref, event, stored, late[1])
    if target == ref[1]:
        return None
    noted = note_alone(stored, target, event, late[1])
    if noted is not stored:
        state.put(keys.split_key(ref), noted)
    return moved_record((ref[0], target), event, raw, f"{ref[1]}/{generation}")
