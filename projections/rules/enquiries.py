"""UNANSWERED_ENQUIRY: the customer reached out and nobody answered in time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from projections.formatting import format_duration, format_moment
from projections.moments import later
from projections.rules.rule import Rule, event_types, walk
from schemas.events import (
    BookingChanged,
    BookingCreated,
    CallLogged,
    ChatMessage,
    EnquiryResponded,
    Event,
    FormFailed,
    FormSubmitted,
    MessageReceived,
    MessageSent,
)

if TYPE_CHECKING:
    from projections.settings import RuleSettings


def is_enquiry(event: Event) -> bool:
    """The customer asked something of the business."""
    if isinstance(event, ChatMessage):
        return event.payload.speaker == "customer"
    return isinstance(event, FormSubmitted | FormFailed | MessageReceived)


def is_response(event: Event) -> bool:
    """The business answered or acted for the customer."""
    if isinstance(event, ChatMessage):
        return event.payload.speaker == "agent"
    if isinstance(event, CallLogged):
        return event.payload.direction == "outbound"
    return isinstance(event, EnquiryResponded | BookingCreated | BookingChanged | MessageSent)


def _describe(enquiry: Event) -> str:
    what = {
        "form.submitted": "a form",
        "form.failed": "a form that failed to go through",
        "message.received": "a message",
        "chat.message": "a chat message",
    }[enquiry.type]
    return f"customer sent {enquiry.source.system} {what} on {format_moment(enquiry.occurred_at)}"


def _unanswered(run: list[Event], rules: RuleSettings) -> FlagDraft:
    first = run[0]
    window = rules.enquiry_response_window
    message = f"{_describe(first)}; no response within {format_duration(window)}"
    if len(run) > 1:
        message += f" ({len(run)} enquiries waiting)"
    return RULE.draft(first.event_id, message, later(first.occurred_at, window), run)


class _Walk:
    """Enquiries with no response within the window; flagged once the window has passed."""

    stale = False

    def __init__(self, rules: RuleSettings, ahead: Sequence[Event] = ()) -> None:
        del ahead  # looks only back
        self.rules = rules
        self.run: list[Event] = []
        """The enquiries waiting for a response, oldest first."""
        self.found: list[FlagDraft] = []

    def step(self, event: Event) -> None:
        window = self.rules.enquiry_response_window
        if is_response(event):
            run = self.run
            if run and event.occurred_at - run[0].occurred_at > window:
                draft = _unanswered(run, self.rules)
                late = format_duration(event.occurred_at - run[0].occurred_at)
                draft.resolve(
                    event.occurred_at, f"{event.source.system} responded after {late}", event
                )
                self.found.append(draft)
            self.run = []
        elif is_enquiry(event):
            self.run.append(event)

    def drafts(self, as_of: datetime) -> Sequence[FlagDraft]:
        due = self.due(as_of)
        return [*self.found, *due] if due else self.found

    def due(self, as_of: datetime) -> Sequence[FlagDraft]:
        """The waiting enquiries' flag, once the window has passed with no response."""
        run = self.run
        if run and as_of - run[0].occurred_at > self.rules.enquiry_response_window:
            return [_unanswered(run, self.rules)]
        return ()

    def deadline(self, as_of: datetime) -> datetime | None:
        """When the waiting enquiry will be flagged if nobody answers, if that is after `as_of`."""
        if not self.run:
            return None
        deadline = later(self.run[0].occurred_at, self.rules.enquiry_response_window)
        return deadline if deadline >= as_of else None


# enquiries and responses (`is_enquiry`, `is_response`): no other event moves the walk
_TYPES = event_types(
    ChatMessage,
    FormSubmitted,
    FormFailed,
    MessageReceived,
    CallLogged,
    EnquiryResponded,
    BookingCreated,
    BookingChanged,
    MessageSent,
)
RULE = Rule.walking("UNANSWERED_ENQUIRY", Severity.MEDIUM, _Walk, timed=True, types=_TYPES)
RULES = (RULE,)


def detect(events: Sequence[Event], as_of: datetime, rules: RuleSettings) -> list[FlagDraft]:
    """Enquiries with no response within the window (the rule's whole walk)."""
    return RULE.detect(events, as_of, rules)


def pending_deadline(
    events: Sequence[Event], as_of: datetime, rules: RuleSettings
) -> datetime | None:
    """When the waiting enquiry will be flagged if nobody answers, if that is after `as_of`."""
    return walk(_Walk, events, rules, _TYPES).deadline(as_of)
