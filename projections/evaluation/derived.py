"""`LOW_SCORE_AFTER_FLAGS` evaluated incrementally: each low survey's flag kept, and found again
only for the surveys that a new or changed flag can reach.

A survey's flag reads the flags that opened before it and were open at some moment of the
window before it. So when a flag is new, changed or gone, only the surveys after its opening
and up to a window past its resolution (all later ones while it is open) are read again; a new
survey is read once. Reading one survey looks at the flags that opened before it.
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
        self.as_of: datetime | None = None

    def add(self, survey: SurveyResponded) -> None:
        """A low survey stepped in journey order."""
        self.surveys.append(survey)
        self.found[survey.event_id] = None
        self.unread[survey.event_id] = survey

    def update(
        self,
        flags: Sequence[Flag],
        moved: Iterable[Flag],
        by_id: Mapping[str, Event],
        as_of: datetime,
        rules: RuleSettings,
    ) -> list[str]:
        """Read again the surveys the flags that moved can reach, and the new ones; the ids of
        the surveys read (their flags are in `found`).

        `flags`: every base flag, built, in the order they opened; `moved`: each version (old
        and new) of the base flags new, changed or gone since the last call. Every survey is
        read again the first time, when the moment goes back, or while surveys lie ahead of it.
        """
        window = rules.low_score_window
        last = self.surveys[-1].occurred_at if self.surveys else None
        if (
            window <= timedelta(0)
            or self.as_of is None
            or as_of < self.as_of
            or (last is not None and last > as_of)
        ):
            self.unread = {s.event_id: s for s in self.surveys}
        dirty = self.unread
        for flag in moved:  # the surveys either version reaches
            dirty.update(self._reached(flag, window, as_of))
        for survey_id, survey in dirty.items():
            draft = scores.survey_flag(survey, flags, by_id, as_of, rules) if flags else None
            self.found[survey_id] = None if draft is None else draft.build()
        self.unread = {}
        self.as_of = as_of
        return list(dirty)

    def _reached(
        self, flag: Flag, window: timedelta, as_of: datetime
    ) -> Iterable[tuple[str, SurveyResponded]]:
        """The surveys whose flag may read this one: after its opening, within a window of
        its end (as of now while it is open)."""
        start = bisect.bisect_right(self.surveys, flag.opened_at, key=lambda s: s.occurred_at)
        end = flag.resolved_at if flag.resolved_at is not None else as_of
        for survey in self.surveys[start:]:
            if survey.occurred_at - end >= window:
                break
            yield survey.event_id, survey
