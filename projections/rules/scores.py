"""LOW_SCORE_AFTER_FLAGS: a low survey score arrives with the flags the customer lived through.

A derived rule: it reads the base rules' flags (see `DerivedRule`). The flag describes the
moment of the survey: which flags opened in the window before it, and whether each had been
resolved by then; later events do not rewrite what the customer had lived through.

The window bounds what a survey reads: the flags opened within it, however long the journey.
A flag opened before the window is not read even while it is still open (a hot customer's
never-cancelled flags would otherwise be read by every survey, for ever). The flag points at
the events of the flags its message names (at most `MAX_NAMED`), not of all it counts.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, TypeGuard

from projections.flags import Flag, FlagDraft, Severity
from projections.formatting import format_elapsed
from projections.journey import event_order
from projections.rules.rule import DerivedRule
from schemas.events import Event, SurveyResponded

if TYPE_CHECKING:
    from projections.settings import RuleSettings

MAX_NAMED = 5
"""The most preceding flags a message names; the rest are counted ("and 2 more")."""

_BOTTOM = {10: 6, 5: 2}
"""The top of the bottom band of the common scales: 0-6 of 10, 1-2 of 5."""


def bottom_band_top(scale: int) -> int:
    """The highest score in a scale's bottom band: 6 of 10, 2 of 5, else 60 % rounded down."""
    return _BOTTOM.get(scale, math.floor(0.6 * scale))


def is_low(score: float, scale: int | None) -> bool:
    """Whether a survey score lies in the bottom band of its scale.

    Without a scale (or with one below 1) a score is never low: 4 is poor out of 10 and good
    out of 5, and a guess would send a manager to call a happy customer. A score outside
    0..scale (or not a number) is not low either: it is not on the scale it names.
    """
    if scale is None or scale < 1 or not 0 <= score <= scale:
        return False
    return score <= bottom_band_top(scale)


def _window_start(at: datetime, window: timedelta) -> datetime | None:
    """The first moment of the window before `at` (None: it reaches past the earliest moment a
    datetime holds, so it starts before every flag)."""
    try:
        return at - window
    except OverflowError:
        return None


def in_window(flags: Sequence[Flag], at: datetime, window: timedelta) -> list[Flag]:
    """The flags a survey at `at` reads, of those given in the order they opened: opened in
    `[at - window, at)`, never a `LOW_SCORE_AFTER_FLAGS` one. Two bisections and the flags of
    one window: the cost is bounded by the window, not by the journey."""
    start = _window_start(at, window)
    opened: Callable[[Flag], datetime] = attrgetter("opened_at")
    first = 0 if start is None else bisect.bisect_left(flags, start, key=opened)
    end = bisect.bisect_left(flags, at, lo=first, key=opened)
    return [flag for flag in flags[first:end] if flag.rule != RULE.name]


def _describe(flag: Flag, at: datetime, systems: Sequence[str]) -> str:
    if flag.resolved_at is not None and flag.resolved_at <= at:
        state = f"resolved after {format_elapsed(flag.resolved_at - flag.opened_at)}"
    else:
        state = "still open"
    return f"{flag.rule} ({', '.join(systems)}), {state}"


def _draft(
    survey: SurveyResponded,
    preceding: Sequence[Flag],
    by_id: Mapping[str, Event],
    window: timedelta,
) -> FlagDraft:
    at = survey.occurred_at
    involved: dict[str, Event] = {survey.event_id: survey}
    named: list[str] = []
    for flag in preceding[:MAX_NAMED]:
        # What the customer had lived through by the survey: events after it are left out.
        seen = [e for i in flag.event_ids if (e := by_id.get(i)) and e.occurred_at <= at]
        involved.update((e.event_id, e) for e in seen)
        named.append(_describe(flag, at, sorted({e.source.system for e in seen})))
    more = len(preceding) - len(named)
    listed = "; ".join(named) + (f"; and {more} more" if more else "")
    p = survey.payload
    message = (
        f"customer scored {p.score:g}/{p.scale} in {survey.source.system}; "
        f"in the {format_elapsed(window)} before: {listed}"
    )
    events = sorted(involved.values(), key=event_order)
    return RULE.draft(survey.event_id, message, at, events)


def detect(
    events: Sequence[Event], flags: Sequence[Flag], as_of: datetime, rules: RuleSettings
) -> list[FlagDraft]:
    """A survey scored in the bottom band of its scale after flags opened within the window.

    A preceding flag opened in the window before the survey: `[survey - window, survey)`
    (never at or after it), resolved since or not. One flag per low survey; it stays open for a
    person to resolve. Given the flags, the moment (`as_of`) does not change it. Linear: the events once, the
    flags (in the order they opened) once, plus the events of the flags each message names.
    """
    del as_of  # a flag opened in the window is read whatever it became later
    if not flags:
        return []  # the common case: nothing to read, no need to walk the events
    surveys = [event for event in events if is_low_survey(event)]
    if not surveys:
        return []  # no low score: no index of the journey's events to build
    by_id = {event.event_id: event for event in events}
    return detect_from(surveys, by_id, flags, rules)


def is_low_survey(event: Event) -> TypeGuard[SurveyResponded]:
    """A survey answer scored in the bottom band of its scale (the surveys this rule reads)."""
    return isinstance(event, SurveyResponded) and is_low(event.payload.score, event.payload.scale)


def detect_from(
    surveys: Sequence[SurveyResponded],
    by_id: Mapping[str, Event],
    flags: Sequence[Flag],
    rules: RuleSettings,
) -> list[FlagDraft]:
    """`detect` given the journey's low surveys in journey order and its events by id (at
    least those of the flags): no walk over the journey."""
    window = rules.low_score_window
    base = iter(f for f in flags if f.rule != RULE.name)
    upcoming = next(base, None)
    active: deque[Flag] = deque()
    drafts: list[FlagDraft] = []
    for survey in surveys:
        at = survey.occurred_at
        while upcoming is not None and upcoming.opened_at < at:
            active.append(upcoming)
            upcoming = next(base, None)
        # A flag opened before this survey's window opened before every later survey's too.
        start = _window_start(at, window)
        while active and start is not None and active[0].opened_at < start:
            active.popleft()
        if active:
            drafts.append(_draft(survey, list(active), by_id, window))
    return drafts


def survey_flag(
    survey: SurveyResponded,
    flags: Sequence[Flag],
    by_id: Mapping[str, Event],
    rules: RuleSettings,
) -> FlagDraft | None:
    """The flag of one low survey, as `detect` finds it (`flags`: in the order they opened);
    it reads only the flags of its window (`in_window`)."""
    window = rules.low_score_window
    active = in_window(flags, survey.occurred_at, window)
    return _draft(survey, active, by_id, window) if active else None


RULE = DerivedRule("LOW_SCORE_AFTER_FLAGS", Severity.MEDIUM, detect)
RULES = (RULE,)
