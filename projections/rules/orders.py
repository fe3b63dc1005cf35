"""DUPLICATE_ORDER and PAYMENT_FOR_CANCELLED_ORDER: orders and card payments that disagree."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from projections.formatting import format_duration, format_moment
from projections.rules.readers import money
from projections.rules.rule import NoDeadline, Rule, event_types
from schemas.events import (
    Event,
    OrderCancelled,
    OrderPlaced,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentRefunded,
    PaymentVoided,
)

if TYPE_CHECKING:
    from projections.settings import RuleSettings


def _same_basket(a: OrderPlaced, b: OrderPlaced) -> str | None:
    """What makes two orders the same (items, or amount when items are missing), or None."""
    items_a, items_b = a.payload.items, b.payload.items
    if items_a and items_b:
        return "the same items" if sorted(items_a) == sorted(items_b) else None
    amount_a, amount_b = a.payload.amount, b.payload.amount
    if amount_a is None or amount_b is None or amount_a != amount_b:
        return None
    if a.payload.currency != b.payload.currency:
        return None
    return f"the same amount ({money(amount_a, a.payload.currency) or ''})"


def _pair(
    first: OrderPlaced, second: OrderPlaced, alike: str, cancels: dict[str, OrderCancelled]
) -> FlagDraft | None:
    """The flag of two orders alike within the window, given the first cancel of each order."""
    ends = [c for o in (first, second) if (c := cancels.get(o.payload.order_id))]
    # Both live at some moment: neither was cancelled before the second was placed.
    if any(c.occurred_at <= second.occurred_at for c in ends):
        return None
    gap = second.occurred_at - first.occurred_at
    message = (
        f"{second.source.system}: order {second.payload.order_id} placed "
        f"{format_duration(gap)} after order {first.payload.order_id} "
        f"({first.source.system}) with {alike}; both stood"
    )
    draft = DUPLICATE_ORDER.draft(
        f"{first.event_id}\x00{second.event_id}", message, second.occurred_at, [first, second]
    )
    if ends:
        cancel = min(ends, key=lambda c: (c.occurred_at, c.event_id))
        draft.resolve(
            cancel.occurred_at,
            f"{cancel.source.system} cancelled order {cancel.payload.order_id}",
            cancel,
        )
    return draft


class _Duplicates(NoDeadline):
    """Two orders alike within the window, both live at some moment; resolved by a cancel.

    Each pair is found when its second order is placed (looking back only over the orders
    placed within the window), and its flag made again only when a cancel of one of them comes.
    """

    stale = False

    def __init__(self, rules: RuleSettings, ahead: Sequence[Event] = ()) -> None:
        del ahead  # looks only back
        self.window = rules.duplicate_order_window
        self.placed: deque[OrderPlaced] = deque()
        """The orders placed within the window of the last one, in journey order."""
        self.placed_ids: set[str] = set()
        self.cancels: dict[str, OrderCancelled] = {}
        self.pairs: dict[tuple[str, str], tuple[OrderPlaced, OrderPlaced, str]] = {}
        self.of_order: dict[str, list[tuple[str, str]]] = {}
        self.found: dict[tuple[str, str], FlagDraft] = {}

    def step(self, event: Event) -> None:
        if isinstance(event, OrderPlaced) and event.payload.order_id not in self.placed_ids:
            for first in reversed(self.placed):
                if event.occurred_at - first.occurred_at > self.window:
                    break
                alike = _same_basket(first, event)
                if alike is not None:
                    key = (first.event_id, event.event_id)
                    self.pairs[key] = (first, event, alike)
                    for order in (first, event):
                        self.of_order.setdefault(order.payload.order_id, []).append(key)
                    self._judge(key)
            self.placed.append(event)
            self.placed_ids.add(event.payload.order_id)
            # an order out of the window of this one is out of every later one's: events come
            # in journey order (a late one walks again from the start)
            while event.occurred_at - self.placed[0].occurred_at > self.window:
                self.placed.popleft()
        elif isinstance(event, OrderCancelled) and event.payload.order_id not in self.cancels:
            self.cancels[event.payload.order_id] = event
            for key in self.of_order.get(event.payload.order_id, ()):
                self._judge(key)

    def _judge(self, key: tuple[str, str]) -> None:
        draft = _pair(*self.pairs[key], self.cancels)
        if draft is None:
            if (gone := self.found.pop(key, None)) is not None:
                gone.drop()  # an incremental evaluation forgets its flag
        else:
            self.found[key] = draft

    def drafts(self, as_of: datetime) -> Sequence[FlagDraft]:
        del as_of  # not time-based
        return list(self.found.values())


@dataclass(slots=True)
class _Payment:
    payment_id: str
    order_id: str | None = None
    taken: list[PaymentAuthorised | PaymentCaptured] = field(default_factory=list)
    released: list[PaymentVoided | PaymentRefunded] = field(default_factory=list)


class _Payments(NoDeadline):
    """A payment held or taken for a cancelled order, with no void or refund.

    A payment's flag is made again only when an event of that payment, or the cancel of its
    order, comes.
    """

    stale = False

    def __init__(self, rules: RuleSettings, ahead: Sequence[Event] = ()) -> None:
        del ahead  # looks only back
        del rules  # no thresholds
        self.payments: dict[str, _Payment] = {}
        self.cancels: dict[str, OrderCancelled] = {}
        self.of_order: dict[str, list[str]] = {}
        self.found: dict[str, FlagDraft] = {}

    def step(self, event: Event) -> None:
        if isinstance(event, PaymentAuthorised | PaymentCaptured | PaymentVoided | PaymentRefunded):
            payment_id = event.payload.payment_id
            payment = self.payments.setdefault(payment_id, _Payment(payment_id))
            if payment.order_id is None and event.payload.order_id is not None:
                payment.order_id = event.payload.order_id
                self.of_order.setdefault(payment.order_id, []).append(payment_id)
            if isinstance(event, PaymentAuthorised | PaymentCaptured):
                payment.taken.append(event)
            else:
                payment.released.append(event)
            self._judge(payment)
        elif isinstance(event, OrderCancelled) and event.payload.order_id not in self.cancels:
            self.cancels[event.payload.order_id] = event
            for payment_id in self.of_order.get(event.payload.order_id, ()):
                self._judge(self.payments[payment_id])

    def _judge(self, payment: _Payment) -> None:
        draft = _payment_flag(payment, self.cancels)
        if draft is None:
            if (gone := self.found.pop(payment.payment_id, None)) is not None:
                gone.drop()  # an incremental evaluation forgets its flag
        else:
            self.found[payment.payment_id] = draft

    def drafts(self, as_of: datetime) -> Sequence[FlagDraft]:
        del as_of  # not time-based
        return list(self.found.values())


def _payment_flag(payment: _Payment, cancels: dict[str, OrderCancelled]) -> FlagDraft | None:
    cancel = cancels.get(payment.order_id) if payment.order_id else None
    if cancel is None or not payment.taken:
        return None
    taken = payment.taken[0]
    opened_at = max(taken.occurred_at, cancel.occurred_at)
    if any(r.occurred_at <= opened_at for r in payment.released):
        return None  # released before the contradiction could be seen
    verb = "captured" if isinstance(taken, PaymentCaptured) else "authorised"
    amount = money(taken.payload.amount, taken.payload.currency) or ""
    message = (
        f"{taken.source.system}: payment {payment.payment_id}"
        f"{' of ' + amount if amount else ''} {verb} for order {payment.order_id}, "
        f"which {cancel.source.system} cancelled on {format_moment(cancel.occurred_at)}; "
        "no void or refund"
    )
    anchor = f"{payment.payment_id}\x00{payment.order_id}"
    draft = PAYMENT_FOR_CANCELLED_ORDER.draft(
        anchor,
        message,
        opened_at,
        sorted([taken, cancel], key=lambda e: (e.occurred_at, e.event_id)),
    )
    draft.involve(*payment.taken[1:])
    if payment.released:
        release = payment.released[0]
        draft.resolve(
            release.occurred_at,
            f"{release.source.system} {release.type.split('.')[1]} payment {payment.payment_id}",
            release,
        )
    return draft


DUPLICATE_ORDER = Rule.walking(
    "DUPLICATE_ORDER", Severity.HIGH, _Duplicates, types=event_types(OrderPlaced, OrderCancelled)
)
PAYMENT_FOR_CANCELLED_ORDER = Rule.walking(
    "PAYMENT_FOR_CANCELLED_ORDER",
    Severity.HIGH,
    _Payments,
    types=event_types(
        PaymentAuthorised, PaymentCaptured, PaymentVoided, PaymentRefunded, OrderCancelled
    ),
)
RULES = (DUPLICATE_ORDER, PAYMENT_FOR_CANCELLED_ORDER)
