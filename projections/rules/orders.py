"""DUPLICATE_ORDER and PAYMENT_FOR_CANCELLED_ORDER: orders and card payments that disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from projections.formatting import format_duration, format_moment
from projections.rules.readers import money
from projections.rules.rule import Rule
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


def _first_by_order(
    events: Sequence[Event], kind: type[OrderPlaced | OrderCancelled]
) -> dict[str, OrderPlaced | OrderCancelled]:
    found: dict[str, OrderPlaced | OrderCancelled] = {}
    for event in events:
        if isinstance(event, kind):
            found.setdefault(event.payload.order_id, event)
    return found


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


def detect_duplicates(
    events: Sequence[Event], as_of: datetime, rules: RuleSettings
) -> list[FlagDraft]:
    """Two orders alike within the window, both live at some moment; resolved by a cancel."""
    del as_of
    placed = [
        e for e in _first_by_order(events, OrderPlaced).values() if isinstance(e, OrderPlaced)
    ]
    cancels = _first_by_order(events, OrderCancelled)
    drafts: list[FlagDraft] = []
    for i, first in enumerate(placed):
        for second in placed[i + 1 :]:
            gap = second.occurred_at - first.occurred_at
            if gap > rules.duplicate_order_window:
                break
            alike = _same_basket(first, second)
            if alike is None:
                continue
            ends = [c for o in (first, second) if (c := cancels.get(o.payload.order_id))]
            # Both live at some moment: neither was cancelled before the second was placed.
            if any(c.occurred_at <= second.occurred_at for c in ends):
                continue
            message = (
                f"{second.source.system}: order {second.payload.order_id} placed "
                f"{format_duration(gap)} after order {first.payload.order_id} "
                f"({first.source.system}) with {alike}; both stood"
            )
            draft = DUPLICATE_ORDER.draft(
                f"{first.event_id}\x00{second.event_id}",
                message,
                second.occurred_at,
                [first, second],
            )
            if ends:
                cancel = min(ends, key=lambda c: (c.occurred_at, c.event_id))
                draft.resolve(
                    cancel.occurred_at,
                    f"{cancel.source.system} cancelled order {cancel.payload.order_id}",
                    cancel,
                )
            drafts.append(draft)
    return drafts


@dataclass(slots=True)
class _Payment:
    payment_id: str
    order_id: str | None = None
    taken: list[PaymentAuthorised | PaymentCaptured] = field(default_factory=list)
    released: list[PaymentVoided | PaymentRefunded] = field(default_factory=list)


def _payments(events: Sequence[Event]) -> dict[str, _Payment]:
    payments: dict[str, _Payment] = {}
    for event in events:
        if isinstance(event, PaymentAuthorised | PaymentCaptured | PaymentVoided | PaymentRefunded):
            payment = payments.setdefault(
                event.payload.payment_id, _Payment(event.payload.payment_id)
            )
            payment.order_id = payment.order_id or event.payload.order_id
            if isinstance(event, PaymentAuthorised | PaymentCaptured):
                payment.taken.append(event)
            else:
                payment.released.append(event)
    return payments


def detect_payments(
    events: Sequence[Event], as_of: datetime, rules: RuleSettings
) -> list[FlagDraft]:
    """A payment held or taken for a cancelled order, with no void or refund."""
    del as_of, rules
    cancels = _first_by_order(events, OrderCancelled)
    drafts: list[FlagDraft] = []
    for payment in _payments(events).values():
        cancel = cancels.get(payment.order_id) if payment.order_id else None
        if cancel is None or not payment.taken:
            continue
        taken = payment.taken[0]
        opened_at = max(taken.occurred_at, cancel.occurred_at)
        if any(r.occurred_at <= opened_at for r in payment.released):
            continue  # released before the contradiction could be seen
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
        drafts.append(draft)
    return drafts


DUPLICATE_ORDER = Rule("DUPLICATE_ORDER", Severity.HIGH, detect_duplicates)
PAYMENT_FOR_CANCELLED_ORDER = Rule("PAYMENT_FOR_CANCELLED_ORDER", Severity.HIGH, detect_payments)
RULES = (DUPLICATE_ORDER, PAYMENT_FOR_CANCELLED_ORDER)
