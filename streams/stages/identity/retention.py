"""Ingest's retention timer: forget the customers a tenant's `retention_days` has run out for.

It reads the index of last-event days (`streams.stages.identity.activity`), keyed by day
(`lr/<tenant>/<day>/<customer>`), so it meets the customers longest silent first and stops at
the first one it keeps, erasing at most
`MAX_EXPIRED_PER_PASS` customers of a tenant a pass: a pass costs what it erases, never a scan of the
tenant's customers, and a backlog drains over several passes without holding up the batches.
An entry whose customer is gone (merged away, split, erased) is dropped when the timer meets it.

Customers the index does not hold (stored before it existed, or the parts of a split) are
found by a sweep: each pass reads on from where the last one stopped, at most
`SWEEP_PER_PASS` customers of a tenant, and indexes those missing as last seen today, so the
retention never forgets one sooner than it should; a sweep that reaches the end starts over.

A pass runs on a partition only while ingest is caught up on it (at most `RETENTION_MAX_LAG`
records waiting, as the stage runner sees the validated topic's high water), so it never
forgets a customer whose newer events are in a backlog ingest has not read yet.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import datetime

from projections.privacy.retention import (
    RETENTION_DECIDED_BY,
    cutoff_day,
    event_day,
    is_expired,
    retention_event_id,
    retention_grounds,
)
from streams.crypto.sealing import Sealer
from streams.kafka.records import OutRecord
from streams.stages.identity.activity import drop_activity, note_activity
from streams.stages.identity.erasure import erasure_record, forget_customer
from streams.store import keys
from streams.store.state import BatchState

MAX_EXPIRED_PER_PASS = 200
"""Customers of a tenant one timer pass erases in a partition at most (the rest wait for the
next pass)."""

SWEEP_PER_PASS = 500
"""Customers of a tenant the sweep for unindexed customers reads a pass, at most."""

RETENTION_PASS_S = 5.0
"""Seconds between timer passes (a pass that finds nobody due costs one seek per tenant)."""

RETENTION_MAX_LAG = 100
"""Validated records waiting on a partition above which its timer pass waits for ingest to
catch up (`Stage.tick_max_lag`): a customer whose newer events are still in the validated
topic, after an outage say, is not forgotten just before they arrive."""


def expire(
    state: BatchState,
    retention_days: Mapping[str, int],
    now: datetime,
    sealer: Sealer | None,
    erased: MutableMapping[str, int] | None = None,
    limit: int = MAX_EXPIRED_PER_PASS,
) -> list[OutRecord]:
    """One timer pass over a partition: erase the customers of each tenant with a retention
    whose last event is older than it (at most `limit` a tenant), as `journeys forget` does; the
    erasure records to send. With `erased`, each erasure is counted under its tenant."""
    out: list[OutRecord] = []
    for tenant, days in sorted(retention_days.items()):
        cutoff, left = cutoff_day(now, days), limit  # one tenant's backlog never starves another
        prefix = keys.retention_prefix(tenant)
        # The store, read lazily in day order (the pass's own writes are deletions behind it).
        for key, _ in state.store.items(state.partition, prefix):
            day, customer = keys.retention_entry(key)
            if not is_expired(day, cutoff) or left <= 0:
                break
            if state.get(keys.last_seen_key(tenant, customer)) != day.encode():
                state.delete(key)  # a stale entry: its customer moved on or is gone
                continue
            left -= 1
            if state.get(keys.members_key(tenant, customer)) is None:
                drop_activity(state, tenant, customer)  # merged or split away: nobody to erase
                continue
            forgotten = forget_customer(state, tenant, customer, sealer, suppression=None)
            out.extend(forgotten.dead_letters)
            out.append(
                erasure_record(
                    tenant,
                    customer,
                    event_id=retention_event_id(customer, day),
                    at=now,
                    decided_by=RETENTION_DECIDED_BY,
                    grounds=retention_grounds(days),
                    keys_destroyed=forgotten.keys_destroyed,
                )
            )
            if erased is not None:
                erased[tenant] = erased.get(tenant, 0) + 1
        sweep(state, tenant, event_day(now))
    return out


def sweep(state: BatchState, tenant: str, today: str, limit: int = SWEEP_PER_PASS) -> int:
    """Index the next customers (at most `limit`) the index does not hold yet as last seen
    `today`, from where the previous sweep stopped; how many were indexed."""
    prefix, cursor_key = keys.members_prefix(tenant), keys.sweep_key(tenant)
    cursor = state.get(cursor_key)
    after = None if not cursor else prefix + cursor
    read, indexed, last = 0, 0, b""
    for key, _ in state.store.items(state.partition, prefix, after):
        read += 1
        last = key[len(prefix) :]
        customer = last.decode()
        # (not one erased earlier in this pass: the store has not seen that yet)
        if (
            state.get(keys.members_key(tenant, customer)) is not None
            and state.get(keys.last_seen_key(tenant, customer)) is None
        ):
            note_activity(state, tenant, customer, today)
            indexed += 1
        if read >= limit:
            break
    if read < limit and cursor:
        state.delete(cursor_key)  # the end: the next pass starts over
    elif read == limit:
        state.put(cursor_key, last)
    return indexed
