"""REPEATED_ASK: the business asks for something the journey already held."""

from __future__ import annotations

from typing import Any

import pytest

from projections.flags import Flag
from schemas.events import IDENTIFIER_KINDS, Event
from tests.factories import at, ev
from tests.unit.rules.conftest import flags_of, shuffled

RULE = "REPEATED_ASK"
CUSTOMER = {"anonymous_id": "chat-7f3a"}

VALUES = {
    "customer_ref": "C-1001",
    "email": "sam@example.com",
    "phone": "+44 7700 900123",
    "plate": "AB12 CDE",
    "vin": "WVWZZZ1JZXW000001",
    "order_id": "O-555",
    "card_token": "tok_abc",
    "membership_id": "M-42",
    "anonymous_id": "chat-7f3a",
}


def customer_says(hours: float, **payload: Any) -> Event:
    return ev(
        "chat.message",
        {"speaker": "customer", **payload},
        when=at(hours=hours),
        system="chat-vendor",
        customer=CUSTOMER,
        correlation_id="conv-1",
    )


def agent_asks(
    hours: float,
    *fields: str,
    speaker: str = "agent",
    conversation: str | None = "conv-1",
    site: str | None = None,
) -> Event:
    return ev(
        "chat.message",
        {"speaker": speaker, "asked_for": list(fields)},
        when=at(hours=hours),
        system="chat-vendor",
        customer=CUSTOMER,
        correlation_id=conversation,
        source={"site": site} if site else {},
    )


def known(hours: float, system: str = "booking", **customer: str) -> Event:
    """A business event whose customer block carries some identifiers (and the chat id)."""
    return ev(
        "booking.created",
        {"booking_id": "B1", "slot": "2024-03-15"},
        when=at(hours=hours),
        system=system,
        customer={**CUSTOMER, **customer},
    )


def repeated(events: list[Event]) -> list[Flag]:
    return flags_of(events, rule=RULE)


# --- identifiers and name -----------------------------------------------------------------


@pytest.mark.parametrize("kind", [k for k in IDENTIFIER_KINDS if k != "anonymous_id"])
def test_asking_for_a_held_identifier_is_flagged(kind: str) -> None:
    held = known(0, **{kind: VALUES[kind]})
    ask = agent_asks(1, kind)
    [flag] = repeated([held, ask])
    assert flag.opened_at == ask.occurred_at
    assert flag.event_ids == (ask.event_id,)
    assert flag.status == "open"
    assert f"chat-vendor asked the customer for {kind} (held from booking)" in flag.message


@pytest.mark.parametrize("kind", [k for k in IDENTIFIER_KINDS if k != "anonymous_id"])
def test_asking_for_an_identifier_not_held_is_not_flagged(kind: str) -> None:
    others = {"customer_ref": "C-1"} if kind == "email" else {"email": "sam@example.com"}
    assert repeated([known(0, **others), agent_asks(1, kind)]) == []


def test_identifier_learnt_only_after_the_ask_is_not_flagged() -> None:
    assert repeated([agent_asks(0, "plate"), known(1, plate="AB12CDE")]) == []


def test_identifier_on_the_asking_event_itself_does_not_count() -> None:
    call = ev(
        "call.logged",
        {"direction": "inbound", "asked_for": ["phone"]},
        when=at(hours=1),
        system="call-centre",
        customer={"phone": "07700 900123", "email": "sam@example.com"},
    )
    assert repeated([call]) == []


def test_call_asking_for_a_held_identifier_is_flagged() -> None:
    chat = customer_says(0, text="my reg is AB12 CDE")
    plate = known(0.5, system="dms", plate="AB12CDE", phone="07700 900123")
    call = ev(
        "call.logged",
        {"direction": "inbound", "asked_for": ["Registration number"]},
        when=at(hours=2),
        system="call-centre",
        customer={"phone": "07700 900123"},
    )
    [flag] = repeated([chat, plate, call])
    assert "call-centre asked the customer for Registration number (held from dms)" in flag.message


def test_aliases_name_the_same_field() -> None:
    events = [known(0, phone="07700 900123"), agent_asks(1, "Mobile number")]
    [flag] = repeated(events)
    assert "Mobile number (held from booking)" in flag.message


def test_name_once_given_is_held() -> None:
    named = ev("form.submitted", {"form": "contact"}, customer={**CUSTOMER, "name": "Sam Patel"})
    [flag] = repeated([named, agent_asks(1, "full name")])
    assert "full name (held from web)" in flag.message


def test_name_not_given_is_not_held() -> None:
    assert repeated([known(0, email="sam@example.com"), agent_asks(1, "name")]) == []


def test_every_repeated_field_is_named_in_one_flag() -> None:
    events = [
        known(0, email="sam@example.com", plate="AB12CDE"),
        agent_asks(1, "email", "plate", "mileage"),
    ]
    [flag] = repeated(events)
    assert "email (held from booking), plate (held from booking)" in flag.message
    assert "mileage" not in flag.message


def test_supplier_is_the_first_system_that_held_it() -> None:
    events = [
        known(0, system="dealer-crm", email="sam@example.com"),
        known(0.5, system="booking", email="sam@example.com"),
        agent_asks(1, "email"),
    ]
    [flag] = repeated(events)
    assert "(held from dealer-crm)" in flag.message


# --- provided fields and slots -------------------------------------------------------------


def test_field_the_customer_provided_is_held() -> None:
    said = customer_says(0, text="It's done 42,000 miles", provided=["mileage"])
    [flag] = repeated([said, agent_asks(1, "Mileage")])
    assert "Mileage (held from chat-vendor)" in flag.message


def test_field_provided_by_an_agent_line_is_not_held() -> None:
    agent = ev(
        "chat.message",
        {"speaker": "agent", "provided": ["mileage"]},
        when=at(hours=0),
        system="chat-vendor",
        customer=CUSTOMER,
    )
    assert repeated([agent, agent_asks(1, "mileage")]) == []


def test_field_not_provided_is_not_flagged() -> None:
    said = customer_says(0, provided=["mileage"])
    assert repeated([said, agent_asks(1, "colour")]) == []


@pytest.mark.parametrize("asked", ["slot", "date", "preferred date"])
def test_slot_after_a_requested_slot_is_flagged(asked: str) -> None:
    form = ev(
        "form.submitted",
        {"form": "book", "requested_slot": "2024-03-15T10:30:00+00:00"},
        customer=CUSTOMER,
    )
    assert len(repeated([form, agent_asks(1, asked)])) == 1


def test_slot_from_a_customer_chat_line_is_held() -> None:
    said = customer_says(0, requested_slot="2024-03-15")
    assert len(repeated([said, agent_asks(1, "slot")])) == 1


def test_slot_without_any_request_is_not_flagged() -> None:
    assert repeated([customer_says(0, text="I need a service"), agent_asks(1, "slot")]) == []


# --- site ---------------------------------------------------------------------------------


def test_site_carried_by_the_conversation_is_flagged() -> None:
    said = ev(
        "chat.message",
        {"speaker": "customer", "text": "Hi"},
        when=at(hours=0),
        system="chat-vendor",
        customer=CUSTOMER,
        correlation_id="conv-1",
        source={"site": "leeds-north"},
    )
    [flag] = repeated([said, agent_asks(1, "dealership")])
    assert "dealership (held from chat-vendor)" in flag.message


def test_site_not_carried_by_any_event_is_not_flagged() -> None:
    assert repeated([customer_says(0, text="Hi"), agent_asks(1, "site")]) == []


def test_site_from_another_conversation_is_not_flagged() -> None:
    other = ev(
        "chat.message",
        {"speaker": "customer", "text": "Hi"},
        when=at(hours=0),
        system="chat-vendor",
        customer=CUSTOMER,
        correlation_id="conv-0",
        source={"site": "leeds-north"},
    )
    assert repeated([other, agent_asks(1, "site", conversation="conv-1")]) == []


# --- who asks -----------------------------------------------------------------------------


def test_bot_asking_is_flagged_too() -> None:
    events = [known(0, email="sam@example.com"), agent_asks(1, "email", speaker="bot")]
    assert len(repeated(events)) == 1


def test_customer_line_with_asked_for_is_not_an_ask() -> None:
    line = ev(
        "chat.message",
        {"speaker": "customer", "asked_for": ["email"]},
        when=at(hours=1),
        system="chat-vendor",
        customer=CUSTOMER,
    )
    assert repeated([known(0, email="sam@example.com"), line]) == []


def test_each_repeated_ask_is_its_own_flag_and_never_resolves() -> None:
    events = [
        known(0, email="sam@example.com"),
        agent_asks(1, "email"),
        customer_says(2, text="sam@example.com", provided=["email"]),
        agent_asks(3, "email"),
    ]
    flags = repeated(events)
    assert [f.opened_at for f in flags] == [at(hours=1), at(hours=3)]
    assert all(f.status == "open" and f.resolved_at is None for f in flags)


def test_repeated_ask_does_not_depend_on_arrival_order() -> None:
    events = [
        customer_says(0, text="Hi", provided=["mileage"], requested_slot="2024-03-15"),
        agent_asks(0.5, "plate", "mileage"),
        known(1, plate="AB12CDE"),
        agent_asks(2, "plate", "slot", "site"),
        ev(
            "call.logged",
            {"direction": "outbound", "asked_for": ["name"]},
            when=at(hours=3),
            system="call-centre",
            customer={**CUSTOMER, "name": "Sam"},
        ),
    ]
    expected = repeated(events)
    assert len(expected) == 2
    for arrival in shuffled(events):
        assert repeated(arrival) == expected
