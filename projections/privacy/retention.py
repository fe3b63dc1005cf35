"""Retention: when a customer's last event is old enough for the ledger to forget the customer.

Pure decisions (no clock, no state): the worker's timer gives `now` and reads its index of
last-event days. Days are UTC calendar dates in ISO form (`YYYY-MM-DD`), which sort as they
read, so an index keyed by them lists the customers longest silent first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

RETENTION_DECIDED_BY = "retention"
"""Who an erasure by retention is recorded as ordered by (no person ordered it)."""


def event_day(at: datetime) -> str:
    """The UTC calendar day of an event's time, as `YYYY-MM-DD`."""
    return at.astimezone(UTC).date().isoformat()


def activity_day(occurred_at: datetime, received_ms: int) -> str:
    """The day an event counts for its customer: its own, but never after the day the ledger
    received it (`received_ms`, the record's timestamp; 0 or less: unknown), so an event
    dated in the future cannot keep its customer past the retention."""
    day = event_day(occurred_at)
    if received_ms <= 0:
        return day
    received = (_EPOCH + timedelta(milliseconds=received_ms)).date().isoformat()
    return min(day, received)


def later_day(stored: str | None, day: str) -> str | None:
    """The customer's new last-event day when `day` moves it forward, else None (a late event,
    or one of the same day, changes nothing)."""
    return day if stored is None or day > stored else None


def cutoff_day(now: datetime, retention_days: int) -> str:
    """The first day a customer may have last been seen on and still be kept."""
    return (now.astimezone(UTC).date() - timedelta(days=retention_days)).isoformat()


def is_expired(last_day: str, cutoff: str) -> bool:
    """Whether a customer last seen on `last_day` is to be forgotten (older than the cutoff)."""
    return last_day < cutoff


def retention_grounds(retention_days: int) -> str:
    """The grounds an erasure by retention records: the setting that decided it."""
    return f"retention_days={retention_days}"


def retention_event_id(customer_id: str, last_day: str) -> str:
    """The id an erasure by retention is recorded under: the same for the same decision, so a
    timer pass sent again after a crash repeats it rather than adding another."""
    return f"retention:{customer_id}:{last_day}"
