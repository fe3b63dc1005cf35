"""A customer's journey: the fold of their events, kept in `occurred_at` order."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from schemas.codec import event_to_dict
from schemas.errors import EventConflictError
from schemas.events import Event


def event_order(event: Event) -> tuple[datetime, str]:
    """The journey order: by instant, ties broken by event_id."""
    return (event.occurred_at, event.event_id)


def same_content(a: Event, b: Event) -> bool:
    """Whether two events are the same content: equal as JSON, each offset as written.

    Model equality is not enough: datetimes compare as instants, so a slot of 10:30+00:00
    would equal one of 11:30+01:00, which the customer reads as another time.
    """
    return a == b and event_to_dict(a) == event_to_dict(b)


@dataclass(frozen=True, slots=True)
class Merge:
    """Two customers found to be one: when, by which event, through which identifier."""

    at: datetime
    event_id: str
    identifier: str
    """`kind value` of the identifier that reached `from_customer`."""
    from_customer: str
    into: str
    decision: str | None = None
    """A person's decision that let the merge happen (who, when, why), or None."""


@dataclass(frozen=True, slots=True)
class Journey:
    """One customer of one tenant and every event stitched to them, in journey order."""

    tenant: str
    customer_id: str
    events: tuple[Event, ...] = ()

    def event(self, event_id: str) -> Event | None:
        """The event with this id, if the journey holds it."""
        for event in self.events:
            if event.event_id == event_id:
                return event
        return None

    @property
    def event_ids(self) -> frozenset[str]:
        """The ids of every event held."""
        return frozenset(event.event_id for event in self.events)


def apply(journey: Journey, event: Event) -> Journey:
    """Add one event; the same event again changes nothing (at-least-once delivery is safe).

    Raises `EventConflictError` when the id is held with different content.
    """
    existing = journey.event(event.event_id)
    if existing is not None:
        if same_content(existing, event):
            return journey
        raise EventConflictError(
            f"event_id {event.event_id!r} is already held with different content"
        )
    return add_new(journey, event)


def add_new(journey: Journey, event: Event) -> Journey:
    """Add an event the caller knows is not held: appended in order, only a late one inserted.

    Events mostly arrive in journey order, so the common case is one comparison with the
    last event; a late event is placed by bisection. The result equals sorting all events.
    """
    events = journey.events
    if not events or event_order(events[-1]) <= event_order(event):
        return Journey(journey.tenant, journey.customer_id, (*events, event))
    position = bisect.bisect_right(events, event_order(event), key=event_order)
    return Journey(
        journey.tenant, journey.customer_id, (*events[:position], event, *events[position:])
    )


def merge(customer_id: str, journeys: Iterable[Journey]) -> Journey:
    """Join the journeys of customers found to be one, under the surviving id."""
    journeys = list(journeys)
    if not journeys:
        raise ValueError("merge needs at least one journey")
    tenant = journeys[0].tenant
    if any(journey.tenant != tenant for journey in journeys):
        raise ValueError("journeys never cross tenants")
    if len(journeys) == 1:
        only = journeys[0]
        return (
            only if only.customer_id == customer_id else Journey(tenant, customer_id, only.events)
        )
    by_id: dict[str, Event] = {}
    for journey in journeys:
        for event in journey.events:
            by_id.setdefault(event.event_id, event)
    # the journeys are each in order: the sort finds their runs and merges them
    return Journey(tenant, customer_id, tuple(sorted(by_id.values(), key=event_order)))


def fold(tenant: str, customer_id: str, events: Iterable[Event]) -> Journey:
    """Fold events into a fresh journey."""
    journey = Journey(tenant, customer_id)
    for event in events:
        journey = apply(journey, event)
    return journey
