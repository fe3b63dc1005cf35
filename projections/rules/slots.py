"""DATE_MISMATCH: the slot a customer was told or asked for is not the slot that was booked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from projections.formatting import format_slot, same_slot
from projections.rules.readers import SlotValue, requested_slot
from projections.rules.rule import Rule, Untimed, event_types
from schemas.events import (
    BookingCancelled,
    BookingChanged,
    BookingCreated,
    ChatMessage,
    Event,
    FormFailed,
    FormSubmitted,
    MessageSent,
)

if TYPE_CHECKING:
    from projections.settings import RuleSettings


@dataclass(slots=True)
class _Booking:
    booking_id: str
    slot: SlotValue
    event: Event
    active: bool = True


@dataclass(slots=True)
class _Mismatch:
    draft: FlagDraft
    booking_ids: frozenset[str]
    expected: SlotValue  # what the customer believes: the slot they asked for or were told


def _first_known(events: Sequence[Event]) -> dict[str, _Booking]:
    first_known: dict[str, _Booking] = {}
    for event in events:
        if isinstance(event, BookingCreated | BookingChanged):
            booking_id = event.payload.booking_id
            first_known.setdefault(booking_id, _Booking(booking_id, event.payload.slot, event))
    return first_known


class _Walk(Untimed):
    """One pass over the timeline, keeping bookings and the open mismatches.

    A message may name a booking the journey shows only later: the whole walk knows every
    booking's first slot beforehand (`first_known`). A walk stepped event by event learns them
    as it goes, and marks itself `stale` when a booking arrives that an earlier message named
    without knowing it (the caller walks the journey again).
    """

    def __init__(self, rules: RuleSettings, ahead: Sequence[Event] = ()) -> None:
        del rules  # no thresholds
        self.first_known: dict[str, _Booking] = _first_known(ahead)
        self.unknown: set[str] = set()
        """Bookings messages named before any event of theirs."""
        self.stale = False
        self.bookings: dict[str, _Booking] = {}
        self.open: list[_Mismatch] = []
        self.found: list[FlagDraft] = []
        """Every mismatch, in the order they opened."""
        self.last_request: tuple[SlotValue, Event] | None = None

    def step(self, event: Event) -> None:
        wanted = requested_slot(event)
        if wanted is not None:
            self.last_request = (wanted, event)
        if isinstance(event, BookingCreated | BookingChanged):
            booking_id = event.payload.booking_id
            if booking_id in self.unknown:
                self.stale = True
            self.first_known.setdefault(booking_id, _Booking(booking_id, event.payload.slot, event))
            self.on_booking(event)
        elif isinstance(event, BookingCancelled):
            if (booking := self.bookings.get(event.payload.booking_id)) is not None:
                booking.active = False
        elif isinstance(event, MessageSent) and event.payload.stated_slot is not None:
            self.on_message(event, event.payload.stated_slot)

    def resolve(self, mismatch: _Mismatch, event: Event, how: str) -> None:
        mismatch.draft.resolve(event.occurred_at, how, event)
        self.open.remove(mismatch)

    def open_for(self, booking_ids: set[str] | frozenset[str]) -> list[_Mismatch]:
        return [m for m in self.open if m.booking_ids & booking_ids]

    def on_booking(self, event: BookingCreated | BookingChanged) -> None:
        booking_id, slot = event.payload.booking_id, event.payload.slot
        is_new = booking_id not in self.bookings
        self.bookings[booking_id] = _Booking(booking_id, slot, event)
        for mismatch in self.open_for({booking_id}):
            if same_slot(slot, mismatch.expected):
                how = (
                    f"{event.source.system} moved the booking to {format_slot(slot)}, "
                    "the slot the customer expects"
                )
                self.resolve(mismatch, event, how)
            else:
                mismatch.draft.involve(event)
        request = self.last_request
        if is_new and isinstance(event, BookingCreated) and request is not None:
            wanted, asked = request
            if not same_slot(wanted, slot):
                message = (
                    f"customer asked {asked.source.system} for {format_slot(wanted)}; "
                    f"{event.source.system} booked {format_slot(slot)} (booking {booking_id})"
                )
                draft = RULE.draft(
                    event.event_id,
                    message,
                    event.occurred_at,
                    [asked, event],
                )
                self.open.append(_Mismatch(draft, frozenset({booking_id}), wanted))
                self.found.append(draft)

    def on_message(self, event: MessageSent, stated: SlotValue) -> None:
        named = event.payload.booking_id
        if named is not None:
            booking = self.bookings.get(named) or self.first_known.get(named)
            targets = [booking] if booking is not None else []
            if booking is None:
                self.unknown.add(named)
        else:
            targets = [b for b in self.bookings.values() if b.active]
        if not targets:
            return
        target_ids = {b.booking_id for b in targets}
        matching = {b.booking_id for b in targets if same_slot(stated, b.slot)}
        for mismatch in self.open_for(target_ids):
            if mismatch.booking_ids & matching:
                how = f"{event.source.system} told the customer {format_slot(stated)}, the booked slot"
                self.resolve(mismatch, event, how)
            elif not matching:
                mismatch.expected = stated
                mismatch.draft.involve(event)
        if matching or self.open_for(target_ids):
            return
        booked = "; ".join(
            f"{b.event.source.system}: {format_slot(b.slot)} (booking {b.booking_id})"
            for b in targets
        )
        message = f"{booked}; {event.source.system} told the customer: {format_slot(stated)}"
        draft = RULE.draft(
            event.event_id,
            message,
            event.occurred_at,
            [*(b.event for b in targets), event],
        )
        self.open.append(_Mismatch(draft, frozenset(target_ids), stated))
        self.found.append(draft)


# requests (forms, chat lines), bookings and messages: no other event moves the walk
_TYPES = event_types(
    FormSubmitted,
    FormFailed,
    ChatMessage,
    BookingCreated,
    BookingChanged,
    BookingCancelled,
    MessageSent,
)
RULE = Rule.walking("DATE_MISMATCH", Severity.HIGH, _Walk, types=_TYPES)
RULES = (RULE,)
