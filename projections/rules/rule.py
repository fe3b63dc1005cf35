"""What a rule is: a name, a severity, a detector and, for a time-based rule, its next deadline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from schemas.events import Event

if TYPE_CHECKING:  # settings derive the rule names from the registry: no import at run time
    from projections.settings import RuleSettings

Detector = Callable[[Sequence[Event], datetime, "RuleSettings"], list[FlagDraft]]
"""A rule's walk: the journey's events in order, the moment of evaluation, the thresholds."""

Deadline = Callable[[Sequence[Event], datetime, "RuleSettings"], datetime | None]
"""When a time-based rule could next open a flag without any new event, if ever."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One contradiction rule, declared once in its module."""

    name: str
    severity: Severity
    detect: Detector
    deadline: Deadline | None = None

    def draft(
        self, anchor: str, message: str, opened_at: datetime, events: Iterable[Event]
    ) -> FlagDraft:
        """A flag of this rule under construction (see `FlagDraft`)."""
        return FlagDraft(self.name, self.severity, anchor, message, opened_at, list(events))
