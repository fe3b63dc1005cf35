"""How dates, times and slots read in flag messages: as written, in their own offset."""

from __future__ import annotations

from datetime import date, datetime, timedelta


def format_slot(slot: datetime | date) -> str:
    """`Tue 12 Mar 10:30`, or `Tue 12 Mar` for a slot without a time."""
    if isinstance(slot, datetime):
        return f"{slot:%a} {slot.day} {slot:%b %H:%M}"
    return f"{slot:%a} {slot.day} {slot:%b}"


def format_moment(moment: datetime) -> str:
    """When something happened, in the source system's own offset."""
    return format_slot(moment)


def format_day(moment: datetime | date) -> str:
    """Just the day: `Tue 12 Mar`."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return format_slot(day)


def format_duration(span: timedelta) -> str:
    """A span in the unit a person would use: minutes, hours or days."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 72:
        return f"{hours} h"
    return f"{hours // 24} days"


def format_elapsed(span: timedelta) -> str:
    """How long something lasted, rounded down: minutes under an hour, hours under two days,
    then days (`45 min`, `30 h`, `2 days`)."""
    minutes = max(int(span.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"


def same_slot(a: datetime | date, b: datetime | date) -> bool:
    """Whether two slots agree: the local date, and the local time when both have one."""
    day_a = a.date() if isinstance(a, datetime) else a
    day_b = b.date() if isinstance(b, datetime) else b
    if day_a != day_b:
        return False
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.hour, a.minute) == (b.hour, b.minute)
    return True
