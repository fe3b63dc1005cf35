"""`LOW_SCORE_AFTER_FLAGS` evaluated incrementally: each low survey's flag kept, and found again
only for the surveys whose flag a new, changed or gone flag (or the moment read at) can change.

A survey counts the flags open at some moment of the window before it (`scores._overlaps`) from
sorted times kept here (`scores.Preceding`, updated from the flags that moved, never rebuilt),
and names at most `scores.MAX_NAMED` of them from at most `scores.SCAN`: each read is bounded.
A survey is read again only when its flag can change:
- a new or gone flag: the surveys it precedes (after its opening, up to a window past its end;
  every later one while it is open);
- a changed flag (same opening and rule): the surveys where the change of its end changes
  whether it precedes them, and the surveys that name it;
- the moment read at: the surveys where it changes whether open flags precede them (those a
  window or more after it; none while the moment is past every survey).
So a hot customer's stream of events, in order, reads again only the surveys that name a flag
that moved, not every survey per event.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from projections.flags import Flag
from projections.rules import scores
from projections.settings import RuleSettings
from schemas.events import Event, SurveyResponded


class LowScores:
    """The derived rule's flags of one journey, kept between evaluations."""

    def __init__(self) -> None:
        self.surveys: list[SurveyResponded] = []
        """The journey's low surveys in journey order."""
        self.found: dict[str, Flag | None] = {}
        """Each survey read so far, and its flag, in journey order."""
        self.unread: dict[str, SurveyResponded] = {}
        """The surveys to read at the next evaluation."""
        self.by_id: dict[str, SurveyResponded] = {}
        """The low surveys by id."""
        self.times: scores.Preceding | None = None
        """The base flags' times (made at the first update, with the window)."""
        self.held: dict[str, Flag] = {}
        """The version of each base flag whose times `times` holds, by id."""
        self.names: dict[str, tuple[str, ...]] = {}
        """The flags each survey's flag names, by survey id."""
        self.naming: dict[str, set[str]] = {}
        """The surveys naming each flag, by flag id (the reverse of `names`)."""
        self.as_of: datetime | None = None
        """The moment of the last update."""

    def add(self, survey: SurveyResponded) -> None:
        """A low survey stepped in journey order."""
        self.surveys.append(survey)
        self.found[survey.event_id] = None
        self.by_id[survey.event_id] = survey
        self.unread[survey.event_id] = survey

    def update(
        self,
        flags: Sequence[Flag],
        moved: Iterable[Flag],
        by_id: Mapping[str, Event],
        as_of: datetime,
        rules: RuleSettings,
    ) -> list[str]:
        """Read again the surveys whose flag the flags that moved (or the moment) can change,
        and the new ones; the ids of the surveys read (their flags are in `found`).

        `flags`: every base flag, built, in the order they opened; `moved`: each version (old
        before new) of the base flags new, changed or gone since the last call.
        """
        window = rules.low_score_window
        if self.times is None or self.times.window != window:  # the first time: all of it
            base = [flag for flag in flags if flag.rule != scores.RULE.name]
            self.times = scores.Preceding.of(base, window)
            self.held = {flag.flag_id: flag for flag in base}
            self.unread = dict(self.by_id)
            moved = ()  # `flags` holds their new versions already
        times, dirty = self.times, self.unread
        if self.as_of is not None and as_of != self.as_of:
            dirty.update(self._between(min(as_of, self.as_of), max(as_of, self.as_of), window))
        versions: dict[str, list[Flag | None]] = {}
        for flag in moved:
            if flag.rule == scores.RULE.name:
                continue
            key = flag.flag_id
            pair = versions.setdefault(key, [None, None])
            if self.held.get(key) is flag:  # the version held: the old one
                times.remove(flag)
                del self.held[key]
                pair[0] = flag
            else:
                stale = self.held.get(key)
                if stale is not None:  # a version held but not handed as the old one
                    times.remove(stale)
                    pair[0] = stale
                times.add(flag)
                self.held[key] = flag
                pair[1] = flag
        for key, (old, new) in versions.items():
            dirty.update(self._reached(old, new, as_of, window))
            dirty.update((s, self.by_id[s]) for s in self.naming.get(key, ()))
        for survey_id, survey in dirty.items():
            draft, named = scores.read_survey(survey, flags, times, by_id, as_of, rules)
            self.found[survey_id] = None if draft is None else draft.build()
            self._name(survey_id, named)
        self.unread = {}
        self.as_of = as_of
        return list(dirty)

    def _name(self, survey_id: str, named: tuple[str, ...]) -> None:
        for key in self.names.pop(survey_id, ()):
            surveys = self.naming[key]
            surveys.discard(survey_id)
            if not surveys:
                del self.naming[key]
        if named:
            self.names[survey_id] = named
            for key in named:
                self.naming.setdefault(key, set()).add(survey_id)

    def _first_past(self, end: datetime, window: timedelta) -> int:
        """The index of the first survey a window or more after `end` (a difference, so that
        no window overflows a datetime)."""
        return bisect.bisect_left(self.surveys, window, key=lambda s: s.occurred_at - end)

    def _between(
        self, low: datetime, high: datetime, window: timedelta
    ) -> Iterable[tuple[str, SurveyResponded]]:
        """The surveys for which an end moving between `low` and `high` changes whether a flag
        precedes them: a window or more after `low`, less than a window after `high`."""
        for index in range(self._first_past(low, window), self._first_past(high, window)):
            survey = self.surveys[index]
            yield survey.event_id, survey

    def _reached(
        self, old: Flag | None, new: Flag | None, as_of: datetime, window: timedelta
    ) -> Iterable[tuple[str, SurveyResponded]]:
        """The surveys whose count a flag's move can change (those naming it are added by
        the caller): where either version precedes them, or, for a change that keeps the
        opening and rule, where the move of its end changes whether it precedes them."""
        if (
            old is not None
            and new is not None
            and (old.opened_at, old.rule)
            == (
                new.opened_at,
                new.rule,
            )
        ):
            ends = sorted(_end(f, as_of) for f in (old, new))
            after = bisect.bisect_right(self.surveys, new.opened_at, key=lambda s: s.occurred_at)
            for index in range(
                max(after, self._first_past(ends[0], window)), self._first_past(ends[1], window)
            ):
                survey = self.surveys[index]
                yield survey.event_id, survey
            return
        for flag in (old, new):
            if flag is None:
                continue
            after = bisect.bisect_right(self.surveys, flag.opened_at, key=lambda s: s.occurred_at)
            for index in range(after, self._first_past(_end(flag, as_of), window)):
                survey = self.surveys[index]
                yield survey.event_id, survey


def _end(flag: Flag, as_of: datetime) -> datetime:
    """When a flag stops preceding surveys' windows: its resolution, or the moment read at."""
    return flag.resolved_at if flag.resolved_at is not None else as_of
