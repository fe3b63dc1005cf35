"""`LOW_SCORE_AFTER_FLAGS` evaluated incrementally: each low survey's flag kept, and found again
only for the surveys that a new, changed or gone flag can reach.

A survey's flag reads the flags that opened in the window before it (`scores.in_window`). So
when a flag is new, changed or gone, only the surveys after its opening and within a window of
it are read again; a new survey is read once. Both are bounded by the window, not by the
journey: reading one survey bisects the flags (in the order they opened) and looks at those
opened in its window (the events of at most `scores.MAX_NAMED` of them); a flag that moved
reaches the surveys answered within a window of its opening. Neither depends on the moment
read at, so nothing is read again because the moment moved.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence

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
        rules: RuleSettings,
    ) -> list[str]:
        """Read again the surveys the flags that moved can reach, and the new ones; the ids of
        the surveys read (their flags are in `found`).

        `flags`: every base flag, built, in the order they opened; `moved`: each version (old
        and new) of the base flags new, changed or gone since the last call.
        """
        dirty = self.unread
        for flag in moved:  # the surveys either version reaches
            dirty.update(self._reached(flag, rules))
        for survey_id, survey in dirty.items():
            draft = scores.survey_flag(survey, flags, by_id, rules)
            self.found[survey_id] = None if draft is None else draft.build()
        self.unread = {}
        return list(dirty)

    def _reached(self, flag: Flag, rules: RuleSettings) -> Iterable[tuple[str, SurveyResponded]]:
        """The surveys whose flag may read this one: answered after its opening and within a
        window of it."""
        window = rules.low_score_window
        start = bisect.bisect_right(self.surveys, flag.opened_at, key=lambda s: s.occurred_at)
        for index in range(start, len(self.surveys)):  # no copy of the later surveys
            survey = self.surveys[index]
            if survey.occurred_at - flag.opened_at > window:
                break
            yield survey.event_id, survey
