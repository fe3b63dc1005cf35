"""DATE_MISMATCH: a stated or requested slot that is not the booked slot."""

from __future__ import annotations

from typing import Any

import pytest

from projections.flags import Flag
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.conftest import flags_of, ids, shuffled

RULE = "DATE_MISMATCH"


def booked(slot: str, booking_id: str = "B1", hours: float = 0, kind: str = "created") -> Event:
    return ev(
        f"booking.{kind}",
        {"booking_id": booking_id, "slot": slot, "service": "MOT"},
        when=at(hours=hours),
        system="booking",
    )


def told(stated: str, hours: float = 1, booking_id: str | None = None) -> Event:
    payload: dict[str, object] = {"medium": "sms", "stated_slot": stated}
    if booking_id is not None:
        payload["booking_id"] = booking_id
    return ev("message.sent", payload, when=at(hours=hours), system="sms-gateway")


def cancelled(booking_id: str, hours: float) -> Event:
    return ev(
        "booking.cancelled", {"booking_id": booking_id}, when=at(hours=hours), system="booking"
    )


def asked(slot: str, hours: float = -1, kind: str = "form.submitted") -> Event:
    if kind == "chat.message":
        payload: dict[str, object] = {"speaker": "customer", "requested_slot": slot}
        return ev(kind, payload, when=at(hours=hours), system="chat-vendor")
    return ev(kind, {"form": "book-service", "requested_slot": slot}, when=at(hours=hours))


def mismatches(events: list[Event], **overrides: Any) -> list[Flag]:
    return flags_of(events, rule=RULE, **overrides)


# --- message vs booking -------------------------------------------------------------------


def test_message_stating_another_day_than_the_booking_is_flagged() -> None:
    booking = booked("2024-03-15T10:30:00+00:00")
    sms = told("2024-03-16T10:30:00+00:00")
    [flag] = mismatches([booking, sms])
    assert flag.status == "open"
    assert flag.resolved_at is None
    assert flag.opened_at == sms.occurred_at
    assert set(flag.event_ids) == ids(booking, sms)
    assert flag.severity == "high"


def test_message_names_both_systems_and_both_slots() -> None:
    [flag] = mismatches([booked("2024-03-15T10:30:00+00:00"), told("2024-03-16T10:30:00+00:00")])
    assert "booking: Fri 15 Mar 10:30" in flag.message
    assert "sms-gateway told the customer: Sat 16 Mar 10:30" in flag.message
    assert flag.systems == ("booking", "sms-gateway")


def test_same_day_other_time_is_flagged() -> None:
    [flag] = mismatches([booked("2024-03-15T10:30:00+00:00"), told("2024-03-15T14:00:00+00:00")])
    assert "Fri 15 Mar 10:30" in flag.message
    assert "Fri 15 Mar 14:00" in flag.message


def test_message_stating_the_booked_slot_is_not_flagged() -> None:
    assert (
        mismatches([booked("2024-03-15T10:30:00+00:00"), told("2024-03-15T10:30:00+00:00")]) == []
    )


def test_message_without_a_stated_slot_is_not_flagged() -> None:
    sms = ev("message.sent", {"medium": "sms", "text": "See you soon"}, when=at(hours=1))
    assert mismatches([booked("2024-03-15T10:30:00+00:00"), sms]) == []


def test_message_with_no_booking_at_all_is_not_flagged() -> None:
    assert (
        mismatches([ev("form.submitted", {"form": "x"}), told("2024-03-16T10:30:00+00:00")]) == []
    )


# --- offsets: the local date and time as written ------------------------------------------


def test_same_local_time_in_different_offsets_is_not_a_mismatch() -> None:
    events = [booked("2024-03-15T10:30:00+00:00"), told("2024-03-15T10:30:00+01:00")]
    assert mismatches(events) == []


def test_same_instant_written_with_another_local_time_is_a_mismatch() -> None:
    # 09:30Z and 10:30+01:00 are one instant, but the customer reads 10:30 vs 09:30.
    [flag] = mismatches([booked("2024-03-15T09:30:00Z"), told("2024-03-15T10:30:00+01:00")])
    assert "Fri 15 Mar 09:30" in flag.message
    assert "Fri 15 Mar 10:30" in flag.message


def test_local_date_is_read_in_the_slots_own_offset() -> None:
    # 23:30-05:00 on the 15th is the 16th in UTC; the booking's date as written is the 15th.
    events = [booked("2024-03-15T23:30:00-05:00"), told("2024-03-15")]
    assert mismatches(events) == []
    [flag] = mismatches([booked("2024-03-15T23:30:00-05:00"), told("2024-03-16")])
    assert "booking: Fri 15 Mar 23:30" in flag.message
    assert "told the customer: Sat 16 Mar" in flag.message


def test_date_only_slot_is_compared_by_date_only() -> None:
    assert mismatches([booked("2024-03-15"), told("2024-03-15T16:45:00+00:00")]) == []
    assert mismatches([booked("2024-03-15T08:00:00+00:00"), told("2024-03-15")]) == []


def test_date_only_slot_on_another_day_is_flagged() -> None:
    [flag] = mismatches([booked("2024-03-15"), told("2024-03-18T10:30:00+00:00")])
    assert "booking: Fri 15 Mar (booking B1)" in flag.message
    assert "Mon 18 Mar 10:30" in flag.message


# --- which booking the message is compared with -------------------------------------------


def test_named_booking_is_the_one_compared() -> None:
    first = booked("2024-03-15T10:30:00+00:00", "B1")
    second = booked("2024-03-16T10:30:00+00:00", "B2", hours=0.5)
    # Matches B2's slot, but the message names B1.
    sms = told("2024-03-16T10:30:00+00:00", booking_id="B1")
    [flag] = mismatches([first, second, sms])
    assert set(flag.event_ids) == ids(first, sms)
    assert "booking B1" in flag.message
    assert "B2" not in flag.message


def test_named_booking_matching_is_not_flagged_even_if_others_differ() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00", "B1"),
        booked("2024-03-16T10:30:00+00:00", "B2", hours=0.5),
        told("2024-03-16T10:30:00+00:00", booking_id="B2"),
    ]
    assert mismatches(events) == []


def test_unnamed_message_matching_any_active_booking_is_not_flagged() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00", "B1"),
        booked("2024-03-16T10:30:00+00:00", "B2", hours=0.5),
        told("2024-03-16T10:30:00+00:00"),
    ]
    assert mismatches(events) == []


def test_unnamed_message_differing_from_every_active_booking_lists_them_all() -> None:
    first = booked("2024-03-15T10:30:00+00:00", "B1")
    second = booked("2024-03-16T10:30:00+00:00", "B2", hours=0.5)
    sms = told("2024-03-17T10:30:00+00:00")
    [flag] = mismatches([first, second, sms])
    assert set(flag.event_ids) == ids(first, second, sms)
    assert "Fri 15 Mar 10:30 (booking B1)" in flag.message
    assert "Sat 16 Mar 10:30 (booking B2)" in flag.message
    assert "Sun 17 Mar 10:30" in flag.message


def test_unnamed_message_ignores_cancelled_bookings() -> None:
    active = booked("2024-03-15T10:30:00+00:00", "B1")
    gone = booked("2024-03-16T10:30:00+00:00", "B2", hours=0.5)
    cancel = cancelled("B2", hours=0.75)
    # States the cancelled booking's slot: differs from the only active booking.
    sms = told("2024-03-16T10:30:00+00:00")
    [flag] = mismatches([active, gone, cancel, sms])
    assert set(flag.event_ids) == ids(active, sms)
    assert "B2" not in flag.message


def test_unnamed_message_after_every_booking_was_cancelled_is_not_flagged() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00", "B1"),
        cancelled("B1", hours=0.5),
        told("2024-03-16T10:30:00+00:00"),
    ]
    assert mismatches(events) == []


def test_cancellation_after_the_message_does_not_matter() -> None:
    active = booked("2024-03-15T10:30:00+00:00", "B1")
    other = booked("2024-03-16T10:30:00+00:00", "B2", hours=0.5)
    sms = told("2024-03-16T10:30:00+00:00", hours=1)
    later_cancel = cancelled("B2", hours=2)
    # At the moment of the message B2 was active and matched.
    assert mismatches([active, other, sms, later_cancel]) == []


def test_message_compared_with_the_slot_after_a_change() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00"),
        booked("2024-03-18T09:00:00+00:00", hours=0.5, kind="changed"),
        told("2024-03-18T09:00:00+00:00"),
    ]
    assert mismatches(events) == []
    stale = [*events[:2], told("2024-03-15T10:30:00+00:00")]
    [flag] = mismatches(stale)
    assert "booking: Mon 18 Mar 09:00" in flag.message
    assert "told the customer: Fri 15 Mar 10:30" in flag.message


# --- booking vs the customer's request ----------------------------------------------------


@pytest.mark.parametrize("kind", ["form.submitted", "form.failed", "chat.message"])
def test_booking_other_than_the_requested_slot_is_flagged(kind: str) -> None:
    request = asked("2024-03-15T10:30:00+00:00", kind=kind)
    booking = booked("2024-03-15T11:30:00+00:00")
    [flag] = mismatches([request, booking])
    assert flag.opened_at == booking.occurred_at
    assert set(flag.event_ids) == ids(request, booking)
    assert f"customer asked {request.source.system} for Fri 15 Mar 10:30" in flag.message
    assert "booking booked Fri 15 Mar 11:30 (booking B1)" in flag.message


def test_booking_of_the_requested_slot_is_not_flagged() -> None:
    events = [asked("2024-03-15T10:30:00+00:00"), booked("2024-03-15T10:30:00+00:00")]
    assert mismatches(events) == []


def test_requested_date_only_matches_any_time_that_day() -> None:
    assert mismatches([asked("2024-03-15"), booked("2024-03-15T14:00:00+00:00")]) == []


def test_only_the_last_request_before_creation_counts() -> None:
    events = [
        asked("2024-03-14T10:30:00+00:00", hours=-3),
        asked("2024-03-15T10:30:00+00:00", hours=-2, kind="chat.message"),
        booked("2024-03-15T10:30:00+00:00"),
    ]
    assert mismatches(events) == []
    flipped = [
        asked("2024-03-15T10:30:00+00:00", hours=-3, kind="chat.message"),
        asked("2024-03-14T10:30:00+00:00", hours=-2),
        booked("2024-03-15T10:30:00+00:00"),
    ]
    [flag] = mismatches(flipped)
    assert "Thu 14 Mar 10:30" in flag.message


def test_request_after_the_booking_was_created_is_not_compared() -> None:
    events = [booked("2024-03-15T10:30:00+00:00"), asked("2024-03-20T10:30:00+00:00", hours=1)]
    assert mismatches(events) == []


def test_agent_chat_slot_is_not_a_customer_request() -> None:
    agent = ev(
        "chat.message",
        {"speaker": "agent", "requested_slot": "2024-03-14T10:30:00+00:00"},
        when=at(hours=-1),
        system="chat-vendor",
    )
    assert mismatches([agent, booked("2024-03-15T10:30:00+00:00")]) == []


# --- resolution ---------------------------------------------------------------------------


def test_later_message_stating_the_booked_slot_resolves() -> None:
    booking = booked("2024-03-15T10:30:00+00:00")
    wrong = told("2024-03-16T10:30:00+00:00", hours=1)
    right = told("2024-03-15T10:30:00+00:00", hours=3)
    [flag] = mismatches([booking, wrong, right])
    assert flag.status == "resolved"
    assert flag.resolved_at == right.occurred_at
    assert flag.opened_at == wrong.occurred_at
    assert set(flag.event_ids) == ids(booking, wrong, right)
    assert flag.resolution is not None
    assert "Fri 15 Mar 10:30" in flag.resolution


def test_another_wrong_message_does_not_resolve() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00"),
        told("2024-03-16T10:30:00+00:00", hours=1),
        told("2024-03-17T10:30:00+00:00", hours=2),
    ]
    [flag] = mismatches(events)
    assert flag.status == "open"
    assert set(flag.event_ids) == {e.event_id for e in events}


def test_changing_the_booking_to_the_communicated_slot_resolves() -> None:
    booking = booked("2024-03-15T10:30:00+00:00")
    sms = told("2024-03-16T10:30:00+00:00", hours=1)
    change = booked("2024-03-16T10:30:00+00:00", hours=2, kind="changed")
    [flag] = mismatches([booking, sms, change])
    assert flag.status == "resolved"
    assert flag.resolved_at == change.occurred_at
    assert change.event_id in flag.event_ids


def test_changing_the_booking_to_a_third_slot_does_not_resolve() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00"),
        told("2024-03-16T10:30:00+00:00", hours=1),
        booked("2024-03-17T10:30:00+00:00", hours=2, kind="changed"),
    ]
    [flag] = mismatches(events)
    assert flag.status == "open"


def test_message_stating_the_new_slot_after_a_change_resolves() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00"),
        told("2024-03-16T10:30:00+00:00", hours=1),
        booked("2024-03-18T09:00:00+00:00", hours=2, kind="changed"),
        told("2024-03-18T09:00:00+00:00", hours=3),
    ]
    [flag] = mismatches(events)
    assert flag.status == "resolved"
    assert flag.resolved_at == at(hours=3)


def test_date_only_communication_is_met_by_a_change_to_a_time_that_day() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00"),
        told("2024-03-16", hours=1),
        booked("2024-03-16T14:00:00+00:00", hours=2, kind="changed"),
    ]
    [flag] = mismatches(events)
    assert flag.status == "resolved"


def test_request_mismatch_resolves_when_booking_moves_to_the_requested_slot() -> None:
    request = asked("2024-03-15T10:30:00+00:00")
    booking = booked("2024-03-15T11:30:00+00:00")
    change = booked("2024-03-15T10:30:00+00:00", hours=2, kind="changed")
    [flag] = mismatches([request, booking, change])
    assert flag.status == "resolved"
    assert flag.resolved_at == change.occurred_at


def test_request_mismatch_resolves_when_a_message_states_the_booked_slot() -> None:
    request = asked("2024-03-15T10:30:00+00:00")
    booking = booked("2024-03-15T11:30:00+00:00")
    sms = told("2024-03-15T11:30:00+00:00", hours=1)
    [flag] = mismatches([request, booking, sms])
    assert flag.status == "resolved"
    assert flag.resolved_at == sms.occurred_at


def test_message_for_another_booking_does_not_resolve() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00", "B1"),
        booked("2024-03-20T10:30:00+00:00", "B2", hours=0.5),
        told("2024-03-16T10:30:00+00:00", hours=1, booking_id="B1"),
        told("2024-03-20T10:30:00+00:00", hours=2, booking_id="B2"),
    ]
    [flag] = mismatches(events)
    assert flag.status == "open"


def test_resolved_flag_stays_listed_with_an_open_one() -> None:
    events = [
        booked("2024-03-15T10:30:00+00:00"),
        told("2024-03-16T10:30:00+00:00", hours=1),
        told("2024-03-15T10:30:00+00:00", hours=2),
        told("2024-03-18T10:30:00+00:00", hours=3),
    ]
    flags = mismatches(events)
    assert [f.status for f in flags] == ["resolved", "open"]
    assert flags[1].opened_at == at(hours=3)


# --- arrival order ------------------------------------------------------------------------


def test_result_does_not_depend_on_arrival_order() -> None:
    events = [
        asked("2024-03-15T10:30:00+00:00", hours=-2),
        booked("2024-03-15T11:30:00+00:00", "B1"),
        booked("2024-03-16T09:00:00+01:00", "B2", hours=0.5),
        told("2024-03-17T10:30:00+00:00", hours=1),
        cancelled("B2", hours=1.5),
        told("2024-03-15T11:30:00+00:00", hours=2, booking_id="B1"),
        booked("2024-03-17T10:30:00+00:00", "B1", hours=3, kind="changed"),
    ]
    expected = mismatches(events)
    assert len(expected) == 2
    for order in shuffled(events):
        assert mismatches(order) == expected


def test_disabled_rule_flags_nothing() -> None:
    events = [booked("2024-03-15T10:30:00+00:00"), told("2024-03-16T10:30:00+00:00")]
    others = frozenset({"DUPLICATE_ORDER"})
    assert mismatches(events, enabled=others) == []
    assert len(mismatches(events)) == 1
