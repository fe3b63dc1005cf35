"""LOW_SCORE_AFTER_FLAGS: a low survey score arrives with the flags the customer lived through.

A derived rule: it reads the base rules' flags (see `DerivedRule`). The flag describes the
moment of the survey: which flags were open in the window before it (opened within it, or
earlier and still open in it), and whether each had been resolved by then; later events do not
rewrite what the customer had lived through.

A survey's cost is bounded however long the journey: it counts its flags from sorted times
(`Preceding`, three bisections), and names at most `MAX_NAMED` of them, most recently opened
first, found among at most `SCAN` flags. The flag points at the events of the flags its message
names, not of all it counts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, TypeGuard, TypeVar

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


SCAN = 256
"""The most flags one survey's message looks at to find those it names: the flags opened in its
window all precede it (they are looked at first, most recent first), and older ones that were
still open in it are looked for among at most this many. A fixed bound, so that naming does not
walk a hot customer's whole history; the count stays exact ("and N more")."""


def _overlaps(flag: Flag, at: datetime, window: timedelta, as_of: datetime) -> bool:
    # [opened_at, resolved_at or as_of) meets [at - window, at]; opened_at < at is known.
    # Written as a difference of two moments so that no window can overflow a datetime.
    end = flag.resolved_at if flag.resolved_at is not None else as_of
    return at - end < window


_Threshold = tuple[bool, datetime]
"""When a resolved flag stops preceding surveys: (False, moment) from that moment on, or
(True, moment) never (the moment would overflow a datetime)."""


def _threshold(flag: Flag, resolved: datetime, window: timedelta) -> _Threshold:
    """The first survey moment that no longer counts a flag resolved at `resolved`: the later
    of one microsecond after its opening and a window after its end (`_overlaps` with
    `opened_at < at`, as a threshold on `at`)."""
    try:
        return (False, max(resolved + window, flag.opened_at + timedelta(microseconds=1)))
    except OverflowError:  # past the last moment a datetime holds: it always counts
        return (True, flag.opened_at)


class Preceding:
    """The opening and end times of a journey's base flags, kept sorted: how many flags precede
    a survey (`_overlaps`) is three bisections, not a walk over every earlier flag."""

    __slots__ = ("ends", "open", "opened", "window")

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.opened: list[datetime] = []
        """Every flag's opening."""
        self.ends: list[_Threshold] = []
        """Each resolved flag's `_threshold`."""
        self.open: list[datetime] = []
        """Each unresolved flag's opening (its end is the moment read at)."""

    @classmethod
    def of(cls, flags: Iterable[Flag], window: timedelta) -> Preceding:
        """The times of these base flags."""
        times = cls(window)
        for flag in flags:
            times.add(flag)
        return times

    def add(self, flag: Flag) -> None:
        """Note a flag's times."""
        bisect.insort(self.opened, flag.opened_at)
        if flag.resolved_at is None:
            bisect.insort(self.open, flag.opened_at)
        else:
            bisect.insort(self.ends, _threshold(flag, flag.resolved_at, self.window))

    def remove(self, flag: Flag) -> None:
        """Forget a flag's times (those `add` noted for this version of it)."""
        _drop(self.opened, flag.opened_at)
        if flag.resolved_at is None:
            _drop(self.open, flag.opened_at)
        else:
            _drop(self.ends, _threshold(flag, flag.resolved_at, self.window))

    def count(self, at: datetime, as_of: datetime) -> int:
        """How many of the flags precede a survey at `at`, read as of `as_of`: opened before
        it, less those over before its window (resolved, or open and `as_of` before it)."""
        before = bisect.bisect_left(self.opened, at)
        over = bisect.bisect_right(self.ends, (False, at))
        if at - as_of >= self.window:  # open flags end at as_of, before this window
            over += bisect.bisect_left(self.open, at)
        return before - over


_T = TypeVar("_T", datetime, _Threshold)


def _drop(items: list[_T], item: _T) -> None:
    del items[bisect.bisect_left(items, item)]


def named_flags(
    flags: Sequence[Flag], at: datetime, window: timedelta, as_of: datetime
) -> list[Flag]:
    """The flags a survey at `at` names, most recently opened first: of `flags` (base flags in
    the order they opened), those opened before it that `_overlaps` its window, at most
    `MAX_NAMED` of them, looking at no more than `SCAN` flags."""
    named: list[Flag] = []
    index = bisect.bisect_left(flags, at, key=attrgetter("opened_at"))
    for flag in reversed(flags[max(0, index - SCAN) : index]):
        if flag.rule != RULE.name and _overlaps(flag, at, window, as_of):
            named.append(flag)
            if len(named) == MAX_NAMED:
                break
    return named


def _describe(flag: Flag, at: datetime, systems: Sequence[str]) -> str:
    if flag.resolved_at is not None and flag.resolved_at <= at:
        state = f"resolved after {format_elapsed(flag.resolved_at - flag.opened_at)}"
    else:
        state = "still open"
    return f"{flag.rule} ({', '.join(systems)}), {state}"


def _draft(
    survey: SurveyResponded,
    named: Sequence[Flag],
    count: int,
    by_id: Mapping[str, Event],
    window: timedelta,
) -> FlagDraft:
    at = survey.occurred_at
    involved: dict[str, Event] = {survey.event_id: survey}
    described: list[str] = []
    for flag in named:
        # What the customer had lived through by the survey: events after it are left out.
        seen = [e for i in flag.event_ids if (e := by_id.get(i)) and e.occurred_at <= at]
        involved.update((e.event_id, e) for e in seen)
        described.append(_describe(flag, at, sorted({e.source.system for e in seen})))
    more = count - len(described)
    listed = "; ".join([*described, *([f"and {more} more"] if more else [])])
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
    """A survey scored in the bottom band of its scale after flags open within the window.

    A preceding flag opened before the survey (never at or after it) and was open at some
    moment of the window before it: [opened_at, resolved_at or as_of) meets
    [survey - window, survey]. One flag per low survey; it stays open for a person to resolve.
    The flags' times sorted once; then each low survey costs a few bisections and at most
    `SCAN` flags (`read_survey`), plus the events of the flags it names.
    """
    if not flags:
        return []  # the common case: nothing to read, no need to walk the events
    surveys = [event for event in events if is_low_survey(event)]
    if not surveys:
        return []  # no low score: no index of the journey's events to build
    by_id = {event.event_id: event for event in events}
    return detect_from(surveys, by_id, flags, as_of, rules)


def is_low_survey(event: Event) -> TypeGuard[SurveyResponded]:
    """A survey answer scored in the bottom band of its scale (the surveys this rule reads)."""
    return isinstance(event, SurveyResponded) and is_low(event.payload.score, event.payload.scale)


def detect_from(
    surveys: Sequence[SurveyResponded],
    by_id: Mapping[str, Event],
    flags: Sequence[Flag],
    as_of: datetime,
    rules: RuleSettings,
) -> list[FlagDraft]:
    """`detect` given the journey's low surveys in journey order and its events by id (at
    least those of the flags): no walk over the journey."""
    base = [flag for flag in flags if flag.rule != RULE.name]
    times = Preceding.of(base, rules.low_score_window)
    drafts: list[FlagDraft] = []
    for survey in surveys:
        draft, _ = read_survey(survey, base, times, by_id, as_of, rules)
        if draft is not None:
            drafts.append(draft)
    return drafts


def read_survey(
    survey: SurveyResponded,
    flags: Sequence[Flag],
    times: Preceding,
    by_id: Mapping[str, Event],
    as_of: datetime,
    rules: RuleSettings,
) -> tuple[FlagDraft | None, tuple[str, ...]]:
    """The flag of one low survey, as `detect` finds it, and the ids of the flags it names
    (`flags`: the base flags in the order they opened; `times`: theirs). Bounded: the count
    is bisections, the names come from at most `SCAN` flags."""
    at, window = survey.occurred_at, rules.low_score_window
    count = times.count(at, as_of)
    if count <= 0:
        return None, ()
    named = named_flags(flags, at, window, as_of)
    draft = _draft(survey, named, count, by_id, window)
    return draft, tuple(flag.flag_id for flag in named)


RULE = DerivedRule("LOW_SCORE_AFTER_FLAGS", Severity.MEDIUM, detect)
RULES = (RULE,)
