"""The journey stage's side of a split: deal a customer's events out, as records to send.

Kept apart from `journey_stage` so that the stage reads as it did: `JourneyBatch.on_regroup`
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
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from projections.journey import Journey
from projections.regroup import assign_late, split, split_reason
from schemas.codec import encode_event
from schemas.events import Event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_MOVED, RegroupRecord
from streams.kafka.records import OutRecord, customer_key
from streams.store.keys import CustomerRef

HEADER_FORWARDED = "forwarded"
"""On an event a merged customer passed on to the customer it merged into: the generation of
the customer that passed it on ("" if no split ever touched it)."""

HEADER_SPLIT_FROM = "split_from"
"""On a `moved` event: `<customer id>/<generation>` of the split that dealt it out."""


def split_document(regroup: RegroupRecord) -> bytes:
    """What the journey stage keeps of a customer's last split (`keys.split_key`)."""
    return orjson.dumps({"parts": regroup.parts, "dropped": regroup.dropped})


def late_target(ref: CustomerRef, event: Event, stored: bytes, region: str | None) -> str:
    """Where an event forwarded to a split customer belongs (`assign_late`)."""
    document = orjson.loads(stored)
    parts = {part: frozenset(held) for part, held in document["parts"].items()}
    dropped = frozenset(document["dropped"])
    return assign_late(ref[0], event, ref[1], parts, dropped, region)


def generation_of(regroup: RegroupRecord) -> str:
    """The generation a split begins (the same for every record of one split)."""
    return hashlib.blake2b(regroup.to_bytes(), digest_size=6).hexdigest()


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


def deal_out(
    journey: Journey,
    regroup: RegroupRecord,
    region: str | None,
    raw_of: Mapping[str, bytes | None],
) -> Dealt:
    """Deal a journey out to the customers of a split (`projections.regroup.split`)."""
    parts = {customer: frozenset(held) for customer, held in regroup.parts.items()}
    pieces = split(journey, parts, region)
    origin = f"{journey.customer_id}/{generation_of(regroup)}"
    kept = Journey(journey.tenant, journey.customer_id)
    moved: list[OutRecord] = []
    for piece in pieces:
        if piece.customer_id == journey.customer_id:
            kept = piece
            continue
        target = (journey.tenant, piece.customer_id)
        moved.extend(moved_record(target, e, raw_of.get(e.event_id), origin) for e in piece.events)
    raws = [raw_of.get(e.event_id) or encode_event(e) for e in kept.events]
    encoded = b"[" + b",".join(raws) + b"]" if raws else None
    reason = split_reason(regroup.reason, journey.customer_id, (p.customer_id for p in pieces))
    return Dealt(kept, encoded, moved, reason)
