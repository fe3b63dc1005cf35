"""What each system knew: the identifiers and facts of its own events, next to the ledger's."""

from __future__ import annotations

from typing import Any

import orjson

from projections.journey import Journey, fold
from projections.knowledge import BOOKED, REQUESTED, STATED, Knowledge, knowledge, knowledge_to_dict
from projections.settings import FoldSettings
from schemas.events import Event
from tests.factories import at, ev

SETTINGS = FoldSettings()
FRIDAY = "2024-03-15T10:30:00+00:00"
SATURDAY = "2024-03-16T10:30:00+00:00"


def journey_of(*events: Event) -> Journey:
    return fold("acme", "cus_test", events)


def facts(known: Knowledge, system: str) -> set[tuple[str, str, str, str]]:
    holding = known.holding(system)
    assert holding is not None
    return {(f.subject, f.aspect, f.state, f.display) for f in holding.facts}


def idents(known: Knowledge, system: str) -> set[tuple[str, str]]:
    holding = known.holding(system)
    assert holding is not None
    return {(i.kind, i.value) for i in holding.identifiers}


def chat_books_friday_sms_says_saturday() -> list[Event]:
    return [
        ev(
            "chat.message",
            {"speaker": "customer", "requested_slot": FRIDAY, "text": "Friday 10:30 please"},
            when=at(),
            system="chat-vendor",
            customer={"anonymous_id": "chat-1", "plate": "ab12 cde", "name": "Sam Lee"},
        ),
        ev(
            "booking.created",
            {"booking_id": "B1", "slot": FRIDAY, "service": "MOT"},
            when=at(minutes=5),
            system="dealer-booking",
            customer={"plate": "AB12CDE", "phone": "+44 7700 900123"},
        ),
        ev(
            "chat.message",
            {"speaker": "agent", "text": "Booked for Friday 10:30"},
            when=at(minutes=6),
            system="chat-vendor",
            customer={"anonymous_id": "chat-1"},
        ),
        ev(
            "message.sent",
            {"medium": "sms", "stated_slot": SATURDAY, "booking_id": "B1"},
            when=at(minutes=30),
            system="sms-gateway",
            customer={"phone": "07700 900123"},
        ),
    ]


def test_each_system_sees_exactly_the_facts_of_its_own_events() -> None:
    known = knowledge(journey_of(*chat_books_friday_sms_says_saturday()), at(hours=1), SETTINGS)
    assert known.system_names == ("chat-vendor", "dealer-booking", "sms-gateway")
    assert facts(known, "chat-vendor") == {
        ("customer's request", REQUESTED, "requested", "Fri 15 Mar 10:30")
    }
    assert facts(known, "dealer-booking") == {("booking B1", BOOKED, "booked", "Fri 15 Mar 10:30")}
    assert facts(known, "sms-gateway") == {
        ("booking B1", STATED, "told by sms", "Sat 16 Mar 10:30 (by sms)")
    }
    ledger = {(f.subject, f.aspect, f.display, f.system) for f in known.ledger.facts}
    assert ledger == {
        ("customer's request", REQUESTED, "Fri 15 Mar 10:30", "chat-vendor"),
        ("booking B1", BOOKED, "Fri 15 Mar 10:30", "dealer-booking"),
        ("booking B1", STATED, "Sat 16 Mar 10:30 (by sms)", "sms-gateway"),
    }


def test_each_system_sees_exactly_its_own_identifiers_and_the_ledger_all() -> None:
    known = knowledge(journey_of(*chat_books_friday_sms_says_saturday()), at(hours=1), SETTINGS)
    assert idents(known, "chat-vendor") == {("plate", "AB12CDE"), ("anonymous_id", "chat-1")}
    assert idents(known, "dealer-booking") == {("phone", "+447700900123"), ("plate", "AB12CDE")}
    # The SMS operator keyed the number nationally: that is what it held.
    assert idents(known, "sms-gateway") == {("phone", "07700900123")}
    ledger = {(i.kind, i.value): i.systems for i in known.ledger.identifiers}
    assert ledger == {
        ("phone", "+447700900123"): ("dealer-booking", "sms-gateway"),
        ("plate", "AB12CDE"): ("chat-vendor", "dealer-booking"),
        ("anonymous_id", "chat-1"): ("chat-vendor",),
    }
    chat = known.holding("chat-vendor")
    assert chat is not None
    assert chat.names == ("Sam Lee",)
    assert known.holding("sms-gateway") is not None
    assert known.holding("nobody") is None


def test_the_who_knew_what_rows_show_who_did_not_have_the_date() -> None:
    known = knowledge(journey_of(*chat_books_friday_sms_says_saturday()), at(hours=1), SETTINGS)
    rows = {(r.subject, r.aspect): dict(r.by_system) for r in known.rows()}
    booked = rows[("booking B1", BOOKED)]
    assert booked["dealer-booking"] is not None
    assert booked["chat-vendor"] is None
    assert booked["sms-gateway"] is None
    requested = rows[("customer's request", REQUESTED)]
    assert requested["chat-vendor"] is not None
    assert requested["sms-gateway"] is None
    told = rows[("booking B1", STATED)]
    assert [s for s, fact in told.items() if fact is not None] == ["sms-gateway"]


def test_events_after_the_moment_are_not_known() -> None:
    events = chat_books_friday_sms_says_saturday()
    known = knowledge(journey_of(*events), at(minutes=10), SETTINGS)
    assert known.system_names == ("chat-vendor", "dealer-booking")
    assert known.ledger.event_ids == tuple(e.event_id for e in events[:3])


def test_the_latest_word_of_a_system_on_a_subject_is_what_it_held() -> None:
    events = [
        ev("booking.created", {"booking_id": "B1", "slot": FRIDAY}, when=at(), system="dms"),
        ev("booking.changed", {"booking_id": "B1", "slot": SATURDAY}, when=at(1), system="dms"),
        ev("booking.created", {"booking_id": "B2", "slot": "2024-03-20"}, when=at(2), system="dms"),
        ev("booking.cancelled", {"booking_id": "B2"}, when=at(3), system="dms"),
        ev(
            "form.failed",
            {"form": "book", "requested_slot": "2024-03-18"},
            when=at(4),
            system="web",
        ),
    ]
    known = knowledge(journey_of(*events), at(5), SETTINGS)
    assert facts(known, "dms") == {
        ("booking B1", BOOKED, "changed", "moved to Sat 16 Mar 10:30"),
        ("booking B2", BOOKED, "cancelled", "cancelled"),
    }
    assert facts(known, "web") == {
        ("customer's request", REQUESTED, "requested (form failed)", "Mon 18 Mar (form failed)")
    }
    (b1,) = [f for f in known.ledger.facts if f.subject == "booking B1"]
    assert b1.value == SATURDAY


def test_orders_and_payments_per_system() -> None:
    order = {"order_id": "O-1"}
    events = [
        ev(
            "order.placed",
            {**order, "items": ["SKU-1"], "amount": 10, "currency": "GBP"},
            when=at(),
            system="shop",
        ),
        ev(
            "payment.authorised",
            {"payment_id": "P-1", **order, "amount": 10, "currency": "GBP"},
            when=at(1),
            system="cards",
        ),
        ev("order.cancelled", {**order, "reason": "customer"}, when=at(2), system="orders"),
        ev("payment.voided", {"payment_id": "P-1", **order}, when=at(3), system="cards"),
    ]
    known = knowledge(journey_of(*events), at(4), SETTINGS)
    assert facts(known, "shop") == {("order O-1", "state", "placed", "placed (SKU-1; 10.00 GBP)")}
    assert facts(known, "orders") == {("order O-1", "state", "cancelled", "cancelled (customer)")}
    assert facts(known, "cards") == {("payment P-1", "state", "voided", "voided for order O-1")}
    ledger = {(f.subject, f.state, f.system) for f in known.ledger.facts}
    assert ledger == {("order O-1", "cancelled", "orders"), ("payment P-1", "voided", "cards")}


def test_enrolment_and_recall_states_compare_names_loosely() -> None:
    events = [
        ev(
            "enrolment.confirmed",
            {"programme": "Roadside Assist", "effective_from": "2024-03-12"},
            when=at(),
            system="dealer-sales",
        ),
        ev(
            "enrolment.lookup",
            {"programme": "roadside-assist", "found": False},
            when=at(days=2),
            system="roadside-partner",
        ),
        ev("recall.notified", {"recall_code": "RC-1"}, when=at(), system="head-office"),
        ev(
            "recall.lookup",
            {"recall_code": "rc 1", "found": True},
            when=at(days=1),
            system="service",
        ),
    ]
    known = knowledge(journey_of(*events), at(days=3), SETTINGS)
    assert facts(known, "dealer-sales") == {
        ("Roadside Assist", "enrolment", "enrolled", "enrolled on Mon 11 Mar, effective Tue 12 Mar")
    }
    assert facts(known, "roadside-partner") == {
        ("roadside-assist", "lookup", "not found", "looked up on Wed 13 Mar: not found")
    }
    assert facts(known, "head-office") == {
        ("recall RC-1", "recall", "notified", "recorded on Mon 11 Mar")
    }
    assert facts(known, "service") == {
        ("recall rc 1", "lookup", "found", "looked up on Tue 12 Mar: found")
    }
    rows = {(r.topic, r.aspect): dict(r.by_system) for r in known.rows()}
    # One programme whatever the spelling: the partner's "not found" sits beside the enrolment.
    enrolment_row = rows[("enrolment", "lookup")]
    assert enrolment_row["roadside-partner"] is not None
    assert enrolment_row["dealer-sales"] is None
    assert {f.subject_key for f in known.ledger.facts if f.topic == "enrolment"} == {
        "roadsideassist"
    }


def test_free_text_carries_no_facts() -> None:
    event = ev(
        "chat.message",
        {"speaker": "agent", "text": "Booked for Friday 10:30"},
        system="chat-vendor",
    )
    known = knowledge(journey_of(event), at(1), SETTINGS)
    assert known.ledger.facts == ()


def test_knowledge_to_dict_is_json_ready() -> None:
    known = knowledge(journey_of(*chat_books_friday_sms_says_saturday()), at(hours=1), SETTINGS)
    data: dict[str, Any] = orjson.loads(orjson.dumps(knowledge_to_dict(known)))
    assert [s["system"] for s in data["systems"]] == list(known.system_names)
    assert data["ledger"]["system"] is None
    fact = data["systems"][0]["facts"][0]
    assert set(fact) == {
        "topic",
        "subject",
        "subject_key",
        "aspect",
        "state",
        "value",
        "display",
        "at",
        "event_id",
        "system",
    }
    assert fact["value"] == FRIDAY
