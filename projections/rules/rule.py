"""What a rule is: a name, a severity, a detector and, for a time-based rule, its next deadline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import Flag, FlagDraft, Severity
from schemas.events import Event

if TYPE_CHECKING:  # settings derive the rule names from the registry: no import at run time
    from projections.settings import RuleSettings

Detector = Callable[[Sequence[Event], datetime, "RuleSettings"], list[FlagDraft]]
"""A rule's walk: the journey's events in order, the moment of evaluation, the thresholds."""

Deadline = Callable[[Sequence[Event], datetime, "RuleSettings"], datetime | None]
"""When a time-based rule could next open a flag without any new event, if ever."""

FlagDetector = Callable[
    [Sequence[Event], Sequence[Flag], datetime, "RuleSettings"], list[FlagDraft]
]
"""A derived rule's walk: the events, the base rules' flags in the order they opened, the
moment of evaluation, the thresholds."""


@dataclass(frozen=True, slots=True)
class _Declared:
    name: str
    severity: Severity

    def draft(
        self, anchor: str, message: str, opened_at: datetime, events: Iterable[Event]
    ) -> FlagDraft:
        """A flag of this rule under construction (see `FlagDraft`)."""
        return FlagDraft(self.name, self.severity, anchor, message, opened_at, list(events))


@dataclass(frozen=True, slots=True)
class Rule(_Declared):
    """One contradiction rule, declared once in its module."""

    detect: Detector
    deadline: Deadline | None = None


@dataclass(frozen=True, slots=True)
class DerivedRule(_Declared):
    """A rule evaluated after the base rules: it reads their flags as well as the events.

    It has no deadline of its own: it reads only flags that had opened before the event it
    anchors on, so whatever it finds is found when that event is evaluated.
    """

    detect: FlagDetector
