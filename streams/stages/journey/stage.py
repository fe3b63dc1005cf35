"""Stage 2, journeys: fold each customer's events, run the rules, emit flag changes.

State per customer (keys under the input partition): the journey's events, the status of each
flag last emitted, a forward pointer once the customer merged into another, and the next
deadline of a time-based rule. A journey is stored as bounded segments
(`segments`). Hot journeys stay decoded in memory between batches, each with the
incremental evaluation of its rules (`projections.evaluation`); each changed journey is
evaluated and written once per batch. Events arrive as the canonical bytes ingest wrote, so a
journey that only grew at its end is written by appending those bytes to its stored tail:
nothing is encoded again.

A `regroup` record (a person blocked a value that had joined customers: see
`streams.stages.identity.regrouping`) is the only thing that walks a whole journey: the customer's
events are dealt out to the customers ingest's graph now has (`projections.regroup.split`,
pure), those for other customers go to them as `moved` events, and the customer keeps its own
part; the flags it no longer has are withdrawn with the decision as the reason. The customers
it leaves get a `regroup` record from ingest too, which drops their pointer to the customer
they had merged into, so they hold their events again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import cast

import orjson

from projections import journey as journey_fold
from projections.evaluation import FlagChanges
from projections.flag_changes import (
    GENERATION,
    flag_statuses,
    flag_transitions,
    flag_updates,
    withdraw_all,
)
from projections.identity import PRIORITY
from projections.journey import Journey
from projections.rules import Detector
from projections.settings import FoldSettings
from schemas.codec import decode_trusted
from schemas.errors import EventConflictError
from schemas.events import Event
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_ERASED,
    KIND_EVENT,
    KIND_MERGE,
    KIND_MERGES,
    KIND_MOVED,
    KIND_REGROUP,
    KIND_REJOIN,
    ErasureRecord,
    MergeHistory,
    MergeRecord,
    RegroupRecord,
    RejoinRecord,
)
from streams.kafka.records import (
    InRecord,
    OutRecord,
    dead_letter,
    failure_reason,
    flag_record,
)
from streams.stages.journey.erasure import erase_stored
from streams.stages.journey.hops import Hops
from streams.stages.journey.memory import DeadlineIndex, JourneyCache
from streams.stages.journey.merges import deal_merges, pass_on, take
from streams.stages.journey.segments import (
    RECORD_FRAMING_BYTES,
    SegmentBounds,
    SegmentWriter,
    append_to_journey,
    decode_journey,
    encode_journey,
    read_journey,
    read_raws,
    split_journey,
)
from streams.stages.journey.split import (
    HEADER_FORWARDED,
    HEADER_SETTLED,
    HEADER_SPLIT_FROM,
    Came,
    deal_on,
    deal_out,
    forwarded_record,
    generation_of,
    merged_document,
    rejoin,
    split_document,
)
from streams.stages.recent import RecentEvents
from streams.store import keys
from streams.store.keys import CustomerRef
from streams.store.state import BatchState

__all__ = [  # the storage helpers are re-exported: readers and tests import them from here
    "RECORD_FRAMING_BYTES",
    "DeadlineIndex",
    "JourneyBatch",
    "JourneyCache",
    "append_to_journey",
    "decode_journey",
    "encode_journey",
    "process_events",
    "read_journey",
    "reevaluate",
    "split_journey",
]


class JourneyBatch:
    """One partition's batch: loads, folds and finally writes and evaluates each journey once."""

    def __init__(
        self,
        state: BatchState,
        cache: JourneyCache,
        deadlines: DeadlineIndex | None = None,
        extra_rules: Mapping[str, Detector] | None = None,
        max_record_bytes: int | None = None,
    ) -> None:
        self.state = state
        self.cache = cache
        self.segments = SegmentWriter(state, SegmentBounds.within(max_record_bytes))
        """Writes each journey as bounded segments, so no record passes the record limit."""
        self.extra_rules = dict(extra_rules) if extra_rules else None
        # A worker's index mirrors the stored deadlines, so an unchanged one is not written
        # again; without one (offline), every evaluation writes its deadline.
        self.mirrored = deadlines is not None
        self.deadlines = deadlines or DeadlineIndex()
        self.dirty: dict[CustomerRef, Journey | None] = {}
        self.merged: dict[CustomerRef, CustomerRef] = {}
        self.held: dict[CustomerRef, int] = {}
        """How many events each changed journey held when the batch first loaded it."""
        self.added: dict[CustomerRef, dict[str, bytes | None]] = {}
        """The events each journey gained in this batch, with the bytes they arrived in."""
        self.before: dict[CustomerRef, Journey] = {}
        """Each changed journey as the batch first loaded it."""
        self.sources: dict[CustomerRef, list[tuple[Event, InRecord | None]]] = {}
        """The events each journey gained in this batch, with the records they came in."""
        self.reasons: dict[CustomerRef, str] = {}
        """Why each customer split in this batch was split (flags withdrawn give it)."""
        self.generations: dict[CustomerRef, str] = {}
        """The generation a split in this batch began for a customer (see `statuses`)."""
        self.ids: dict[CustomerRef, set[str]] = {}
        """Per journey folded in this batch, a set holding at least its event ids (see
        `JourneyCache.ids`): a new event is appended without a look through the journey."""
        self.out: list[OutRecord] = []

    def load(self, ref: CustomerRef) -> Journey | None:
        if ref in self.dirty:
            return self.dirty[ref]
        cached = self.cache.get(self.state.partition, ref)
        if cached is not None:
            return cached
        return read_journey(self.state.get, ref)

    def forward_of(self, ref: CustomerRef) -> CustomerRef | None:
        target = self.state.get(keys.forward_key(ref))
        return None if target is None else (ref[0], target.decode())

    def on_event(
        self,
        ref: CustomerRef,
        event: Event,
        raw: bytes | None = None,
        record: InRecord | None = None,
        split_from: str | None = None,
        came: Came | None = None,
    ) -> None:
        """Fold an event in (`came`: moved by a split or passed on by a merge, not straight
        from ingest)."""
        forward = self.forward_of(ref)
        numbered = came is not None and came.number is not None
        if came is not None and numbered:
            # moved or passed on here by ingest's word from before this customer's latest
            # steps (a settle, a merge): it takes the first step after that word
            moved = deal_on(self.state, ref, event, raw, came, self.statuses(ref)[1])
            if moved is not None:
                self.out.append(moved)
                return
        origin, _, generation = (split_from or "").partition("/")
        if forward == (ref[0], origin) and self.statuses(ref)[1] != generation:
            # Dealt out by a split before ingest's word that the customer stands again came
            # (that word sets the split's generation): the pointer is from before the split.
            # After it, a pointer is a merge since, and the event follows it.
            self.state.delete(keys.forward_key(ref))
            forward = None
        if forward is not None:
            # The customer merged into another, perhaps on another partition: pass it on, as
            # of ingest's word at the merge (or the later one it came by).
            number = self.merged_at(ref, came)
            self.out.append(forwarded_record(forward, event, raw, self.statuses(ref)[1], number))
            return
        if came is not None and not numbered:
            moved = deal_on(self.state, ref, event, raw, came, self.statuses(ref)[1])
            if moved is not None:
                # passed on by a merge from before this customer's split: dealt on as that
                # split would have
                self.out.append(moved)
                return
        journey = self.load(ref) or Journey(ref[0], ref[1])
        ids = self.ids.get(ref)
        if ids is None:
            ids = self.ids[ref] = self.cache.ids(self.state.partition, journey)
        try:
            if event.event_id in ids:  # a repeat, or an id held with other content
                updated = journey_fold.apply(journey, event)
            else:  # certainly new: what `apply` gives, without its look for the id
                updated = journey_fold.add_new(journey, event)
        except EventConflictError:
            return  # ingest rejects conflicting ids; a stored journey keeps the first
        ids.add(event.event_id)
        if updated is not journey:
            self.before.setdefault(ref, journey)
            self.sources.setdefault(ref, []).append((event, record))
            self.held.setdefault(ref, len(journey.events))
            self.added.setdefault(ref, {})[event.event_id] = raw
            self.dirty[ref] = updated

    def merged_at(self, ref: CustomerRef, came: Came | None) -> int | None:
        """The number of ingest's word an event passed on by merged customer `ref` goes by:
        the latest settle when it merged, or the later word the event came by."""
        stored = self.state.get(keys.forward_settled_key(ref))
        numbers = [int(stored)] if stored is not None else []
        if came is not None and came.number is not None:
            numbers.append(came.number)
        return max(numbers, default=None)

    def on_merge(self, ref: CustomerRef, into: CustomerRef, settled: int | None = None) -> None:
        """Customer `ref` merged into `into` (`settled`: ingest's latest settle then)."""
        journey = self.load(ref)
        if journey is not None:
            raws: Sequence[bytes | None] = self.raws_of(ref, journey) or [None] * len(
                journey.events
            )
            passed_on = [
                forwarded_record(into, event, raw, self.statuses(ref)[1], settled)
                for event, raw in zip(journey.events, raws, strict=True)
            ]
            self.out.extend(passed_on)
        if settled is None:
            self.state.delete(keys.forward_settled_key(ref))
        else:
            self.state.put(keys.forward_settled_key(ref), str(settled).encode())
        # Its last split deals no more (its events follow the merge); its steps stay, this
        # merge too, for events that come by an older word.
        kept = merged_document(self.state.get(keys.split_key(ref)), into[1], settled)
        if kept is None:
            self.state.delete(keys.split_key(ref))
        else:
            self.state.put(keys.split_key(ref), kept)
        self.state.put(keys.forward_key(ref), into[1].encode())
        self.dirty[ref] = None
        self.merged[ref] = into

    def on_regroup(
        self,
        ref: CustomerRef,
        regroup: RegroupRecord,
        region: str | None,
        priority: tuple[str, ...] = PRIORITY,
    ) -> None:
        """A customer split by a person's decision or a limit, or one a split left standing
        again."""
        generation = generation_of(regroup)
        if ref[1] != regroup.customer:
            # A customer in ingest's graph now: any merge it forwarded by is over (it may
            # point at a customer merged on since, not the one split: that would loop).
            self.state.delete(keys.forward_key(ref))
            # It may have held flags in an earlier life: those opening now get new change ids.
            statuses, _ = self.statuses(ref)
            self.state.put(keys.flags_key(ref), orjson.dumps({**statuses, GENERATION: generation}))
            # Merges from before the split may still forward events here too: deal them out.
            previous = self.state.get(keys.split_key(ref))
            self.state.put(keys.split_key(ref), split_document(regroup, {}, previous))
            return
        self.out.extend(deal_merges(self.state, ref, regroup, region))  # to the parts holding them
        self.cache.forget(self.state.partition, ref)  # its rules are evaluated afresh
        journey = self.load(ref) or Journey(*ref)
        raws: Sequence[bytes | None] = self.raws_of(ref, journey) or [None] * len(journey.events)
        raw_of = {e.event_id: raw for e, raw in zip(journey.events, raws, strict=True)}
        dealt = deal_out(journey, regroup, region, raw_of, priority)
        self.generations[ref] = generation
        previous = self.state.get(keys.split_key(ref))
        self.state.put(keys.split_key(ref), split_document(regroup, dealt.alone, previous))
        self.out.extend(dealt.moved)
        self.reasons[ref] = dealt.reason
        # The journey starts again from its part: stored now, so that later events of this
        # batch append to it as to any stored journey.
        for book in (self.added, self.sources):
            book.pop(ref, None)
        self.before[ref] = dealt.kept
        self.held[ref] = len(dealt.kept.events)
        if dealt.encoded is not None:
            self.segments.write_all(ref, split_journey(dealt.encoded))
            self.dirty[ref] = dealt.kept
        else:
            self.segments.delete(ref)
            self.dirty[ref] = None

    def finish(self, now: datetime, settings: FoldSettings) -> list[OutRecord]:
        """Write every changed journey, emit its flag changes; return all outputs."""
        for ref, journey in self.dirty.items():
            if journey is None:
                if ref in self.merged:
                    self.withdraw_all(ref, self.merged[ref])
                else:  # split away entirely: none of its events is its own any more
                    self.withdraw_all(ref, None, self.reasons.get(ref))
                _, generation = self.statuses(ref)
                self.segments.delete(ref)
                for key in (keys.flags_key(ref), keys.deadline_key(ref)):
                    self.state.delete(key)
                if generation:  # a split touched it: its id may come back, moved events too
                    self.state.put(keys.flags_key(ref), orjson.dumps({GENERATION: generation}))
                self.cache.forget(self.state.partition, ref)
                self.deadlines.set(self.state.partition, ref, None)
                continue
            verdict: tuple[FlagChanges, datetime | None] | None
            try:
                verdict = self.judge(journey, now, settings)
            except Exception:  # an event the rules cannot take: find it, set it aside
                journey, verdict = self.set_aside(ref, now, settings)
            before = self.before.get(ref) or Journey(*ref)
            if journey is not before and journey.events:
                self.segments.update(ref, before, journey, self.added.get(ref, {}))
            self.cache.put(self.state.partition, journey, self.ids.get(ref))
            if verdict is not None:
                self.emit(journey, now, settings, verdict)
        return self.out

    def judge(
        self, journey: Journey, now: datetime, settings: FoldSettings
    ) -> tuple[FlagChanges, datetime | None]:
        """What changed in the journey's flags and its next deadline as of `now` (nothing
        written): from the customer's incremental evaluation (`projections.evaluation`) kept
        with its hot journey, what `rules.detect` and `rules.next_deadline` give. The changes
        are since the evaluation's last reading, which `emit` told: every judged verdict is
        emitted, or its evaluation forgotten."""
        ref, partition = (journey.tenant, journey.customer_id), self.state.partition
        evaluation = self.cache.evaluation(partition, ref, settings.rules, self.extra_rules)
        try:
            evaluation.sync(journey.events)
            verdict = evaluation.changes(now), evaluation.deadline(now)
        except Exception:
            self.cache.forget(partition, ref)  # half stepped: never used again
            raise
        self.cache.keep(partition, journey, evaluation)
        return verdict

    def set_aside(
        self, ref: CustomerRef, now: datetime, settings: FoldSettings
    ) -> tuple[Journey, tuple[FlagChanges, datetime | None] | None]:
        """The journey without the batch's events the rules fail on; those go to dead letters.

        The batch's events are added again one at a time to the journey as first loaded; one
        whose journey the rules raise on is dead-lettered with the exception. Also returns the
        verdict on what is kept (None if the rules fail on the journey as it was stored).
        """
        kept = self.before.get(ref) or Journey(*ref)
        added = self.added.get(ref, {})
        for event, record in self.sources.get(ref, []):
            try:
                trial = journey_fold.apply(kept, event)
                self.judge(trial, now, settings)
            except Exception as exc:
                added.pop(event.event_id, None)
                if record is not None:
                    reason = failure_reason("evaluate the rules with", exc)
                    self.out.append(dead_letter(record, reason, exc))
                continue
            kept = trial
        self.dirty[ref] = kept
        # the trials were read and not emitted: the verdict is read afresh (whole)
        self.cache.forget(self.state.partition, ref)
        try:
            return kept, self.judge(kept, now, settings)
        except Exception:
            return kept, None  # stored before this batch as it is: its flags stay as they were

    def raws_of(self, ref: CustomerRef, journey: Journey) -> list[bytes] | None:
        """Each event's bytes, in journey order: as arrived in this batch, or as stored.

        None when some are not at hand (the caller encodes those events afresh).
        """
        added = self.added.get(ref, {})
        held = self.held.get(ref, len(journey.events) - len(added))
        stored_raws = read_raws(self.state.get, ref) if held else []
        if len(stored_raws) != held:
            return None
        kept = iter(stored_raws)
        raws = [
            added.get(e.event_id) if e.event_id in added else next(kept) for e in journey.events
        ]
        return None if None in raws else cast(list[bytes], raws)

    def withdraw_all(
        self, ref: CustomerRef, into: CustomerRef | None, reason: str | None = None
    ) -> None:
        """Withdraw every flag of a customer that merged into another or was split away."""
        previous, generation = self.statuses(ref)
        merged_into = None if into is None else into[1]
        self.out.extend(
            flag_record(c) for c in withdraw_all(*ref, previous, merged_into, reason, generation)
        )

    def statuses(self, ref: CustomerRef) -> tuple[dict[str, str], str]:
        """The status of each flag last emitted for a customer, and the customer's generation.

        The generation is set when a split touches the customer (kept beside the statuses, under
        `GENERATION`); a flag withdrawn by a split that opens again later gets a change id of its
        own, which a consumer dropping repeats by change id would otherwise swallow.
        """
        raw = self.state.get(keys.flags_key(ref))
        stored: dict[str, str] = orjson.loads(raw) if raw else {}
        generation = stored.pop(GENERATION, "")
        return stored, self.generations.get(ref, generation)

    def evaluate(self, journey: Journey, now: datetime, settings: FoldSettings) -> None:
        """Run the rules as of `now` and emit what changed since the last evaluation."""
        self.emit(journey, now, settings, self.judge(journey, now, settings))

    def emit(
        self,
        journey: Journey,
        now: datetime,
        settings: FoldSettings,
        verdict: tuple[FlagChanges, datetime | None],
    ) -> None:
        """Emit what changed since the last evaluation and note the next deadline.

        The kept statuses are read and written only when some flag changed: an event that
        changes none costs nothing here, however many flags the customer has.
        """
        del now, settings
        ref = (journey.tenant, journey.customer_id)
        changes, deadline = verdict
        if changes.whole or changes.flags or changes.gone:
            self.emit_changes(ref, changes)
        if self.mirrored and deadline == self.deadlines.get(self.state.partition, ref):
            return
        self.deadlines.set(self.state.partition, ref, deadline)
        if deadline is None:
            self.state.delete(keys.deadline_key(ref))
        else:
            self.state.put(keys.deadline_key(ref), deadline.isoformat().encode())

    def emit_changes(self, ref: CustomerRef, changes: FlagChanges) -> None:
        """Tell the flag topic what changed against the statuses kept, and keep the new ones."""
        raw = self.state.get(keys.flags_key(ref))
        previous, generation = self.statuses(ref)
        reason = self.reasons.get(ref)
        if changes.whole:
            records = flag_transitions(*ref, previous, changes.flags, reason, generation)
            current = flag_statuses(changes.flags, previous)
        else:
            records = flag_updates(*ref, previous, changes.flags, changes.gone, reason, generation)
            current = {**previous, **flag_statuses(changes.flags, previous)}
            for gone in changes.gone:
                current.pop(gone, None)
        self.out.extend(flag_record(c) for c in records)
        if generation:
            current[GENERATION] = generation
        if current != (orjson.loads(raw) if raw else {}):
            self.state.put(keys.flags_key(ref), orjson.dumps(current))


_PASSED_ON = frozenset({KIND_EVENT, KIND_MOVED, KIND_MERGES})
"""The kinds of record a customer passes on to another (`hops`)."""


def _came(record: InRecord, kind: bytes | None, tenant: str, settings: FoldSettings) -> Came | None:
    """How an event record reached its customer when not straight from ingest (None then)."""
    forwarded = record.header(HEADER_FORWARDED)
    if kind != KIND_MOVED and forwarded is None:
        return None
    number = record.header(HEADER_SETTLED)
    return Came(
        None if number is None else int(number),
        None if forwarded is None else forwarded.decode(),
        settings.region_for(tenant),
        settings.identity_for(tenant).priority,
    )


def process_events(
    state: BatchState,
    cache: JourneyCache,
    records: Iterable[InRecord],
    now: datetime,
    settings: FoldSettings,
    deadlines: DeadlineIndex | None = None,
    extra_rules: Mapping[str, Detector] | None = None,
    recent: RecentEvents | None = None,
    max_record_bytes: int | None = None,
    on_erased: Callable[[str, str], None] | None = None,
) -> list[OutRecord]:
    """Fold one partition's batch of keyed events and merges; return what to produce.

    With `recent`, events ingest built in this process are taken as they are, not decoded.
    A record that cannot be decoded or folded, or that the rules fail on, goes to dead letters
    with the reason and the exception type; the batch goes on. Journeys are stored as segments
    each within `max_record_bytes` (see `segments`), however many events they hold.
    `on_erased(tenant, customer_id)` is told of each erasure (the API's kept rings go at once).
    """
    batch = JourneyBatch(state, cache, deadlines, extra_rules, max_record_bytes)
    decode = decode_trusted if recent is None else recent.decode
    for record in records:
        try:
            kind = record.header(HEADER_KIND)
            hops = Hops(record, batch.out) if kind in _PASSED_ON else None
            if hops is not None and hops.exceeded:
                batch.out.append(dead_letter(record, hops.reason()))
                continue
            if kind in (KIND_EVENT, KIND_MOVED) and record.value is not None:
                customer = record.header(HEADER_CUSTOMER_ID)
                event = decode(record.value)
                if customer is None:
                    continue
                origin = record.header(HEADER_SPLIT_FROM) if kind == KIND_MOVED else None
                ref = (event.tenant, customer.decode())
                split_from = origin.decode() if origin is not None else None
                batch.on_event(
                    ref,
                    event,
                    record.value,
                    record,
                    split_from,
                    _came(record, kind, event.tenant, settings),
                )
                if hops is not None:
                    hops.count(batch.out)  # what it passed on (nothing when folded here)
            elif kind == KIND_MERGE and record.value is not None:
                merge = MergeRecord.from_bytes(record.value)
                batch.on_merge(
                    (merge.tenant, merge.from_), (merge.tenant, merge.into), merge.settled
                )
                batch.out.extend(pass_on(state, (merge.tenant, merge.from_), merge))
            elif kind == KIND_MERGES and record.value is not None:
                history = MergeHistory.from_bytes(record.value)
                ref = (history.tenant, history.customer)
                batch.out.extend(take(state, ref, history, batch.forward_of(ref)))
                if hops is not None:
                    hops.count(batch.out)
            elif kind == KIND_REGROUP and record.value is not None:
                regroup = RegroupRecord.from_bytes(record.value)
                customer = record.header(HEADER_CUSTOMER_ID)
                target = customer.decode() if customer is not None else regroup.customer
                region = settings.region_for(regroup.tenant)
                priority = settings.identity_for(regroup.tenant).priority
                batch.on_regroup((regroup.tenant, target), regroup, region, priority)
            elif kind == KIND_ERASED and record.value is not None:
                erasure = ErasureRecord.from_bytes(record.value)
                erase_stored(batch, (erasure.tenant, erasure.customer))
                if on_erased is not None:
                    on_erased(erasure.tenant, erasure.customer)
            elif kind == KIND_REJOIN and record.value is not None:
                back = RejoinRecord.from_bytes(record.value)
                ref = (back.tenant, back.customer)
                lifted, tags = frozenset(back.lifted), frozenset(back.lifted_links)
                batch.out.extend(rejoin(state, ref, lifted, back.into, back.settled, tags))
        except Exception as exc:  # one record must never stop the stage: it goes aside
            batch.out.append(dead_letter(record, failure_reason("fold", exc), exc))
    return batch.finish(now, settings)


def reevaluate(
    state: BatchState,
    cache: JourneyCache,
    refs: Iterable[CustomerRef],
    now: datetime,
    settings: FoldSettings,
    deadlines: DeadlineIndex | None = None,
    extra_rules: Mapping[str, Detector] | None = None,
) -> list[OutRecord]:
    """Evaluate journeys again without a new event (their deadline passed)."""
    batch = JourneyBatch(state, cache, deadlines, extra_rules)
    for ref in refs:
        try:
            journey = batch.load(ref)
            if journey is None:
                continue
            verdict = batch.judge(journey, now, settings)
        except Exception:  # the timer must go on: this journey is not due again
            batch.deadlines.set(state.partition, ref, None)
            state.delete(keys.deadline_key(ref))
            continue
        batch.emit(journey, now, settings, verdict)
    return batch.out
