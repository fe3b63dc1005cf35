"""Why an event is in its journey: the linking identifier, worked out from the journey alone."""

from __future__ import annotations

import random
from typing import Any

from projections.identity import IdentityPolicy
from projections.journey import Journey, fold
from projections.why import linked_by
from schemas.events import Event
from tests.factories import at, ev


def _event(event_id: str, hours: float, **customer: Any) -> Event:
    return ev(
        "form.submitted", {"form": "contact"}, event_id=event_id, when=at(hours), customer=customer
    )


def _journey(*events: Event) -> Journey:
    return fold("acme", "cus_x", events)


def test_the_first_event_is_linked_by_nothing() -> None:
    first = _event("e-1", 0, email="priya@garage.co.uk")
    assert linked_by(_journey(first), IdentityPolicy()) == {}


def test_the_highest_priority_shared_identifier_links_the_event() -> None:
    journey = _journey(
        _event("e-1", 0, email="priya@garage.co.uk", plate="AB12 CDE"),
        _event("e-2", 1, plate="ab12cde", email="Priya@garage.co.uk", anonymous_id="s-1"),
        _event("e-3", 2, anonymous_id="s-1", plate="AB12CDE"),
    )
    assert linked_by(journey, IdentityPolicy()) == {
        "e-2": "email priya@garage.co.uk",
        "e-3": "plate AB12CDE",
    }


def test_an_event_sharing_nothing_earlier_starts_its_own_thread() -> None:
    # e-2 came before the event that joined it to e-1: nothing earlier linked it
    journey = _journey(
        _event("e-1", 0, email="priya@garage.co.uk"),
        _event("e-2", 1, plate="AB12 CDE"),
        _event("e-3", 2, email="priya@garage.co.uk", plate="AB12 CDE"),
    )
    assert linked_by(journey, IdentityPolicy()) == {"e-3": "email priya@garage.co.uk"}


def test_a_national_phone_is_linked_by_its_international_spelling() -> None:
    journey = _journey(
        _event("e-1", 0, phone="+44 7700 900123"),
        _event("e-2", 1, phone="07700 900123"),
    )
    assert set(linked_by(journey, IdentityPolicy(), "GB")) == {"e-2"}


def test_junk_and_blocked_identifiers_never_link() -> None:
    policy = IdentityPolicy(blocked=frozenset({"email:desk@garage.co.uk"}))
    journey = _journey(
        _event("e-1", 0, email="test@test.com", customer_ref="C-1"),
        _event("e-2", 1, email="test@test.com", plate="AB12 CDE"),
        _event("e-3", 2, email="desk@garage.co.uk", plate="XY99 ZZZ"),
        _event("e-4", 3, email="desk@garage.co.uk", plate="XY99ZZZ"),
    )
    assert linked_by(journey, policy) == {"e-4": "plate XY99ZZZ"}


def test_the_answer_does_not_depend_on_arrival_order() -> None:
    events = [
        _event("e-1", 0, email="priya@garage.co.uk"),
        _event("e-2", 1, anonymous_id="s-1", plate="AB12 CDE"),
        _event("e-3", 2, email="priya@garage.co.uk", plate="AB12CDE"),
        _event("e-4", 2, plate="AB12CDE", customer_ref="C-9"),
        _event("e-5", 3, customer_ref="C-9", email="priya@garage.co.uk"),
    ]
    expected = linked_by(_journey(*events), IdentityPolicy())
    assert expected == {
        "e-3": "email priya@garage.co.uk",
        "e-4": "plate AB12CDE",
        "e-5": "customer_ref C-9",
    }
    shuffler = random.Random(13)
    for _ in range(20):
        shuffled = list(events)
        shuffler.shuffle(shuffled)
        assert linked_by(_journey(*shuffled), IdentityPolicy()) == expected
