"""UNRECOGNISED_ENROLMENT and RECALL_NOT_VISIBLE: one system wrote it, another cannot find it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from projections.formatting import format_day, format_slot
from projections.rules.readers import subject_key
from projections.rules.rule import Rule, Untimed, event_types
from schemas.events import (
    EnrolmentConfirmed,
    EnrolmentLookup,
    Event,
    RecallLookup,
    RecallNotified,
)

if TYPE_CHECKING:
    from projections.settings import RuleSettings


def _in_effect(confirmed: EnrolmentConfirmed, at: datetime) -> bool:
    start = confirmed.payload.effective_from
    if start is None:
        return True
    if isinstance(start, datetime):
        return at >= start
    return at.date() >= start


class _Walk(Untimed):
    """Open a flag when a lookup fails after the fact was written; resolve on a found lookup."""

    stale = False

    def __init__(
        self,
        rule: Rule,
        written: Callable[[Event], str | None],
        looked_up: Callable[[Event], tuple[str, bool] | None],
        describe: Callable[[Event, Event], str],
        in_effect: Callable[[Event, datetime], bool] = lambda _write, _at: True,
    ) -> None:
        self.rule, self.written, self.looked_up = rule, written, looked_up
        self.describe, self.in_effect = describe, in_effect
        self.writes: dict[str, list[Event]] = {}
        self.open: dict[str, FlagDraft] = {}
        self.found: list[FlagDraft] = []

    def step(self, event: Event) -> None:
        if (key := self.written(event)) is not None:
            self.writes.setdefault(key, []).append(event)
            return
        if (lookup := self.looked_up(event)) is None:
            return
        key, found = lookup
        if found:
            if (draft := self.open.pop(key, None)) is not None:
                how = f"{event.source.system} found it on {format_day(event.occurred_at)}"
                draft.resolve(event.occurred_at, how, event)
        elif key in self.open:
            self.open[key].involve(event)
        else:
            at = event.occurred_at
            writes = self.writes.get(key, ())
            cause = next((w for w in writes if self.in_effect(w, at)), None)
            if cause is not None:
                message = self.describe(cause, event)
                draft = self.rule.draft(event.event_id, message, at, [cause, event])
                self.open[key] = draft
                self.found.append(draft)


def _enrolments(rules: RuleSettings, ahead: Sequence[Event] = ()) -> _Walk:
    """A programme lookup finds nothing after an enrolment that is in effect."""
    del rules, ahead

    def written(event: Event) -> str | None:
        if isinstance(event, EnrolmentConfirmed):
            return subject_key(event.payload.programme)
        return None

    def in_effect(write: Event, at: datetime) -> bool:
        return isinstance(write, EnrolmentConfirmed) and _in_effect(write, at)

    def looked_up(event: Event) -> tuple[str, bool] | None:
        if isinstance(event, EnrolmentLookup):
            return subject_key(event.payload.programme), event.payload.found
        return None

    def describe(cause: Event, lookup: Event) -> str:
        assert isinstance(cause, EnrolmentConfirmed)
        start: date | datetime | None = cause.payload.effective_from
        effective = f", effective {format_slot(start)}" if start is not None else ""
        return (
            f"{cause.source.system} enrolled the customer in {cause.payload.programme} on "
            f"{format_day(cause.occurred_at)}{effective}; {lookup.source.system} could not "
            f"find them on {format_day(lookup.occurred_at)}"
        )

    return _Walk(UNRECOGNISED_ENROLMENT, written, looked_up, describe, in_effect)


def _recalls(rules: RuleSettings, ahead: Sequence[Event] = ()) -> _Walk:
    """A recall lookup finds nothing after head office recorded the recall."""
    del rules, ahead

    def written(event: Event) -> str | None:
        if isinstance(event, RecallNotified):
            return subject_key(event.payload.recall_code)
        return None

    def looked_up(event: Event) -> tuple[str, bool] | None:
        if isinstance(event, RecallLookup):
            return subject_key(event.payload.recall_code), event.payload.found
        return None

    def describe(cause: Event, lookup: Event) -> str:
        assert isinstance(cause, RecallNotified)
        return (
            f"{cause.source.system} recorded recall {cause.payload.recall_code} on "
            f"{format_day(cause.occurred_at)}; {lookup.source.system} could not see it on "
            f"{format_day(lookup.occurred_at)}"
        )

    return _Walk(RECALL_NOT_VISIBLE, written, looked_up, describe)


UNRECOGNISED_ENROLMENT = Rule.walking(
    "UNRECOGNISED_ENROLMENT",
    Severity.HIGH,
    _enrolments,
    types=event_types(EnrolmentConfirmed, EnrolmentLookup),
)
RECALL_NOT_VISIBLE = Rule.walking(
    "RECALL_NOT_VISIBLE",
    Severity.HIGH,
    _recalls,
    types=event_types(RecallNotified, RecallLookup),
)
RULES = (UNRECOGNISED_ENROLMENT, RECALL_NOT_VISIBLE)
