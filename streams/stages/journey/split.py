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
from projections.regroup.steps import Step, follow, stepped
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
from streams.crypto.links import keys_by_priority, known_keys, tags_by_priority
from streams.kafka.records import OutRecord, customer_key
from streams.store import keys
from streams.store.keys import CustomerRef
from streams.store.state import BatchState

HEADER_FORWARDED = "forwarded"
"""On an event a merged customer passed on to the customer it merged into: the generation of
the customer that passed it on ("" if no split ever touched it)."""

HEADER_SPLIT_FROM = "split_from"
"""On a `moved` event: `<customer id>/<generation>` of the split that dealt it out."""


HEADER_SETTLED = "settled"
"""On a `moved` event: the number of ingest's settle or split it was dealt out by; on one a
merged customer passes on: the number of ingest's latest settle when it merged (absent when
not known: records from before numbers were kept)."""


TAGGED = "tagged"
"""In a split record (`x/`) written with sealing on: it names identifiers by their link tags
(keyed hashes, `streams.crypto.links`) wherever a record in clear names their keys, so no
customer's record keeps another's identifiers, erased or not."""


def split_document(
    regroup: RegroupRecord, alone: Mapping[str, list[str]], previous: bytes | None = None
) -> bytes:
    """What the journey stage keeps of a customer's last split (`keys.split_key`): the parts'
    keys, the keys dropped, the customers of events it left alone with their keys, and its
    latest numbered steps (those of the `previous` record, and this split when numbered).

    With sealing on (the regroup record carries link tags) every key is its link tag
    (`TAGGED`): the journey stage compares sealed events' tags with them and never needs a
    key; a record in clear from before keeps its steps, their keys turned into tags."""
    if regroup.links or regroup.dropped_links:
        parts = {part: list(regroup.links.get(part, ())) for part in regroup.parts}
        dropped = list(regroup.dropped_links)
        steps = _tagged_steps(previous)
    else:
        parts = {part: list(held) for part, held in regroup.parts.items()}
        dropped = list(regroup.dropped)
        steps = [] if _is_tagged(previous) else _steps(previous)  # tags: no longer compared
    if regroup.sequence is not None:
        held = {part: frozenset(named) for part, named in parts.items()}
        steps = stepped(steps, Step(regroup.sequence, held, frozenset(dropped)))
    document: dict[str, object] = {"parts": parts, "dropped": dropped, "alone": alone}
    if regroup.links or regroup.dropped_links:
        document[TAGGED] = True
    return orjson.dumps(_with_steps(document, steps))


def merged_document(previous: bytes | None, into: str, number: int | None) -> bytes | None:
    """What a customer keeps once it merged into `into` (ingest's latest settle then being
    `number`): its steps, this merge too when numbered; its last split no longer deals (its
    events follow the merge). None when there is nothing to keep."""
    steps = _steps(previous)
    if number is not None:
        steps = stepped(steps, Step(number, into=into))
    if not steps:
        return None
    document: dict[str, object] = {TAGGED: True} if _is_tagged(previous) else {}
    return orjson.dumps(_with_tags(_with_steps(document, steps), _tags(previous), steps, set()))


def _is_tagged(stored: bytes | None) -> bool:
    return stored is not None and bool(orjson.loads(stored).get(TAGGED))


def _steps(stored: bytes | None) -> list[Step]:
    if stored is None:
        return []
    return [Step.from_document(step) for step in orjson.loads(stored).get("steps", [])]


def _tagged_steps(stored: bytes | None) -> list[Step]:
    """A record's steps with their keys as link tags: a record in clear (from before) turns
    them through its `tags` (a key it has no tag for is left out: no sealed event has it)."""
    steps = _steps(stored)
    if stored is None or _is_tagged(stored):
        return steps
    tag_of = {key: tag for tag, key in _tags(stored).items()}

    def tagged(named: frozenset[str]) -> frozenset[str]:
        return frozenset(tag_of[key] for key in named if key in tag_of)

    return [
        step
        if step.into is not None
        else Step(
            step.number,
            {part: tagged(held) for part, held in step.parts.items()},
            tagged(step.dropped),
        )
        for step in steps
    ]


def _with_steps(document: dict[str, object], steps: list[Step]) -> dict[str, object]:
    if steps:
        document["steps"] = [step.to_document() for step in steps]
    return document


def _tags(stored: bytes | None) -> dict[str, str]:
    if stored is None:
        return {}
    tags: dict[str, str] = orjson.loads(stored).get("tags", {})
    return tags


def _with_tags(
    document: dict[str, object], tags: Mapping[str, str], steps: list[Step], named: set[str]
) -> dict[str, object]:
    """The document with the link tags of the keys it (its steps included) still names: no
    more than those, so the record stays bounded by its steps."""
    for step in steps:
        named.update(step.dropped)
        for held in step.parts.values():
            named.update(held)
    kept = {tag: key for tag, key in tags.items() if key in named}
    if kept:
        document["tags"] = kept
    return document


def note_alone(stored: bytes, customer: str, event: Event, region: str | None) -> bytes:
    """The split record with one more event left standing alone (dealt out late), if
    `customer` is that event's own (not a customer an unblock merged it into)."""
    if customer != customer_id_for(event.tenant, [f"event:{event.event_id}"]):
        return stored
    document = orjson.loads(stored)
    known = None if document.get(TAGGED) else document.get("tags") or {}
    document.setdefault("alone", {})[customer] = _own_keys(event, region, known)
    return orjson.dumps(document)


def _own_keys(event: Event, region: str | None, known: Mapping[str, str] | None) -> list[str]:
    """An event's keys as a split record names them: its link tags when the record is
    tagged (`known` None), else its keys (a sealed event's as far as `known` tells them)."""
    if known is None:
        return sorted(tags_by_priority(event.customer, PRIORITY) or ())
    sealed = keys_by_priority(event.customer, known, PRIORITY)
    if sealed is not None:  # as far as the split's link tags tell them
        return sorted(sealed)
    return sorted(i.key for i in customer_ids(event.customer, region) if i.unusable is None)


def _own(
    event: Event, document: Mapping[str, object], priority: tuple[str, ...]
) -> list[str] | None:
    """An event's keys, highest priority first, as a split record names them: its link tags
    when the record is tagged (none when it carries none), a sealed event's keys as far as the
    record's tags tell them, or None (an event in clear: `projections.regroup` reads them)."""
    if document.get(TAGGED):
        return tags_by_priority(event.customer, priority) or []
    known = document.get("tags")
    return keys_by_priority(event.customer, known if isinstance(known, dict) else {}, priority)


def rejoin(
    state: BatchState,
    ref: CustomerRef,
    lifted: frozenset[str],
    into: str,
    settled: int | None = None,
    lifted_tags: frozenset[str] = frozenset(),
) -> list[OutRecord]:
    """Values a split of `ref` dropped link again: the customers it left alone whose values all
    link again merge into `into` (the merge records, numbered `settled`: ingest's latest settle
    then, so late events follow them as any numbered step); the split record notes it.

    A tagged record (sealing on) names the values by the link tags of their spellings
    (`lifted_tags`), as ingest sends them."""
    stored = state.get(keys.split_key(ref))
    document = {} if stored is None else orjson.loads(stored)
    if "parts" not in document:
        return []  # no split, or it merged since: its events follow the merge
    form: Callable[[str], str] = decided_form
    tagged = bool(document.get(TAGGED))
    if tagged:  # an event that carried no tag is named by none: it stays alone
        lifted, form = lifted_tags, _same
    alone: dict[str, list[str]] = document.get("alone", {})
    back = sorted(
        c for c, held in alone.items() if (held or not tagged) and {form(k) for k in held} <= lifted
    )
    for customer in back:
        del alone[customer]
    # Those values link again: an event still forwarded with them goes to `into`.
    document["dropped"] = [k for k in document["dropped"] if form(k) not in lifted]
    document.setdefault("rejoined", {}).update(dict.fromkeys(sorted(lifted), into))
    merges = [
        OutRecord(
            "events",
            customer_key(ref[0], customer),
            MergeRecord(tenant=ref[0], from_=customer, into=into, settled=settled).to_bytes(),
            ((HEADER_KIND, KIND_MERGE),),
        )
        for customer in back
        if customer != into
    ]
    state.put(keys.split_key(ref), orjson.dumps(document))
    return merges


def _same(tag: str) -> str:
    """A link tag is the form a decision about it is known by (its spellings' tags all come)."""
    return tag


def generation_of(regroup: RegroupRecord) -> str:
    """The generation a split begins (the same for every record of one split)."""
    return hashlib.blake2b(regroup.to_bytes(), digest_size=6).hexdigest()


def forwarded_record(
    ref: CustomerRef,
    event: Event,
    raw: bytes | None = None,
    generation: str = "",
    settled: int | None = None,
) -> OutRecord:
    """An event a merged customer of that `generation` passes on to customer `ref` (`settled`:
    the number of ingest's latest settle when it merged)."""
    origin = (HEADER_FORWARDED, generation.encode())
    return _event_to(ref, event, raw, KIND_EVENT, origin, settled)


def moved_record(
    ref: CustomerRef, event: Event, raw: bytes | None, split_from: str, settled: int | None = None
) -> OutRecord:
    """An event a split (ingest's settle numbered `settled`) dealt out to customer `ref`."""
    origin = (HEADER_SPLIT_FROM, split_from.encode())
    return _event_to(ref, event, raw, KIND_MOVED, origin, settled)


def _event_to(
    ref: CustomerRef,
    event: Event,
    raw: bytes | None,
    kind: bytes,
    origin: tuple[str, bytes],
    settled: int | None,
) -> OutRecord:
    """An event sent on to customer `ref`: its kind, where it comes from, and the number of
    ingest's latest settle it follows (when known)."""
    headers: tuple[tuple[str, bytes], ...] = (
        (HEADER_KIND, kind),
        (HEADER_CUSTOMER_ID, ref[1].encode()),
        origin,
    )
    if settled is not None:
        headers += ((HEADER_SETTLED, str(settled).encode()),)
    return OutRecord(
        "events", customer_key(*ref), encode_event(event) if raw is None else raw, headers
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
        if piece.customer_id not in parts:  # named as the split record names keys
            alone[piece.customer_id] = _own_keys(piece.events[0], region, None if known else {})
        target = (journey.tenant, piece.customer_id)
        moved.extend(
            moved_record(target, e, raw_of.get(e.event_id), origin, regroup.sequence)
            for e in piece.events
        )
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


@dataclass(frozen=True, slots=True)
class Came:
    """How an event reached a customer when not straight from ingest: moved by a split, or
    passed on by a merge."""

    number: int | None
    """The number of ingest's word it came by: the settle that moved it, or the latest settle
    when the customer passing it on merged (None: a record from before numbers were kept)."""
    passed_by: str | None
    """Passed on by a merge: the generation of the customer that passed it on."""
    region: str | None
    """The tenant's default region."""
    priority: tuple[str, ...] = PRIORITY
    """The tenant's identifier priority."""


def deal_on(
    state: BatchState,
    ref: CustomerRef,
    event: Event,
    raw: bytes | None,
    came: Came,
    generation: str,
) -> OutRecord | None:
    """The moved record of an event that reached split customer `ref` (of `generation`) after
    its split dealt the event's keys on, or None when the event stays.

    Ingest may settle a customer again before events moved or passed on to it arrive: when
    the number of the word they came by is known, they follow the keys the customer's later
    steps since (`projections.regroup.steps.follow`), as they would have had they arrived
    first, and carry that split's number on. An event passed on without one goes where the
    customer's last split put its keys (`assign_late`), unless the customer passing it on had
    seen that split (the same generation: it merged since).
    """
    stored = state.get(keys.split_key(ref))
    if stored is None:
        return None
    document = orjson.loads(stored)
    # as the record names them: tags, or a sealed event's keys (None: held in clear)
    sealed = _own(event, document, came.priority)
    found: tuple[str, int | None] | None
    if came.number is not None:
        steps = _steps(stored)
        found = follow(
            ref[0], event, ref[1], steps, came.number, came.region, came.priority, sealed
        )
    elif came.passed_by is not None and came.passed_by != generation and "parts" in document:
        parts = {part: frozenset(held) for part, held in document["parts"].items()}
        dropped = frozenset(document["dropped"])
        rejoined = document.get("rejoined", {})
        if sealed is not None:
            form = _same if document.get(TAGGED) else decided_form
            target = assign_late_keys(
                ref[0], event.event_id, sealed, ref[1], parts, dropped, rejoined, form
            )
        else:
            target = assign_late(
                ref[0], event, ref[1], parts, dropped, came.region, rejoined, came.priority
            )
        latest = _steps(stored)
        found = (target, latest[-1].number if latest else None)
    else:
        return None
    if found is None or found[0] == ref[1]:
        return None
    target, later = found
    noted = note_alone(stored, target, event, came.region)
    if noted is not stored:
        state.put(keys.split_key(ref), noted)
    return moved_record((ref[0], target), event, raw, f"{ref[1]}/{generation}", later)
