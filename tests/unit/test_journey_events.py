"""A journey's events: adding one in order costs no copy of the journey, and every journey
already handed out keeps its own events whatever is added after (readers see it immutable).

Structure sizes only, no timings: the speed target lives in `journeys bench`
(`hot_customer_cost_ratio`).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.identifiers import identity_ids
from projections.identity import MemoryIdentity, customer_id_for, link
from projections.journey import Events, Journey, add_new, event_order
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.test_properties import PROPERTY


def _event(number: int, minutes: int) -> Event:
    return ev(
        "form.submitted",
        {"form": f"contact-{number}"},
        when=at(minutes=minutes),
        event_id=f"e{number:04d}",
        customer={"email": "sam@example.com"},
    )


def _buffers(journeys: list[Journey]) -> set[int]:
    # the lists behind the journeys' events: one list means no journey was copied to add one
    return {id(journey.events._items) for journey in journeys}  # type: ignore[attr-defined]


def test_events_added_in_order_share_one_list_and_each_journey_keeps_its_own() -> None:
    journey = Journey("acme", "cus_1")
    versions = []
    for number in range(2000):
        journey = add_new(journey, _event(number, number))
        versions.append(journey)
    assert len(_buffers(versions)) == 1  # 2,000 events added, not one copy of the journey
    assert [len(v.events) for v in versions] == list(range(1, 2001))
    assert versions[9].events == tuple(_event(n, n) for n in range(10))
    assert versions[-1].events[-1].event_id == "e1999"


def test_adding_to_an_older_journey_copies_and_leaves_the_newer_one_alone() -> None:
    first = add_new(Journey("acme", "cus_1"), _event(0, 0))
    second = add_new(first, _event(1, 10))
    other = add_new(first, _event(2, 20))  # `first` is not the newest view of its list
    late = add_new(second, _event(3, 5))  # a late event: placed by bisection in a copy
    assert [e.event_id for e in first.events] == ["e0000"]
    assert [e.event_id for e in second.events] == ["e0000", "e0001"]
    assert [e.event_id for e in other.events] == ["e0000", "e0002"]
    assert [e.event_id for e in late.events] == ["e0000", "e0003", "e0001"]
    assert len(_buffers([second, other, late])) == 3


def test_events_read_like_the_tuple_they_replace() -> None:
    events = tuple(_event(n, n) for n in range(5))
    held = Journey("acme", "cus_1", events).events
    assert isinstance(held, Events)
    assert held == events
    assert events == held
    assert list(held) == list(events)
    assert held[1:3] == events[1:3]
    assert held[::-2] == events[::-2]
    assert held[-1] is events[-1]
    assert hash(held) == hash(events)
    assert Journey("acme", "cus_1", events) == Journey("acme", "cus_1", list(events))


@PROPERTY
@given(steps=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 120)), min_size=1, max_size=40))
def test_every_journey_handed_out_holds_what_sorting_its_events_gives(
    steps: list[tuple[int, int]],
) -> None:
    """Each step adds an event at some minute to some earlier journey (a fork, or late)."""
    versions = [Journey("acme", "cus_1")]
    added: list[list[Event]] = [[]]
    for number, (pick, minutes) in enumerate(steps):
        base = pick % len(versions)
        event = _event(number, minutes)
        versions.append(add_new(versions[base], event))
        added.append([*added[base], event])
    for journey, events in zip(versions, added, strict=True):
        assert journey.events == tuple(sorted(events, key=event_order))


def test_an_event_adding_nothing_new_to_a_customer_does_not_copy_its_identifiers() -> None:
    graph = MemoryIdentity()
    for number in range(300):  # a customer whose identifiers grow with its history
        event = ev(
            "form.submitted",
            {"form": "contact"},
            event_id=f"p{number}",
            customer={"email": "sam@example.com", "plate": f"AB{number:03d} CDE"},
        )
        graph.apply(link(graph, "acme", identity_ids(event)))
    (customer,) = graph.member_sets
    assert len(graph.members(customer)) == 301  # the e-mail and 300 plates
    again = ev("form.submitted", {"form": "contact"}, customer={"email": "sam@example.com"})
    change = link(graph, "acme", identity_ids(again))
    assert change.customer_id == customer
    assert not change.changed
    assert not change.absorbed
    assert change.members is graph.members(customer)  # the held set, not a copy of 301 keys


class _Writes(dict[str, str]):
    """An identity index that keeps the keys written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def update(self, *others: object, **more: str) -> None:
        added = dict(*others, **more)
        self.written.extend(added)
        super().update(added)


def test_a_customer_gaining_an_identifier_writes_only_that_key_to_the_index() -> None:
    index = _Writes()
    graph = MemoryIdentity(index=index)
    for number in range(300):  # every event brings a new plate to the one customer
        event = ev(
            "form.submitted",
            {"form": "contact"},
            event_id=f"p{number}",
            customer={"email": "sam@example.com", "plate": f"AB{number:03d} CDE"},
        )
        change = link(graph, "acme", identity_ids(event))
        # the id the whole key set gives, worked out from the held set's smallest key
        assert change.customer_id == customer_id_for("acme", change.members)
        graph.apply(change)
    (customer,) = graph.member_sets
    assert len(graph.members(customer)) == 301
    assert sorted(index.written) == sorted(graph.members(customer))  # each key written once
    assert set(index.values()) == {customer}
    # a key smaller than every held one renames the customer: every key is written again
    renaming = ev(
        "form.submitted",
        {"form": "contact"},
        customer={"email": "sam@example.com", "anonymous_id": "a-1"},
    )
    change = link(graph, "acme", identity_ids(renaming))
    assert change.absorbed == (customer,)
    assert change.customer_id == customer_id_for("acme", ["anonymous_id:a-1"])
    graph.apply(change)
    assert set(graph.member_sets) == {change.customer_id}
    assert set(index.values()) == {change.customer_id}
    assert len(index) == 302
