"""Date arithmetic that cannot overflow: a moment plus a window saturates at the end of time.

Events carry moments in the years 1970 to 2999, but windows come from settings and a moment
plus a window must never raise in the fold. Comparisons are written as differences of two
moments (always representable); a deadline is `later(moment, window)`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

END_OF_TIME = datetime.max.replace(tzinfo=UTC)
"""What `later` gives when the sum lies past the last representable moment."""


def later(moment: datetime, span: timedelta) -> datetime:
    """`moment + span`, or `END_OF_TIME` where that sum is past what a datetime can hold."""
    try:
        return moment + span
    except OverflowError:
        return END_OF_TIME if span >= timedelta(0) else datetime.min.replace(tzinfo=UTC)
