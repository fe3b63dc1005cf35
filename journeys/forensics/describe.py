"""One line a person can read for each event of the catalogue."""

from __future__ import annotations

from projections.formatting import format_slot
from schemas.events import (
    BookingCancelled,
    BookingChanged,
    BookingCreated,
    CallLogged,
    ChatMessage,
    EnquiryResponded,
    EnrolmentConfirmed,
    EnrolmentLookup,
    Event,
    FormFailed,
    FormSubmitted,
    MessageReceived,
    MessageSent,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentVoided,
    RecallLookup,
    RecallNotified,
    ReferralMade,
    SurveyResponded,
)
from schemas.people import (
    FlagAcknowledged,
    FlagAssigned,
    FlagNoted,
    FlagReopened,
    FlagResolvedByHand,
    FlagSnoozed,
    IdentityBlocked,
    IdentityMergeConfirmed,
    IdentitySplit,
    IdentityUnblocked,
)

_MAX_TEXT = 90


def _quote(text: str | None) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return f' "{flat[: _MAX_TEXT - 1]}…"' if len(flat) > _MAX_TEXT else f' "{flat}"'


def describe(event: Event) -> str:
    """What happened, in a few words."""
    match event:
        case FormSubmitted(payload=p):
            slot = f", asked for {format_slot(p.requested_slot)}" if p.requested_slot else ""
            return f"submitted form {p.form}{slot}{_quote(p.message)}"
        case FormFailed(payload=p):
            slot = f", asked for {format_slot(p.requested_slot)}" if p.requested_slot else ""
            return f"form {p.form} failed{slot}{_quote(p.error)}"
        case ChatMessage(payload=p):
            parts = [f"{p.speaker} chat{_quote(p.text)}"]
            if p.requested_slot:
                parts.append(f"asked for {format_slot(p.requested_slot)}")
            if p.asked_for:
                parts.append("asks for " + ", ".join(p.asked_for))
            return "; ".join(parts)
        case MessageReceived(payload=p):
            return f"customer wrote by {p.medium}{_quote(p.text)}"
        case EnquiryResponded(payload=p):
            via = f" by {p.via}" if p.via else ""
            return f"responded to the enquiry{via}"
        case CallLogged(payload=p):
            moved = f", transferred to {p.transferred_to}" if p.transferred_to else ""
            return f"{p.direction} call{_quote(p.reason)}{moved}"
        case ReferralMade(payload=p):
            return f"referred the customer to {p.to}{_quote(p.reason)}"
        case BookingCreated(payload=p):
            return f"booking {p.booking_id} for {format_slot(p.slot)}"
        case BookingChanged(payload=p):
            return f"booking {p.booking_id} moved to {format_slot(p.slot)}"
        case BookingCancelled(payload=p):
            return f"booking {p.booking_id} cancelled"
        case MessageSent(payload=p):
            stated = f" stating {format_slot(p.stated_slot)}" if p.stated_slot else ""
            return f"sent {p.medium}{stated}{_quote(p.text)}"
        case SurveyResponded(payload=p):
            scale = f"/{p.scale}" if p.scale else ""
            return f"survey score {p.score:g}{scale}{_quote(p.comment)}"
        case OrderPlaced(payload=p):
            items = f" ({', '.join(p.items)})" if p.items else ""
            return f"order {p.order_id} placed{items}"
        case OrderConfirmed(payload=p) | OrderCancelled(payload=p):
            return f"order {p.order_id} {event.type.split('.')[1]}"
        case (
            PaymentAuthorised(payload=p)
            | PaymentCaptured(payload=p)
            | PaymentVoided(payload=p)
            | PaymentRefunded(payload=p)
            | PaymentDeclined(payload=p)
        ):
            order = f" for order {p.order_id}" if p.order_id else ""
            return f"payment {p.payment_id} {event.type.split('.')[1]}{order}"
        case EnrolmentConfirmed(payload=p):
            return f"enrolled in {p.programme}"
        case EnrolmentLookup(payload=p):
            return f"looked up {p.programme}: {'found' if p.found else 'NOT FOUND'}"
        case RecallNotified(payload=p):
            return f"recall {p.recall_code} recorded"
        case RecallLookup(payload=p):
            return f"looked up recall {p.recall_code}: {'found' if p.found else 'NOT FOUND'}"
    return _people(event) or event.type


def _people(event: Event) -> str | None:
    """What a person did: a handling of a flag, or an identity decision."""
    match event:
        case FlagAcknowledged(payload=p):
            return f"{p.by} acknowledged flag {p.flag_id}{_quote(p.note)}"
        case FlagAssigned(payload=p):
            return f"{p.by} assigned flag {p.flag_id} to {p.assignee}{_quote(p.note)}"
        case FlagNoted(payload=p):
            return f"{p.by} noted on flag {p.flag_id}{_quote(p.note)}"
        case FlagResolvedByHand(payload=p):
            return f"{p.by} resolved flag {p.flag_id} by hand{_quote(p.note)}"
        case FlagReopened(payload=p):
            return f"{p.by} reopened flag {p.flag_id}{_quote(p.note)}"
        case FlagSnoozed(payload=p):
            return f"{p.by} snoozed flag {p.flag_id} until {format_slot(p.until)}{_quote(p.note)}"
        case (
            IdentityBlocked(payload=p)
            | IdentityUnblocked(payload=p)
            | IdentitySplit(payload=p)
            | IdentityMergeConfirmed(payload=p)
        ):
            verb = event.type.split(".")[1].replace("_", " ")
            return f"{p.decided_by} decided: identifier {verb}{_quote(p.reason)}"
    return None
