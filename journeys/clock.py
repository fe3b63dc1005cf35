"""The wall clock: read only by the entry points and handed down (the pure code never reads it)."""

from __future__ import annotations

from datetime import UTC, datetime


def wall_clock() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
