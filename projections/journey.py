"""A customer's journey: the fold of their events, kept in `occurred_at` order."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import overload

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


class Events(Sequence[Event]):
    """A journey's events in journey order: an immutable view of the first `size` events of
    a list that is only ever appended to.

    Adding an event in order to the newest view of a list appends to that list (no copy: the
    cost does not grow with the journey); every older view still sees only its own events. A
    view that is not the list's newest, or a late event, copies the list once.
    """

    __slots__ = ("_items", "_size")

    def __init__(self, items: list[Event], size: int) -> None:
        self._items = items
        self._size = size

    @classmethod
    def of(cls, events: Iterable[Event]) -> Events:
        """A view of these events (already in journey order)."""
        if isinstance(events, Events):
            return events
        items = list(events)
        return cls(items, len(items))

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Event, ...]: ...

    def __getitem__(self, index: int | slice) -> Event | tuple[Event, ...]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._size)
            if step == 1:
                return tuple(self._items[start:stop])
            return tuple(self._items[i] for i in range(start, stop, step))
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError("journey event index out of range")
        return self._items[index]

    def __iter__(self) -> Iterator[Event]:
        return islice(self._items, self._size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Events | tuple | list):
            return NotImplemented
        return len(self) == len(other) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Events({tuple(self)!r})"

    def appended(self, event: Event) -> Events:
        """These events and one more after them (in place when this is the list's newest view)."""
        items = self._items
        if self._size and len(items) == self._size:  # never the shared empty list
            items.append(event)
            return Events(items, self._size + 1)
        return Events([*islice(items, self._size), event], self._size + 1)

    def inserted(self, position: int, event: Event) -> Events:
        """These events with one more at `position` (a copy: older views keep their order)."""
        items = self._items[: self._size]
        items.insert(position, event)
        return Events(items, self._size + 1)

    def extends(self, other: Events) -> bool:
        """Whether these are `other`'s events with only events after them (the same list)."""
        return self._items is other._items and self._size >= other._size

    def bisect_right(self, order: tuple[datetime, str]) -> int:
        """Where an event of this journey order goes, after any equal."""
        return bisect.bisect_right(self._items, order, 0, self._size, key=event_order)


NO_EVENTS = Events([], 0)
"""The events of a journey that has none."""


@dataclass(frozen=True, slots=True)
class Journey:
    """One customer of one tenant and every event stitched to them, in journey order."""

    tenant: str
    customer_id: str
    events: Sequence[Event] = NO_EVENTS
    """Given as any sequence in journey order; held as `Events` (immutable, shares appends)."""

    def __post_init__(self) -> None:
        if not isinstance(self.events, Events):
            object.__setattr__(self, "events", Events.of(self.events))

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
    last event and an append to the shared list (`Events.appended`: no copy of the journey);
    a late event is placed by bisection in a copy. The result equals sorting all events.
    """
    events = Events.of(journey.events)
    order = event_order(event)
    if not events or event_order(events[-1]) <= order:
        return Journey(journey.tenant, journey.customer_id, events.appended(event))
    position = events.bisect_right(order)
    return Journey(journey.tenant, journey.customer_id, events.inserted(position, event))


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
