"""Ingest's index of each customer's last-event day, which the retention timer reads.

Every event moves its customer's entry forward when it falls on a later day (one state read an
event, cached for the batch; writes only on a new day), and a merge folds the absorbed
customers' entries into the survivor's. Erasure deletes the customer's entry.
"""

from __future__ import annotations

from collections.abc import Iterable

from projections.privacy.retention import later_day
from streams.store import keys
from streams.store.state import BatchState


def note_activity(
    state: BatchState, tenant: str, customer_id: str, day: str, absorbed: Iterable[str] = ()
) -> None:
    """Record that the customer had an event on `day` (and took over the absorbed customers'
    days: the survivor's entry is the latest of them)."""
    last_key = keys.last_seen_key(tenant, customer_id)
    raw = state.get(last_key)
    stored = None if raw is None else raw.decode()
    latest = stored
    for old in absorbed:
        other = drop_activity(state, tenant, old)
        if other is not None:
            latest = later_day(latest, other) or latest
    latest = later_day(latest, day) or latest
    if latest is None or latest == stored:
        return
    if stored is not None:
        state.delete(keys.retention_key(tenant, stored, customer_id))
    state.put(last_key, latest.encode())
    state.put(keys.retention_key(tenant, latest, customer_id), b"")


def drop_activity(state: BatchState, tenant: str, customer_id: str) -> str | None:
    """Delete a customer's last-event day and its index entry; the day it had, if any."""
    last_key = keys.last_seen_key(tenant, customer_id)
    raw = state.get(last_key)
    if raw is None:
        return None
    day = raw.decode()
    state.delete(last_key)
    state.delete(keys.retention_key(tenant, day, customer_id))
    return day
