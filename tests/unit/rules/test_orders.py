"""DUPLICATE_ORDER and PAYMENT_FOR_CANCELLED_ORDER."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from projections.flags import Flag
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.conftest import flags_of, ids, shuffled

DUPLICATE = "DUPLICATE_ORDER"
PAYMENT = "PAYMENT_FOR_CANCELLED_ORDER"


def order(
    order_id: str,
    hours: float,
    items: list[str] | None = None,
    amount: str | None = None,
    currency: str | None = "GBP",
    system: str = "web-shop",
    customer: dict[str, Any] | None = None,
) -> Event:
    payload: dict[str, Any] = {"order_id": order_id}
    if items is not None:
        payload["items"] = items
    if amount is not None:
        payload["amount"] = amount
        if currency is not None:
            payload["currency"] = currency
    return ev("order.placed", payload, when=at(hours=hours), system=system, customer=customer)


def cancel(order_id: str, hours: float, system: str = "oms") -> Event:
    return ev("order.cancelled", {"order_id": order_id}, when=at(hours=hours), system=system)


def pay(
    kind: str,
    hours: float,
    payment_id: str = "P1",
    order_id: str | None = "O1",
    amount: str | None = "49.99",
) -> Event:
    payload: dict[str, Any] = {"payment_id": payment_id}
    if order_id is not None:
        payload["order_id"] = order_id
    if amount is not None:
        payload["amount"] = amount
        payload["currency"] = "GBP"
    return ev(f"payment.{kind}", payload, when=at(hours=hours), system="payments")


def duplicates(events: list[Event], **overrides: Any) -> list[Flag]:
    return flags_of(events, rule=DUPLICATE, **overrides)


def payments(events: list[Event], **overrides: Any) -> list[Flag]:
    return flags_of(events, rule=PAYMENT, **overrides)


# --- DUPLICATE_ORDER ----------------------------------------------------------------------


def test_same_items_twice_within_a_day_is_flagged() -> None:
    first = order("O1", 0, items=["brake-pads", "wipers"])
    second = order("O2", 2, items=["wipers", "brake-pads"], system="call-centre")
    [flag] = duplicates([first, second])
    assert flag.status == "open"
    assert flag.opened_at == second.occurred_at
    assert set(flag.event_ids) == ids(first, second)
    assert "call-centre: order O2" in flag.message
    assert "order O1 (web-shop)" in flag.message
    assert "2 h" in flag.message
    assert "the same items" in flag.message


def test_different_items_are_not_duplicates() -> None:
    events = [order("O1", 0, items=["brake-pads"]), order("O2", 1, items=["wipers"])]
    assert duplicates(events) == []


def test_item_counts_matter() -> None:
    events = [order("O1", 0, items=["wipers"]), order("O2", 1, items=["wipers", "wipers"])]
    assert duplicates(events) == []


def test_same_amount_without_items_is_flagged_with_the_amount() -> None:
    first = order("O1", 0, amount="1249.50")
    second = order("O2", 5, amount="1249.5")
    [flag] = duplicates([first, second])
    assert "the same amount (1,249.50 GBP)" in flag.message


def test_different_amounts_without_items_are_not_duplicates() -> None:
    assert duplicates([order("O1", 0, amount="10.00"), order("O2", 1, amount="10.01")]) == []


def test_same_amount_in_another_currency_is_not_a_duplicate() -> None:
    events = [order("O1", 0, amount="10.00"), order("O2", 1, amount="10.00", currency="EUR")]
    assert duplicates(events) == []


def test_same_amount_with_different_items_is_not_a_duplicate() -> None:
    events = [
        order("O1", 0, items=["wipers"], amount="20.00"),
        order("O2", 1, items=["bulbs"], amount="20.00"),
    ]
    assert duplicates(events) == []


def test_orders_without_items_or_amount_are_not_compared() -> None:
    assert duplicates([order("O1", 0), order("O2", 1)]) == []


def test_exactly_24_hours_apart_is_within_the_window() -> None:
    events = [order("O1", 0, items=["wipers"]), order("O2", 24, items=["wipers"])]
    assert len(duplicates(events)) == 1


def test_more_than_24_hours_apart_is_not_flagged() -> None:
    events = [order("O1", 0, items=["wipers"]), order("O2", 24.5, items=["wipers"])]
    assert duplicates(events) == []


def test_window_is_configurable() -> None:
    events = [order("O1", 0, items=["wipers"]), order("O2", 30, items=["wipers"])]
    assert len(duplicates(events, duplicate_order_window=timedelta(hours=48))) == 1
    near = [order("O1", 0, items=["wipers"]), order("O2", 3, items=["wipers"])]
    assert duplicates(near, duplicate_order_window=timedelta(hours=2)) == []


def test_orders_of_different_customers_are_not_duplicates() -> None:
    events = [
        order("O1", 0, items=["wipers"], customer={"email": "sam@example.com"}),
        order("O2", 1, items=["wipers"], customer={"email": "alex@example.com"}),
    ]
    assert duplicates(events) == []


def test_order_placed_twice_under_one_id_is_not_a_duplicate() -> None:
    # A producer re-sent the order with a new event id: still one order.
    events = [order("O1", 0, items=["wipers"]), order("O1", 0.1, items=["wipers"])]
    assert duplicates(events) == []


def test_first_cancelled_before_the_second_was_placed_is_not_flagged() -> None:
    events = [
        order("O1", 0, items=["wipers"]),
        cancel("O1", 1),
        order("O2", 2, items=["wipers"]),
    ]
    assert duplicates(events) == []


def test_cancelling_one_resolves_and_the_flag_stays() -> None:
    first = order("O1", 0, items=["wipers"])
    second = order("O2", 2, items=["wipers"])
    end = cancel("O2", 3)
    [flag] = duplicates([first, second, end])
    assert flag.status == "resolved"
    assert flag.opened_at == second.occurred_at
    assert flag.resolved_at == end.occurred_at
    assert end.event_id in flag.event_ids
    assert flag.resolution is not None
    assert "O2" in flag.resolution


def test_cancelling_the_first_later_also_resolves() -> None:
    events = [order("O1", 0, amount="5.00"), order("O2", 2, amount="5.00"), cancel("O1", 30)]
    [flag] = duplicates(events)
    assert flag.resolved_at == at(hours=30)


def test_cancel_of_an_unrelated_order_does_not_resolve() -> None:
    events = [
        order("O1", 0, items=["wipers"]),
        order("O2", 2, items=["wipers"]),
        order("O3", 2.5, items=["bulbs"]),
        cancel("O3", 3),
    ]
    [flag] = duplicates(events)
    assert flag.status == "open"


def test_duplicates_do_not_depend_on_arrival_order() -> None:
    events = [
        order("O1", 0, items=["wipers"]),
        order("O2", 2, items=["wipers"]),
        cancel("O2", 3),
        order("O3", 4, amount="12.00"),
        order("O4", 6, amount="12.00"),
        order("O5", 8, items=["bulbs"]),
        cancel("O5", 9),
        order("O6", 10, items=["bulbs"]),
    ]
    expected = duplicates(events)
    assert [f.status for f in expected] == ["resolved", "open"]
    for arrival in shuffled(events):
        assert duplicates(arrival) == expected


# --- PAYMENT_FOR_CANCELLED_ORDER ----------------------------------------------------------


def test_captured_payment_for_a_cancelled_order_is_flagged() -> None:
    placed = order("O1", 0, amount="49.99")
    captured = pay("captured", 1)
    cancelled = cancel("O1", 2)
    [flag] = payments([placed, captured, cancelled])
    assert flag.status == "open"
    assert flag.opened_at == cancelled.occurred_at
    assert set(flag.event_ids) == ids(captured, cancelled)
    assert flag.severity == "high"
    assert "payments: payment P1 of 49.99 GBP captured for order O1" in flag.message
    assert "oms cancelled on Mon 11 Mar 11:00" in flag.message
    assert "no void or refund" in flag.message


def test_authorised_payment_is_flagged_too() -> None:
    [flag] = payments([pay("authorised", 1), cancel("O1", 2)])
    assert "authorised for order O1" in flag.message


def test_payment_after_the_cancellation_is_flagged_when_it_is_taken() -> None:
    cancelled = cancel("O1", 1)
    captured = pay("captured", 3)
    [flag] = payments([cancelled, captured])
    assert flag.opened_at == captured.occurred_at


def test_payment_for_an_order_that_stands_is_not_flagged() -> None:
    assert payments([order("O1", 0), pay("captured", 1), cancel("O2", 2)]) == []


def test_payment_without_an_order_id_is_not_flagged() -> None:
    assert payments([pay("captured", 1, order_id=None), cancel("O1", 2)]) == []


def test_declined_payment_is_not_flagged() -> None:
    assert payments([pay("declined", 1), cancel("O1", 2)]) == []


def test_order_id_from_the_void_links_the_payment() -> None:
    # The capture does not name the order; the later refund does.
    events = [pay("captured", 1, order_id=None), cancel("O1", 2), pay("refunded", 5)]
    [flag] = payments(events)
    assert flag.status == "resolved"


def test_void_resolves() -> None:
    authorised = pay("authorised", 1)
    cancelled = cancel("O1", 2)
    voided = pay("voided", 4, amount=None)
    [flag] = payments([authorised, cancelled, voided])
    assert flag.status == "resolved"
    assert flag.resolved_at == voided.occurred_at
    assert voided.event_id in flag.event_ids
    assert flag.resolution is not None
    assert "payments voided payment P1" in flag.resolution


def test_refund_resolves() -> None:
    refund = pay("refunded", 26)
    [flag] = payments([pay("captured", 1), cancel("O1", 2), refund])
    assert flag.status == "resolved"
    assert flag.resolved_at == refund.occurred_at
    assert flag.resolution is not None
    assert "refunded" in flag.resolution


def test_refund_of_another_payment_does_not_resolve() -> None:
    events = [pay("captured", 1), cancel("O1", 2), pay("refunded", 3, payment_id="P2")]
    [flag] = payments(events)
    assert flag.status == "open"


def test_voided_before_the_cancellation_is_not_flagged() -> None:
    assert payments([pay("authorised", 1), pay("voided", 1.5), cancel("O1", 2)]) == []


def test_refunded_before_the_cancellation_is_not_flagged() -> None:
    assert payments([pay("captured", 1), pay("refunded", 1.5), cancel("O1", 2)]) == []


def test_each_payment_of_a_cancelled_order_is_flagged() -> None:
    events = [
        pay("authorised", 1, payment_id="P1"),
        pay("authorised", 1.5, payment_id="P2"),
        cancel("O1", 2),
        pay("voided", 3, payment_id="P1"),
    ]
    flags = payments(events)
    assert len(flags) == 2
    by_payment = {("P1" in f.message): f.status for f in flags}
    assert by_payment == {True: "resolved", False: "open"}


def test_authorise_then_capture_is_one_flag_pointing_at_both() -> None:
    authorised = pay("authorised", 1)
    captured = pay("captured", 2)
    cancelled = cancel("O1", 3)
    [flag] = payments([authorised, captured, cancelled])
    assert set(flag.event_ids) == ids(authorised, captured, cancelled)


def test_payments_do_not_depend_on_arrival_order() -> None:
    events = [
        order("O1", 0, amount="49.99"),
        pay("authorised", 0.5),
        pay("captured", 1),
        cancel("O1", 2),
        cancel("O2", 2.5),
        pay("captured", 3, payment_id="P2", order_id="O2"),
        pay("refunded", 6),
        pay("authorised", 7, payment_id="P3", order_id="O3"),
        pay("voided", 7.5, payment_id="P3", order_id="O3"),
        cancel("O3", 8),
    ]
    expected = payments(events)
    assert sorted(f.status for f in expected) == ["open", "resolved"]
    for arrival in shuffled(events):
        assert payments(arrival) == expected
