"""Identity stitching: shared normalised identifiers make one customer, within a tenant."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from projections.identifiers import normalise
from projections.identity import MemoryIdentity, customer_id_for, link
from projections.ledger import Ledger, fold_all
from projections.settings import FoldSettings
from schemas.events import Event
from tests.factories import at, ev


def _ledger(events: list[Event], settings: FoldSettings | None = None) -> Ledger:
    ledger = Ledger(settings=settings or FoldSettings())
    for event in events:
        ledger.add(event)
    return ledger


def _partition(ledger: Ledger) -> set[tuple[str, str, frozenset[str]]]:
    return {
        (journey.tenant, journey.customer_id, frozenset(journey.event_ids)) for journey in ledger
    }


def _event(event_id: str, hours: float, **customer: Any) -> Event:
    return ev(
        "form.submitted", {"form": "contact"}, event_id=event_id, when=at(hours), customer=customer
    )


# --- transitive stitching ---------------------------------------------------------------------


def _chain() -> list[Event]:
    """Chat session -> plate -> booking -> phone -> SMS, each event sharing one identifier."""
    return [
        ev(
            "chat.message",
            {"speaker": "customer", "text": "my car needs a service"},
            event_id="chat-1",
            when=at(0),
            system="chat-vendor",
            customer={"anonymous_id": "sess-9f2c"},
        ),
        ev(
            "chat.message",
            {"speaker": "customer", "text": "plate is AB12 CDE", "provided": ["plate"]},
            event_id="chat-2",
            when=at(0, 5),
            system="chat-vendor",
            customer={"anonymous_id": "sess-9f2c", "plate": "AB12 CDE"},
        ),
        ev(
            "booking.created",
            {"booking_id": "BK-1", "slot": "2024-03-12T10:30:00+00:00"},
            event_id="book-1",
            when=at(1),
            system="booking",
            customer={"plate": "ab12-cde", "phone": "07700 900123", "name": "Sam"},
        ),
        ev(
            "message.sent",
            {"medium": "sms", "booking_id": "BK-1", "stated_slot": "2024-03-12T10:30:00Z"},
            event_id="sms-1",
            when=at(2),
            system="sms-gateway",
            customer={"phone": "+44 7700 900123"},
        ),
    ]


def test_stitching_is_transitive_from_chat_session_to_sms() -> None:
    ledger = _ledger(_chain())

    (journey,) = list(ledger)
    assert [event.event_id for event in journey.events] == ["chat-1", "chat-2", "book-1", "sms-1"]
    assert ledger.identities["acme"].members(journey.customer_id) == {
        "anonymous_id:sess-9f2c",
        "plate:AB12CDE",
        "phone:7700900123",
        "phone:+44:7700900123",
    }


def test_the_chain_is_one_journey_in_every_arrival_order() -> None:
    expected = _partition(_ledger(_chain()))

    for order in itertools.permutations(_chain()):
        assert _partition(_ledger(list(order))) == expected, [e.event_id for e in order]


def test_removing_the_link_in_the_middle_splits_the_chain() -> None:
    chain = [event for event in _chain() if event.event_id != "book-1"]

    ledger = _ledger(chain)

    assert sorted(sorted(journey.event_ids) for journey in ledger) == [
        ["chat-1", "chat-2"],
        ["sms-1"],
    ]


# --- the name never stitches ------------------------------------------------------------------


def test_a_shared_name_alone_never_stitches() -> None:
    ledger = _ledger(
        [
            _event("a", 0, name="Sam Smith", email="sam@example.com"),
            _event("b", 1, name="Sam Smith", email="sam.smith@example.org"),
            _event("c", 2, name="sam smith", phone="+44 7700 900123"),
        ]
    )

    assert len(list(ledger)) == 3


def test_the_name_is_no_graph_key() -> None:
    ledger = _ledger([_event("a", 0, name="Sam Smith", email="sam@example.com")])

    graph = ledger.identities["acme"]
    assert all(not key.startswith("name:") for keys in graph.as_mapping().values() for key in keys)
    assert ledger.find("acme", "name", "Sam Smith") is None


# --- merges -----------------------------------------------------------------------------------


def test_an_event_linking_two_journeys_merges_them() -> None:
    by_email = _event("a", 0, email="sam@example.com")
    by_phone = _event("b", 1, phone="+44 7700 900123")
    bridge = _event("c", 2, email="SAM@example.com", phone="07700 900123")
    ledger = _ledger([by_email, by_phone])
    before = {journey.customer_id for journey in ledger}
    assert len(before) == 2

    change = ledger.add(bridge)

    assert change is not None
    (journey,) = list(ledger)
    assert [event.event_id for event in journey.events] == ["a", "b", "c"]
    assert journey.customer_id == change.customer_id
    assert set(change.absorbed) | {change.customer_id} >= before
    assert change.customer_id not in change.absorbed
    assert change.absorbed == tuple(sorted(change.absorbed))
    graph = ledger.identities["acme"]
    assert set(graph.as_mapping()) == {journey.customer_id}
    for key in graph.members(journey.customer_id):
        assert graph.customer_of(key) == journey.customer_id


def test_the_surviving_id_is_derived_from_the_keys_held() -> None:
    events = [
        _event("a", 0, email="sam@example.com"),
        _event("b", 1, phone="+44 7700 900123"),
        _event("c", 2, email="sam@example.com", phone="+44 7700 900123"),
    ]

    (journey,) = list(_ledger(events))

    assert journey.customer_id == customer_id_for(
        "acme", ["email:sam@example.com", "phone:+44:7700900123", "phone:7700900123"]
    )
    assert journey.customer_id == customer_id_for("acme", ["email:sam@example.com"])


def test_three_journeys_merged_by_one_event() -> None:
    events = [
        _event("a", 0, email="sam@example.com"),
        _event("b", 1, plate="AB12CDE"),
        _event("c", 2, membership_id="RSA-1"),
        _event("d", 3, email="sam@example.com", plate="AB12 CDE", membership_id="RSA-1"),
    ]
    ledger = _ledger(events[:3])

    change = ledger.add(events[3])

    assert change is not None
    assert len(change.absorbed) == 2
    (journey,) = list(ledger)
    assert journey.event_ids == {"a", "b", "c", "d"}


_SMALL_CASE = [
    _event("p1", 0, email="sam@example.com"),
    _event("p2", 1, phone="07700 900123"),
    _event("p3", 2, plate="AB12CDE", anonymous_id="sess-1"),
    _event("p4", 3, plate="ab12 cde", phone="+44 7700 900123"),
    _event("p5", 4, email="Sam@Example.com", customer_ref="C-7"),
    _event("p6", 5, email="other@example.com", name="Sam Smith"),
]


def test_the_surviving_id_does_not_depend_on_arrival_order() -> None:
    expected = _partition(_ledger(_SMALL_CASE))
    assert len(expected) == 3  # {p1, p5}, {p2, p3, p4}, {p6}

    for order in itertools.permutations(_SMALL_CASE):
        ledger = _ledger(list(order))
        assert _partition(ledger) == expected, [event.event_id for event in order]
        assert {(j.tenant, j.customer_id) for j in ledger} == set(ledger.journeys)


def test_one_by_one_equals_folding_at_once() -> None:
    events = [*_SMALL_CASE, *_chain()]

    assert list(_ledger(events)) == fold_all(events)


def test_link_is_pure_until_the_change_is_applied() -> None:
    graph = MemoryIdentity()
    ids = [normalise("email", "sam@example.com"), normalise("phone", "+44 7700 900123")]

    change = link(graph, "acme", ids)

    assert graph == MemoryIdentity()
    assert change.changed
    graph.apply(change)
    again = link(graph, "acme", ids)
    assert not again.changed
    assert again.customer_id == change.customer_id
    assert again.absorbed == ()


# --- tenants ----------------------------------------------------------------------------------


def test_tenants_never_cross() -> None:
    ledger = _ledger(
        [
            ev("form.submitted", {"form": "c"}, event_id="a", tenant="acme"),
            ev("form.submitted", {"form": "c"}, event_id="b", tenant="globex"),
            ev("form.submitted", {"form": "c"}, event_id="c", tenant="acme"),
        ]
    )

    journeys = {journey.tenant: journey for journey in ledger}
    assert set(journeys) == {"acme", "globex"}
    assert journeys["acme"].event_ids == {"a", "c"}
    assert journeys["globex"].event_ids == {"b"}
    assert journeys["acme"].customer_id != journeys["globex"].customer_id
    assert ledger.find("globex", "email", "sam@example.com") == journeys["globex"]
    assert ledger.find("initech", "email", "sam@example.com") is None


def test_a_bridge_in_one_tenant_does_not_merge_another() -> None:
    ledger = _ledger(
        [
            ev("form.submitted", {"form": "c"}, tenant="acme", customer={"email": "sam@x.com"}),
            ev("form.submitted", {"form": "c"}, tenant="acme", customer={"phone": "07700900123"}),
            ev("form.submitted", {"form": "c"}, tenant="globex", customer={"email": "sam@x.com"}),
            ev("form.submitted", {"form": "c"}, tenant="globex", customer={"phone": "07700900123"}),
            ev(
                "form.submitted",
                {"form": "c"},
                tenant="acme",
                customer={"email": "sam@x.com", "phone": "07700900123"},
            ),
        ]
    )

    assert sorted((journey.tenant, len(journey.events)) for journey in ledger) == [
        ("acme", 3),
        ("globex", 1),
        ("globex", 1),
    ]


# --- finding a journey ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("anonymous_id", "sess-9f2c"),
        ("plate", "ab12 cde"),
        ("plate", "AB-12-CDE"),
        ("phone", "+44 7700 900123"),
        ("phone", "07700900123"),
        ("phone", "0044 7700 900123"),
    ],
)
def test_find_by_any_identifier_after_normalisation(kind: str, value: str) -> None:
    ledger = _ledger(_chain())

    found = ledger.find("acme", kind, value)

    assert found is not None
    assert found.event_ids == {"chat-1", "chat-2", "book-1", "sms-1"}


def test_find_by_email_after_normalisation() -> None:
    ledger = _ledger([_event("a", 0, email="Sam@Example.com")])

    found = ledger.find("acme", "email", "  SAM@example.COM ")

    assert found is not None
    assert found.event_ids == {"a"}


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("plate", "AB12CDF"),
        ("phone", "+33 6 12 34 56 78"),
        ("phone", "07700 900124"),
        ("vin", "AB12CDE"),
        ("email", "sam@example.com"),
    ],
)
def test_find_returns_none_for_an_identifier_not_held(kind: str, value: str) -> None:
    assert _ledger(_chain()).find("acme", kind, value) is None


def test_find_a_national_number_when_only_the_international_one_was_seen() -> None:
    ledger = _ledger([_event("a", 0, phone="+44 7700 900123")])

    found = ledger.find("acme", "phone", "07700 900123")

    assert found is not None
    assert found.event_ids == {"a"}


# --- journey order ----------------------------------------------------------------------------


def test_journey_events_are_in_occurred_at_order_whatever_the_arrival() -> None:
    events = [
        _event("late", 5, email="sam@example.com"),
        _event("early", 1, email="sam@example.com"),
        _event("middle", 3, email="sam@example.com"),
    ]

    (journey,) = list(_ledger(events))

    assert [event.event_id for event in journey.events] == ["early", "middle", "late"]


def test_ties_are_broken_by_event_id() -> None:
    same_instant = [
        ev("form.submitted", {"form": "c"}, event_id="e-b", when="2024-03-11T09:00:00Z"),
        ev("form.submitted", {"form": "c"}, event_id="e-c", when="2024-03-11T10:00:00+01:00"),
        ev("form.submitted", {"form": "c"}, event_id="e-a", when="2024-03-11T04:00:00-05:00"),
        ev("form.submitted", {"form": "c"}, event_id="e-0", when="2024-03-11T09:00:01Z"),
    ]

    for order in itertools.permutations(same_instant):
        (journey,) = list(_ledger(list(order)))
        assert [event.event_id for event in journey.events] == ["e-a", "e-b", "e-c", "e-0"]


def test_merged_journeys_keep_one_order() -> None:
    events = [
        _event("x2", 2, email="sam@example.com"),
        _event("y1", 1, phone="+44 7700 900123"),
        _event("x0", 0, email="sam@example.com"),
        _event("y3", 3, phone="+44 7700 900123"),
        _event("bridge", 1.5, email="sam@example.com", phone="07700 900123"),
    ]

    (journey,) = list(_ledger(events))

    assert [event.event_id for event in journey.events] == ["x0", "y1", "bridge", "x2", "y3"]


def test_masked_card_numbers_never_stitch_customers() -> None:
    ledger = Ledger()
    ledger.add(ev("form.submitted", {"form": "x"}, customer={"card_token": "4111 1111 1111 1111"}))
    ledger.add(ev("form.submitted", {"form": "x"}, customer={"card_token": "4000 0566 0002 1111"}))
    journeys = list(ledger)
    assert len(journeys) == 2
    assert all(j.events[0].redacted for j in journeys)
