"""UNANSWERED_ENQUIRY: the customer reached out and nobody answered within the window."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from projections.flags import Flag
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.conftest import flags_of, ids, shuffled

RULE = "UNANSWERED_ENQUIRY"

ENQUIRIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "form.submitted": ("form.submitted", {"form": "contact-us"}, "a form"),
    "form.failed": ("form.failed", {"form": "contact-us", "error": "500"}, "a form that failed"),
    "message.received": ("message.received", {"medium": "email", "text": "Hello?"}, "a message"),
    "chat.message": ("chat.message", {"speaker": "customer", "text": "Hi"}, "a chat message"),
}

RESPONSES: dict[str, tuple[str, dict[str, Any]]] = {
    "enquiry.responded": ("enquiry.responded", {"via": "email"}),
    "booking.created": ("booking.created", {"booking_id": "B1", "slot": "2024-03-15"}),
    "booking.changed": ("booking.changed", {"booking_id": "B1", "slot": "2024-03-15"}),
    "message.sent": ("message.sent", {"medium": "email", "text": "We will call you"}),
    "outbound call": ("call.logged", {"direction": "outbound"}),
    "agent chat": ("chat.message", {"speaker": "agent", "text": "How can I help?"}),
}


def enquiry(hours: float = 0, kind: str = "form.submitted") -> Event:
    type_, payload, _ = ENQUIRIES[kind]
    return ev(type_, payload, when=at(hours=hours), system="website")


def response(hours: float, kind: str = "enquiry.responded") -> Event:
    type_, payload = RESPONSES[kind]
    return ev(type_, payload, when=at(hours=hours), system="service-desk")


def unanswered(
    events: list[Event], as_of_hours: float | None = None, **overrides: Any
) -> list[Flag]:
    as_of = at(hours=as_of_hours) if as_of_hours is not None else None
    return flags_of(events, as_of, rule=RULE, **overrides)


# --- opening ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(ENQUIRIES))
def test_each_enquiry_kind_unanswered_for_a_day_is_flagged(kind: str) -> None:
    asked = enquiry(kind=kind)
    [flag] = unanswered([asked], as_of_hours=25)
    assert flag.status == "open"
    assert flag.opened_at == asked.occurred_at + timedelta(hours=24)
    assert flag.event_ids == (asked.event_id,)
    assert f"customer sent website {ENQUIRIES[kind][2]}" in flag.message
    assert "on Mon 11 Mar 09:00" in flag.message
    assert "no response within 24 h" in flag.message


def test_not_flagged_before_the_window_has_passed() -> None:
    assert unanswered([enquiry()], as_of_hours=23) == []


def test_not_flagged_at_exactly_the_deadline() -> None:
    assert unanswered([enquiry()], as_of_hours=24) == []


def test_as_of_defaults_to_the_latest_event() -> None:
    # Without an explicit as_of the fold stops at the enquiry itself: nothing has passed.
    assert unanswered([enquiry()]) == []
    later = ev("survey.responded", {"score": 3}, when=at(hours=30))
    assert len(unanswered([enquiry(), later])) == 1


def test_bot_reply_is_not_a_response() -> None:
    bot = ev(
        "chat.message", {"speaker": "bot", "text": "An agent will be with you"}, when=at(hours=0.1)
    )
    [flag] = unanswered([enquiry(kind="chat.message"), bot], as_of_hours=25)
    assert bot.event_id not in flag.event_ids


def test_inbound_call_is_not_a_response() -> None:
    call = ev("call.logged", {"direction": "inbound"}, when=at(hours=1))
    assert len(unanswered([enquiry(), call], as_of_hours=25)) == 1


def test_agent_chat_line_is_not_an_enquiry() -> None:
    agent = ev("chat.message", {"speaker": "agent", "text": "Anything else?"}, when=at(hours=0))
    assert unanswered([agent], as_of_hours=48) == []


def test_other_events_are_not_enquiries() -> None:
    events = [
        ev("survey.responded", {"score": 2}, when=at(hours=0)),
        ev("order.placed", {"order_id": "O1"}, when=at(hours=1)),
    ]
    assert unanswered(events, as_of_hours=48) == []


# --- responses ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RESPONSES))
def test_each_response_kind_in_time_prevents_the_flag(kind: str) -> None:
    assert unanswered([enquiry(), response(3, kind)], as_of_hours=72) == []


def test_response_at_exactly_the_deadline_is_in_time() -> None:
    assert unanswered([enquiry(), response(24)], as_of_hours=72) == []


def test_response_before_the_enquiry_does_not_answer_it() -> None:
    assert len(unanswered([response(-1), enquiry()], as_of_hours=25)) == 1


@pytest.mark.parametrize("kind", sorted(RESPONSES))
def test_late_response_resolves_and_the_flag_stays(kind: str) -> None:
    asked = enquiry()
    late = response(30, kind)
    [flag] = unanswered([asked, late], as_of_hours=72)
    assert flag.status == "resolved"
    assert flag.opened_at == at(hours=24)
    assert flag.resolved_at == late.occurred_at
    assert set(flag.event_ids) == ids(asked, late)
    assert flag.resolution is not None
    assert "service-desk responded after 30 h" in flag.resolution


def test_enquiries_waiting_together_make_one_flag() -> None:
    first = enquiry(0)
    second = enquiry(5, kind="message.received")
    [flag] = unanswered([first, second], as_of_hours=26)
    assert flag.opened_at == at(hours=24)
    assert set(flag.event_ids) == ids(first, second)
    assert "(2 enquiries waiting)" in flag.message


def test_window_runs_from_the_first_waiting_enquiry() -> None:
    # The second enquiry is recent, but the first has waited more than a day.
    events = [enquiry(0), enquiry(20, kind="chat.message")]
    assert len(unanswered(events, as_of_hours=25)) == 1


def test_new_enquiry_after_a_response_starts_a_new_window() -> None:
    events = [enquiry(0), response(2), enquiry(10)]
    assert unanswered(events, as_of_hours=30) == []
    [flag] = unanswered(events, as_of_hours=35)
    assert flag.opened_at == at(hours=34)
    assert flag.event_ids == (events[2].event_id,)


def test_answered_then_unanswered_lists_both_flags() -> None:
    events = [enquiry(0), response(40), enquiry(50)]
    flags = unanswered(events, as_of_hours=80)
    assert [f.status for f in flags] == ["resolved", "open"]
    assert [f.opened_at for f in flags] == [at(hours=24), at(hours=74)]


# --- thresholds and order -----------------------------------------------------------------


def test_window_is_configurable() -> None:
    twelve = timedelta(hours=12)
    assert unanswered([enquiry()], as_of_hours=11, enquiry_response_window=twelve) == []
    [flag] = unanswered([enquiry()], as_of_hours=13, enquiry_response_window=twelve)
    assert flag.opened_at == at(hours=12)
    assert "no response within 12 h" in flag.message
    # An answer after 13 h is late for a 12 h window but in time for the default.
    answered = [enquiry(), response(13)]
    assert len(unanswered(answered, as_of_hours=40, enquiry_response_window=twelve)) == 1
    assert unanswered(answered, as_of_hours=40) == []


def test_unanswered_does_not_depend_on_arrival_order() -> None:
    events = [
        enquiry(0, kind="chat.message"),
        ev("chat.message", {"speaker": "bot", "text": "Please wait"}, when=at(hours=0.1)),
        enquiry(1, kind="form.failed"),
        response(28, "outbound call"),
        enquiry(40, kind="message.received"),
        response(41, "message.sent"),
        enquiry(60, kind="form.submitted"),
    ]
    expected = unanswered(events, as_of_hours=90)
    assert [f.status for f in expected] == ["resolved", "open"]
    for arrival in shuffled(events):
        assert unanswered(arrival, as_of_hours=90) == expected
