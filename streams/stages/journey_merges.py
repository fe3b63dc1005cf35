"""The journey stage's merges per customer: when, through which identifier, from which customer.

Ingest says on each merge record which event merged the customers and through which
identifier. The stage of the customer merged away keeps nothing: it sends its merges, with
this one, on to the customer it merged into (`kind: merges`; that customer may live on
another partition), which keeps the latest `MAX_MERGES` of them (`mg/`), so a customer's
state stays bounded however often it merges. A history arriving for a customer that merged on
since follows it. A split starts the split customer's merges again: which of them still
apply would take the events that made them, and the split itself is told by its own record.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from projections.journey import Merge
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_MERGES, MergeHistory, MergeRecord
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


def reset(state: BatchState, ref: CustomerRef) -> None:
    """A split: the customer's merges start again."""
    state.delete(keys.merges_key(ref))


def as_merges(records: Iterable[MergeRecord]) -> tuple[Merge, ...]:
    """Merge records as the view shows them (those that say when and through what)."""
    return tuple(
        Merge(r.at, r.event_id or "", r.identifier, r.from_, r.into, r.decision)
        for r in records
        if r.at is not None and r.identifier is not None
    )
