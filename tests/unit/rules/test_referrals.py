"""REFERRAL_LOOP: the customer is sent back and forth between parties."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from projections.flags import Flag
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.conftest import flags_of, ids, shuffled

RULE = "REFERRAL_LOOP"


def refer(source: str, target: str, hours: float) -> Event:
    return ev(
        "referral.made",
        {"to": target, "reason": "not our department"},
        when=at(hours=hours),
        system=source,
    )


def transfer(source: str, target: str, hours: float) -> Event:
    return ev(
        "call.logged",
        {"direction": "inbound", "transferred_to": target},
        when=at(hours=hours),
        system=source,
    )


def loops(events: list[Event], **overrides: Any) -> list[Flag]:
    return flags_of(events, rule=RULE, **overrides)


# --- back and forth -----------------------------------------------------------------------


def test_referred_back_to_the_party_that_referred_them_is_flagged() -> None:
    out = refer("dealer", "roadside-partner", 0)
    back = refer("roadside-partner", "dealer", 5)
    [flag] = loops([out, back])
    assert flag.status == "open"
    assert flag.opened_at == back.occurred_at
    assert set(flag.event_ids) == ids(out, back)
    assert flag.severity == "medium"


def test_message_names_the_parties_and_when() -> None:
    [flag] = loops([refer("dealer", "roadside-partner", 0), refer("roadside-partner", "dealer", 5)])
    assert "2 times in 5 h" in flag.message
    assert "dealer → roadside-partner (Mon 11 Mar 09:00)" in flag.message
    assert "roadside-partner → dealer (Mon 11 Mar 14:00)" in flag.message


def test_back_and_forth_by_call_transfers_is_flagged() -> None:
    events = [transfer("call-centre", "finance", 0), transfer("finance", "call-centre", 0.2)]
    assert len(loops(events)) == 1


def test_referral_then_transfer_back_is_flagged() -> None:
    events = [refer("dealer", "warranty-desk", 0), transfer("warranty-desk", "dealer", 1)]
    assert len(loops(events)) == 1


def test_party_names_compare_without_case_or_extra_spaces() -> None:
    events = [refer("dealer", "Roadside  Partner", 0), refer("roadside partner", "DEALER", 1)]
    assert len(loops(events)) == 1


def test_back_and_forth_weeks_apart_is_still_a_loop() -> None:
    events = [refer("dealer", "roadside-partner", 0), refer("roadside-partner", "dealer", 24 * 14)]
    [flag] = loops(events)
    assert "14 days" in flag.message


def test_onward_referral_is_not_a_loop() -> None:
    assert (
        loops([refer("dealer", "roadside-partner", 0), refer("roadside-partner", "insurer", 1)])
        == []
    )


def test_same_referral_twice_is_not_a_loop() -> None:
    assert (
        loops([refer("dealer", "roadside-partner", 0), refer("dealer", "roadside-partner", 1)])
        == []
    )


def test_referral_to_oneself_is_not_a_handoff() -> None:
    events = [refer("dealer", "Dealer", 0), refer("dealer", "dealer", 1), refer("dealer", "x", 2)]
    assert loops(events) == []


def test_call_without_a_transfer_is_not_a_handoff() -> None:
    calls = [
        ev("call.logged", {"direction": "inbound", "outcome": "answered"}, when=at(hours=h))
        for h in (0, 1, 2, 3)
    ]
    assert loops(calls) == []


def test_back_and_forth_of_another_customer_is_not_joined() -> None:
    out = refer("dealer", "roadside-partner", 0)
    back = ev(
        "referral.made",
        {"to": "dealer"},
        when=at(hours=1),
        system="roadside-partner",
        customer={"email": "alex@example.com"},
    )
    assert loops([out, back]) == []


# --- too many handoffs --------------------------------------------------------------------


def test_three_handoffs_within_72_hours_are_flagged() -> None:
    events = [
        refer("dealer", "roadside-partner", 0),
        transfer("roadside-partner", "insurer", 30),
        refer("insurer", "body-shop", 70),
    ]
    [flag] = loops(events)
    assert flag.opened_at == at(hours=70)
    assert set(flag.event_ids) == ids(*events)
    assert "3 times in 70 h" in flag.message
    assert "insurer → body-shop (Thu 14 Mar 07:00)" in flag.message


def test_two_handoffs_are_not_enough() -> None:
    assert (
        loops([refer("dealer", "roadside-partner", 0), refer("roadside-partner", "insurer", 1)])
        == []
    )


def test_three_handoffs_spread_over_a_week_are_not_flagged() -> None:
    events = [
        refer("dealer", "roadside-partner", 0),
        refer("roadside-partner", "insurer", 24 * 3.5),
        refer("insurer", "body-shop", 24 * 7),
    ]
    assert loops(events) == []


def test_exactly_72_hours_is_within_the_window() -> None:
    events = [
        refer("dealer", "roadside-partner", 0),
        refer("roadside-partner", "insurer", 36),
        refer("insurer", "body-shop", 72),
    ]
    assert len(loops(events)) == 1


def test_further_handoffs_join_the_open_flag() -> None:
    events = [
        refer("a", "b", 0),
        refer("b", "c", 1),
        refer("c", "d", 2),
        refer("d", "e", 3),
    ]
    [flag] = loops(events)
    assert flag.opened_at == at(hours=2)
    assert set(flag.event_ids) == ids(*events)
    assert "4 times" in flag.message
    assert flag.resolved_at is None


def test_loops_far_apart_are_separate_flags() -> None:
    week = 24 * 7
    events = [
        refer("a", "b", 0),
        refer("b", "a", 1),
        refer("c", "d", week),
        refer("d", "e", week + 1),
        refer("e", "f", week + 2),
    ]
    flags = loops(events)
    assert [f.opened_at for f in flags] == [at(hours=1), at(hours=week + 2)]


# --- thresholds and order -----------------------------------------------------------------


def test_window_and_count_are_configurable() -> None:
    spread = [refer("a", "b", 0), refer("b", "c", 24 * 3.5), refer("c", "d", 24 * 7)]
    assert len(loops(spread, referral_window=timedelta(days=7))) == 1
    two = [refer("a", "b", 0), refer("b", "c", 1)]
    assert len(loops(two, referral_count=2)) == 1
    three = [refer("a", "b", 0), refer("b", "c", 1), refer("c", "d", 2)]
    assert loops(three, referral_count=4) == []
    assert loops(three, referral_window=timedelta(hours=1)) == []


def test_referral_loop_does_not_depend_on_arrival_order() -> None:
    events = [
        refer("dealer", "roadside-partner", 0),
        transfer("roadside-partner", "insurer", 2),
        refer("insurer", "dealer", 3),
        refer("dealer", "dealer", 4),
        transfer("call-centre", "finance", 200),
        transfer("finance", "call-centre", 201),
        ev("call.logged", {"direction": "inbound"}, when=at(hours=202)),
    ]
    expected = loops(events)
    assert [f.opened_at for f in expected] == [at(hours=3), at(hours=201)]
    for arrival in shuffled(events):
        assert loops(arrival) == expected
