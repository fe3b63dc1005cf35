"""What each source system knew at a moment: the identifiers and key facts of its own events.

A system knows what its own events carry, nothing else: the chat vendor heard the requested
slot, the booking system holds the booked slot, the SMS gateway knows what it told the
customer. Setting the systems side by side, next to the ledger as a whole, shows who could
have seen a contradiction: "the chat vendor had the date; the SMS operator did not".

Facts are read from structured payload fields only (never from free text), through the same
readers the rules use, so the report and the rules agree on what an event says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from projections.formatting import format_day, format_slot
from projections.identifiers import customer_ids
from projections.journey import Journey, event_order
from projections.rules.readers import money, requested_slot, subject_key
from projections.settings import FoldSettings
from projections.view import IdentifierSeen, identifiers_of
from schemas.events import (
    HANDLING_TYPES,
    IDENTIFIER_KINDS,
    BookingCancelled,
    BookingChanged,
    BookingCreated,
    EnrolmentConfirmed,
    EnrolmentLookup,
    Event,
    FormFailed,
    MessageSent,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentVoided,
    RecallLookup,
    RecallNotified,
)

Topic = Literal["slot", "order", "payment", "enrolment", "recall"]
"""What a fact is about."""

TOPICS: tuple[Topic, ...] = ("slot", "order", "payment", "enrolment", "recall")
"""Topics in the order reports show them."""

REQUESTED, BOOKED, STATED = "requested", "booked", "told the customer"
"""The three aspects of a slot: asked for, held by a booking, stated in a message."""

_NO_BOOKING = "any booking"


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing a system held at the moment: the latest word of its own events on a subject."""

    topic: Topic
    subject_key: str
    """Compares subjects across systems (programme names and recall codes loosely)."""
    subject: str
    """The subject as this system wrote it: `booking BK-22817`, `order NW-100481`."""
    aspect: str
    """Which side of the subject: requested, booked, told the customer, state, lookup…"""
    state: str
    """The state in a word: booked, changed, cancelled, placed, authorised, found, not found…"""
    value: str | None
    """A machine-readable value, when there is one: an ISO slot, an amount."""
    display: str
    """How a person reads it: `Fri 6 Nov 10:30`, `authorised 1,299.00 GBP`."""
    at: datetime
    event_id: str
    system: str

    @property
    def key(self) -> tuple[str, str, str]:
        """The row this fact fills in a who-knew-what table."""
        return (self.topic, self.subject_key, self.aspect)


@dataclass(frozen=True, slots=True)
class Holding:
    """What one system (or the ledger as a whole, `system` None) held at the moment."""

    system: str | None
    identifiers: tuple[IdentifierSeen, ...]
    names: tuple[str, ...]
    facts: tuple[Fact, ...]
    event_ids: tuple[str, ...]

    def fact(self, key: tuple[str, str, str]) -> Fact | None:
        """The fact this holding has for a row, if any."""
        for fact in self.facts:
            if fact.key == key:
                return fact
        return None


@dataclass(frozen=True, slots=True)
class FactRow:
    """One row of the who-knew-what table: a subject's aspect and each system's fact."""

    topic: Topic
    subject: str
    aspect: str
    by_system: tuple[tuple[str, Fact | None], ...]
    ledger: Fact


@dataclass(frozen=True, slots=True)
class Knowledge:
    """What each system of a journey knew at `as_of`, and what the ledger knew as a whole."""

    as_of: datetime
    systems: tuple[Holding, ...]
    ledger: Holding

    @property
    def system_names(self) -> tuple[str, ...]:
        """The source systems, in the order they first appear in the journey."""
        return tuple(h.system for h in self.systems if h.system is not None)

    def holding(self, system: str) -> Holding | None:
        """One system's holding, if the journey has events from it."""
        return next((h for h in self.systems if h.system == system), None)

    def rows(self) -> tuple[FactRow, ...]:
        """The who-knew-what table: every fact the ledger held, with each system's word on it."""
        return tuple(
            FactRow(
                topic=fact.topic,
                subject=fact.subject,
                aspect=fact.aspect,
                by_system=tuple((h.system or "", h.fact(fact.key)) for h in self.systems),
                ledger=fact,
            )
            for fact in self.ledger.facts
        )


# --- reading facts from events ----------------------------------------------------------------


def _slot_iso(slot: datetime | date) -> str:
    return slot.isoformat()


def _booking_fact(
    event: Event, booking_id: str, state: str, value: str | None, display: str
) -> Fact:
    """What a booking system says about a booking's slot."""
    return _fact(
        event,
        "slot",
        f"booking:{booking_id}",
        f"booking {booking_id}",
        BOOKED,
        state=state,
        value=value,
        display=display,
    )


def _fact(event: Event, topic: Topic, key: str, subject: str, aspect: str, **rest: Any) -> Fact:
    return Fact(
        topic=topic,
        subject_key=key,
        subject=subject,
        aspect=aspect,
        at=event.occurred_at,
        event_id=event.event_id,
        system=event.source.system,
        **rest,
    )


def _slot_facts(event: Event) -> list[Fact]:
    wanted = requested_slot(event)
    if wanted is not None:
        # One subject for every request: the rules compare a booking with the last one made.
        state = "requested (form failed)" if isinstance(event, FormFailed) else "requested"
        shown = format_slot(wanted) + (" (form failed)" if isinstance(event, FormFailed) else "")
        return [
            _fact(
                event,
                "slot",
                "request",
                "customer's request",
                REQUESTED,
                state=state,
                value=_slot_iso(wanted),
                display=shown,
            )
        ]
    if isinstance(event, BookingCreated | BookingChanged):
        state = "booked" if isinstance(event, BookingCreated) else "changed"
        slot = event.payload.slot
        shown = format_slot(slot) if state == "booked" else f"moved to {format_slot(slot)}"
        return [_booking_fact(event, event.payload.booking_id, state, _slot_iso(slot), shown)]
    if isinstance(event, BookingCancelled):
        return [_booking_fact(event, event.payload.booking_id, "cancelled", None, "cancelled")]
    if isinstance(event, MessageSent) and event.payload.stated_slot is not None:
        named = event.payload.booking_id
        # A message naming no booking is compared with every active booking by the rules.
        key = f"booking:{named}" if named else "booking:"
        subject = f"booking {named}" if named else _NO_BOOKING
        stated = event.payload.stated_slot
        return [
            _fact(
                event,
                "slot",
                key,
                subject,
                STATED,
                state=f"told by {event.payload.medium}",
                value=_slot_iso(stated),
                display=f"{format_slot(stated)} (by {event.payload.medium})",
            )
        ]
    return []


_ORDER_STATES = {
    "order.placed": "placed",
    "order.confirmed": "confirmed",
    "order.cancelled": "cancelled",
}


def _order_facts(event: Event) -> list[Fact]:
    if not isinstance(event, OrderPlaced | OrderConfirmed | OrderCancelled):
        return []
    order_id = event.payload.order_id
    state = _ORDER_STATES[event.type]
    value: str | None = None
    shown = state
    if isinstance(event, OrderPlaced):
        amount = money(event.payload.amount, event.payload.currency)
        details = [", ".join(event.payload.items)] if event.payload.items else []
        details += [amount] if amount else []
        value = amount
        shown += f" ({'; '.join(details)})" if details else ""
    elif event.payload.reason:
        shown += f" ({event.payload.reason})"
    return [
        _fact(
            event,
            "order",
            f"order:{order_id}",
            f"order {order_id}",
            "state",
            state=state,
            value=value,
            display=shown,
        )
    ]


_PAYMENTS = PaymentAuthorised | PaymentCaptured | PaymentVoided | PaymentRefunded | PaymentDeclined


def _payment_facts(event: Event) -> list[Fact]:
    if not isinstance(event, _PAYMENTS):
        return []
    payment = event.payload
    state = event.type.split(".")[1]
    amount = money(payment.amount, payment.currency)
    order = f" for order {payment.order_id}" if payment.order_id else ""
    return [
        _fact(
            event,
            "payment",
            f"payment:{payment.payment_id}",
            f"payment {payment.payment_id}",
            "state",
            state=state,
            value=amount,
            display=f"{state}{' ' + amount if amount else ''}{order}",
        )
    ]


def _lookup_facts(event: Event) -> list[Fact]:
    if isinstance(event, EnrolmentConfirmed):
        programme = event.payload.programme
        start = event.payload.effective_from
        effective = f", effective {format_slot(start)}" if start is not None else ""
        return [
            _fact(
                event,
                "enrolment",
                subject_key(programme),
                programme,
                "enrolment",
                state="enrolled",
                value=_slot_iso(start) if start is not None else None,
                display=f"enrolled on {format_day(event.occurred_at)}{effective}",
            )
        ]
    if isinstance(event, RecallNotified):
        code = event.payload.recall_code
        return [
            _fact(
                event,
                "recall",
                subject_key(code),
                f"recall {code}",
                "recall",
                state="notified",
                value=None,
                display=f"recorded on {format_day(event.occurred_at)}",
            )
        ]
    if isinstance(event, EnrolmentLookup | RecallLookup):
        topic: Topic = "enrolment" if isinstance(event, EnrolmentLookup) else "recall"
        name = (
            event.payload.programme
            if isinstance(event, EnrolmentLookup)
            else f"recall {event.payload.recall_code}"
        )
        written = (
            event.payload.programme
            if isinstance(event, EnrolmentLookup)
            else event.payload.recall_code
        )
        state = "found" if event.payload.found else "not found"
        return [
            _fact(
                event,
                topic,
                subject_key(written),
                name,
                "lookup",
                state=state,
                value=None,
                display=f"looked up on {format_day(event.occurred_at)}: {state}",
            )
        ]
    return []


def facts_of(event: Event) -> list[Fact]:
    """The key facts one event carries (slots, orders, payments, enrolments, recalls)."""
    return [
        *_slot_facts(event),
        *_order_facts(event),
        *_payment_facts(event),
        *_lookup_facts(event),
    ]


# --- folding facts per system ------------------------------------------------------------------


def _latest(facts: Iterable[Fact]) -> tuple[Fact, ...]:
    """The latest fact per row (facts arrive in journey order), sorted for display."""
    latest: dict[tuple[str, str, str], Fact] = {}
    first_seen: dict[tuple[str, str, str], int] = {}
    for fact in facts:
        first_seen.setdefault(fact.key, len(first_seen))
        latest[fact.key] = fact
    topic_order = {topic: i for i, topic in enumerate(TOPICS)}
    return tuple(sorted(latest.values(), key=lambda f: (topic_order[f.topic], first_seen[f.key])))


def _own_identifiers(events: Sequence[Event], settings: FoldSettings) -> tuple[IdentifierSeen, ...]:
    found: dict[tuple[str, str], set[str]] = {}
    for event in events:
        for ident in customer_ids(event.customer, settings.region_for(event.tenant)):
            found.setdefault((ident.kind, ident.value), set()).add(event.source.system)
    order = {kind: i for i, kind in enumerate(IDENTIFIER_KINDS)}
    return tuple(
        IdentifierSeen(kind, value, tuple(sorted(systems)))
        for (kind, value), systems in sorted(found.items(), key=lambda i: (order[i[0][0]], i[0][1]))
    )


def _holding(
    system: str | None,
    events: Sequence[Event],
    identifiers: tuple[IdentifierSeen, ...],
) -> Holding:
    return Holding(
        system=system,
        identifiers=identifiers,
        names=tuple(sorted({e.customer.name for e in events if e.customer.name})),
        facts=_latest(fact for event in events for fact in facts_of(event)),
        event_ids=tuple(e.event_id for e in events),
    )


def knowledge(journey: Journey, as_of: datetime, settings: FoldSettings) -> Knowledge:
    """What each source system of a journey knew at `as_of`, from its own events only.

    Events after `as_of` are left out. The ledger's holding is the union: every identifier
    (national phone numbers shown under the international spelling they stitch to, as in the
    journey view) and the latest fact on each subject from whichever system said it last.
    """
    # People's actions on flags are not what a source system knew about the customer.
    events = sorted(
        (e for e in journey.events if e.occurred_at <= as_of and e.type not in HANDLING_TYPES),
        key=event_order,
    )
    by_system: dict[str, list[Event]] = {}
    for event in events:
        by_system.setdefault(event.source.system, []).append(event)
    systems = tuple(
        _holding(system, own, _own_identifiers(own, settings)) for system, own in by_system.items()
    )
    seen = Journey(journey.tenant, journey.customer_id, tuple(events))
    ledger = _holding(None, events, identifiers_of(seen, settings))
    return Knowledge(as_of=as_of, systems=systems, ledger=ledger)


# --- JSON ------------------------------------------------------------------------------------------


def fact_to_dict(fact: Fact) -> dict[str, Any]:
    """A fact as a JSON-ready dict."""
    return {
        "topic": fact.topic,
        "subject": fact.subject,
        "subject_key": fact.subject_key,
        "aspect": fact.aspect,
        "state": fact.state,
        "value": fact.value,
        "display": fact.display,
        "at": fact.at.isoformat(),
        "event_id": fact.event_id,
        "system": fact.system,
    }


def holding_to_dict(holding: Holding) -> dict[str, Any]:
    """A system's (or the ledger's) holding as a JSON-ready dict."""
    return {
        "system": holding.system,
        "identifiers": [
            {"kind": i.kind, "value": i.value, "systems": list(i.systems)}
            for i in holding.identifiers
        ],
        "names": list(holding.names),
        "facts": [fact_to_dict(f) for f in holding.facts],
        "event_ids": list(holding.event_ids),
    }


def knowledge_to_dict(known: Knowledge) -> dict[str, Any]:
    """What each system knew, as a JSON-ready dict (see `journeys.report` for the shape)."""
    return {
        "as_of": known.as_of.isoformat(),
        "systems": [holding_to_dict(h) for h in known.systems],
        "ledger": holding_to_dict(known.ledger),
    }
