"""The journey stage's merges per customer: when, through which identifier, from which customer.

Ingest says on each merge record which event merged the customers and through which
identifier. The stage of the customer merged away keeps nothing: it sends its merges, with
this one, on to the customer it merged into (`kind: merges`; that customer may live on
another partition), which keeps the latest `MAX_MERGES` of them (`mg/`), so a customer's
state stays bounded however often it merges. A history arriving for a customer that merged on
since follows it. A split deals the split customer's merges out to its parts, each with the
identifier that reached the customer merged in (`deal_merges`); those through the refused
value, and those whose customer merged in stands again, are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from projections.identifiers import held_spellings
from projections.journey import Merge
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_MERGES,
    MergeHistory,
    MergeRecord,
    RegroupRecord,
)
from streams.kafka.records import OutRecord, customer_key
from streams.store import keys
from streams.store.keys import CustomerRef
from streams.store.state import BatchState

MAX_MERGES = 50
"""The most merges kept per customer (the latest)."""


def merges_of(state: BatchState, ref: CustomerRef) -> tuple[MergeRecord, ...]:
    """The merges kept for a customer, oldest first."""
    stored = state.get(keys.merges_key(ref))
    return () if stored is None else MergeHistory.from_bytes(stored).merges


def _order(merge: MergeRecord) -> tuple[datetime, str, str, str]:
    assert merge.at is not None  # only merges that say when are kept
    return (merge.at, merge.event_id or "", merge.from_, merge.into)


def latest(merges: Iterable[MergeRecord]) -> tuple[MergeRecord, ...]:
    """The latest `MAX_MERGES` distinct merges, oldest first (a record delivered twice counts once)."""
    distinct = {_order(m): m for m in merges if m.at is not None}
    return tuple(distinct[k] for k in sorted(distinct))[-MAX_MERGES:]


def history_record(ref: CustomerRef, merges: Iterable[MergeRecord]) -> OutRecord:
    """The record carrying merges to customer `ref`."""
    history = MergeHistory(tenant=ref[0], customer=ref[1], merges=latest(merges))
    return OutRecord(
        "events",
        customer_key(*ref),
        history.to_bytes(),
        ((HEADER_KIND, KIND_MERGES), (HEADER_CUSTOMER_ID, ref[1].encode())),
    )


def pass_on(state: BatchState, ref: CustomerRef, merge: MergeRecord) -> list[OutRecord]:
    """Customer `ref` merged (`merge`): its merges, this one too, go to the customer it now is."""
    carried = list(merges_of(state, ref))
    state.delete(keys.merges_key(ref))
    if merge.at is not None and merge.identifier is not None:
        carried.append(merge)  # a rename (no identifier reached another customer) is no merge
    return [history_record((ref[0], merge.into), carried)] if carried else []


def take(
    state: BatchState, ref: CustomerRef, history: MergeHistory, forward: CustomerRef | None
) -> list[OutRecord]:
    """A merged customer's merges arrive: kept, or sent on when `ref` has merged since."""
    if forward is not None:
        return [history_record(forward, history.merges)]
    kept = latest((*merges_of(state, ref), *history.merges))
    if kept:
        state.put(
            keys.merges_key(ref),
            MergeHistory(tenant=ref[0], customer=ref[1], merges=kept).to_bytes(),
        )
    return []


def deal_merges(
    state: BatchState, ref: CustomerRef, regroup: RegroupRecord, region: str | None
) -> list[OutRecord]:
    """A split: each of the customer's merges goes with the identifier that reached the
    customer merged in. The part holding it keeps the merge (sent to it when it is another
    customer); a merge through a value no part holds now, or whose part is the customer merged
    in standing again, no longer holds and is dropped."""
    kept = merges_of(state, ref)
    state.delete(keys.merges_key(ref))
    owner = {key: part for part, held in regroup.parts.items() for key in held}
    # with sealing on, a merge's identifier is sealed: its link tags find the part
    owner.update({tag: part for part, tags in regroup.links.items() for tag in tags})
    dealt: dict[str, list[MergeRecord]] = {}
    for merge in kept:
        if merge.identifier is None:
            continue
        spellings = (
            merge.links if merge.links is not None else held_spellings(merge.identifier, region)
        )
        part = next((owner[k] for k in spellings if k in owner), None)
        if part is not None and part != merge.from_:
            dealt.setdefault(part, []).append(merge)
    out = []
    for part, merges in sorted(dealt.items()):
        if part == ref[1]:
            history = MergeHistory(tenant=ref[0], customer=ref[1], merges=latest(merges))
            state.put(keys.merges_key(ref), history.to_bytes())
        else:
            out.append(history_record((ref[0], part), merges))
    return out


def as_merges(records: Iterable[MergeRecord]) -> tuple[Merge, ...]:
    """Merge records as the view shows them (those that say when and through what)."""
    return tuple(
        Merge(r.at, r.event_id or "", r.identifier, r.from_, r.into, r.decision)
        for r in records
        if r.at is not None and r.identifier is not None
    )
