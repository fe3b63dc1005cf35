"""The touchpoint contract, v1: one frozen model per event type."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StrictBool

from schemas.envelope import (
    CURRENT_SCHEMA_VERSION,
    IDENTIFIER_KINDS,
    MAX_TEXT_LENGTH,
    Channel,
    Customer,
    Source,
    _Envelope,
    _Payload,
)
from schemas.people import (
    FlagAcknowledged,
    FlagAssigned,
    FlagNoted,
    FlagReopened,
    FlagResolvedByHand,
    FlagSnoozed,
    IdentityBlocked,
    IdentityErased,
    IdentityMergeConfirmed,
    IdentitySplit,
    IdentityUnblocked,
)
from schemas.types import Identifier, Name, Slot, Text

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "IDENTIFIER_KINDS",
    "MAX_TEXT_LENGTH",
    "Channel",
    "Customer",
    "Source",
]

# --- payloads -----------------------------------------------------------------------------


class FormSubmittedPayload(_Payload):
    """A web form went through."""

    form: Name
    requested_slot: Slot | None = None
    message: Text | None = None


class FormFailedPayload(_Payload):
    """The site logged a submission that did not go through."""

    form: Name
    requested_slot: Slot | None = None
    error: Text | None = None


class ChatMessagePayload(_Payload):
    """One line of a chat, by the customer, an agent or a bot."""

    speaker: Literal["customer", "agent", "bot"]
    text: Text | None = None
    requested_slot: Slot | None = None
    asked_for: tuple[Name, ...] = ()
    provided: tuple[Name, ...] = ()


class MessageReceivedPayload(_Payload):
    """The customer wrote to the business."""

    medium: Name
    text: Text | None = None


class EnquiryRespondedPayload(_Payload):
    """The business answered an enquiry."""

    in_reply_to: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    via: Name | None = None


class CallLoggedPayload(_Payload):
    """A phone call, in or out, with what it was about and where it went."""

    direction: Literal["inbound", "outbound"]
    reason: Text | None = None
    outcome: Text | None = None
    transferred_to: Name | None = None
    asked_for: tuple[Name, ...] = ()


class ReferralMadePayload(_Payload):
    """The customer was told to contact another party."""

    to: Name
    reason: Text | None = None


class BookingPayload(_Payload):
    """A booking and the slot it holds."""

    booking_id: Identifier
    slot: Slot
    service: Name | None = None


class BookingCancelledPayload(_Payload):
    """A booking was cancelled."""

    booking_id: Identifier
    reason: Text | None = None


class MessageSentPayload(_Payload):
    """The business told the customer something, perhaps a date and time."""

    medium: Literal["sms", "email", "letter", "push"]
    stated_slot: Slot | None = None
    booking_id: Identifier | None = None
    template: Name | None = None
    text: Text | None = None


class SurveyRespondedPayload(_Payload):
    """The customer answered a survey."""

    score: float
    scale: int | None = None
    comment: Text | None = None


class OrderPlacedPayload(_Payload):
    """An order was placed."""

    order_id: Identifier
    items: tuple[Name, ...] | None = None
    amount: Decimal | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None


class OrderPayload(_Payload):
    """An order changed state."""

    order_id: Identifier
    reason: Text | None = None


class PaymentPayload(_Payload):
    """A card payment changed state."""

    payment_id: Identifier
    order_id: Identifier | None = None
    amount: Decimal | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None


class EnrolmentConfirmedPayload(_Payload):
    """The customer was enrolled in a programme (roadside assistance, loyalty...)."""

    programme: Name
    effective_from: Slot | None = None


class EnrolmentLookupPayload(_Payload):
    """A system looked the customer up in a programme."""

    programme: Name
    found: StrictBool


class RecallNotifiedPayload(_Payload):
    """Head office recorded a recall for the customer's product."""

    recall_code: Name


class RecallLookupPayload(_Payload):
    """A system looked up a recall for the customer's product."""

    recall_code: Name
    found: StrictBool


# --- events -------------------------------------------------------------------------------


class FormSubmitted(_Envelope):
    """A web form went through."""

    type: Literal["form.submitted"]
    payload: FormSubmittedPayload


class FormFailed(_Envelope):
    """The site logged a form submission that did not go through."""

    type: Literal["form.failed"]
    payload: FormFailedPayload


class ChatMessage(_Envelope):
    """One line of a chat."""

    type: Literal["chat.message"]
    payload: ChatMessagePayload


class MessageReceived(_Envelope):
    """The customer wrote to the business."""

    type: Literal["message.received"]
    payload: MessageReceivedPayload


class EnquiryResponded(_Envelope):
    """The business answered an enquiry."""

    type: Literal["enquiry.responded"]
    payload: EnquiryRespondedPayload = EnquiryRespondedPayload()


class CallLogged(_Envelope):
    """A phone call was logged."""

    type: Literal["call.logged"]
    payload: CallLoggedPayload


class ReferralMade(_Envelope):
    """The customer was referred to another party."""

    type: Literal["referral.made"]
    payload: ReferralMadePayload


class BookingCreated(_Envelope):
    """A booking was made."""

    type: Literal["booking.created"]
    payload: BookingPayload


class BookingChanged(_Envelope):
    """A booking moved to another slot."""

    type: Literal["booking.changed"]
    payload: BookingPayload


class BookingCancelled(_Envelope):
    """A booking was cancelled."""

    type: Literal["booking.cancelled"]
    payload: BookingCancelledPayload


class MessageSent(_Envelope):
    """The business sent the customer a message."""

    type: Literal["message.sent"]
    payload: MessageSentPayload


class SurveyResponded(_Envelope):
    """The customer answered a survey."""

    type: Literal["survey.responded"]
    payload: SurveyRespondedPayload


class OrderPlaced(_Envelope):
    """An order was placed."""

    type: Literal["order.placed"]
    payload: OrderPlacedPayload


class OrderConfirmed(_Envelope):
    """An order was confirmed."""

    type: Literal["order.confirmed"]
    payload: OrderPayload


class OrderCancelled(_Envelope):
    """An order was cancelled."""

    type: Literal["order.cancelled"]
    payload: OrderPayload


class PaymentAuthorised(_Envelope):
    """A card payment was authorised (funds held)."""

    type: Literal["payment.authorised"]
    payload: PaymentPayload


class PaymentCaptured(_Envelope):
    """A card payment was captured (funds taken)."""

    type: Literal["payment.captured"]
    payload: PaymentPayload


class PaymentVoided(_Envelope):
    """An authorisation was released."""

    type: Literal["payment.voided"]
    payload: PaymentPayload


class PaymentRefunded(_Envelope):
    """A captured payment was refunded."""

    type: Literal["payment.refunded"]
    payload: PaymentPayload


class PaymentDeclined(_Envelope):
    """A card payment was declined."""

    type: Literal["payment.declined"]
    payload: PaymentPayload


class EnrolmentConfirmed(_Envelope):
    """The customer was enrolled in a programme."""

    type: Literal["enrolment.confirmed"]
    payload: EnrolmentConfirmedPayload


class EnrolmentLookup(_Envelope):
    """A system looked the customer up in a programme."""

    type: Literal["enrolment.lookup"]
    payload: EnrolmentLookupPayload


class RecallNotified(_Envelope):
    """Head office recorded a recall."""

    type: Literal["recall.notified"]
    payload: RecallNotifiedPayload


class RecallLookup(_Envelope):
    """A system looked up a recall."""

    type: Literal["recall.lookup"]
    payload: RecallLookupPayload


Event = Annotated[
    FormSubmitted
    | FormFailed
    | ChatMessage
    | MessageReceived
    | EnquiryResponded
    | CallLogged
    | ReferralMade
    | BookingCreated
    | BookingChanged
    | BookingCancelled
    | MessageSent
    | SurveyResponded
    | OrderPlaced
    | OrderConfirmed
    | OrderCancelled
    | PaymentAuthorised
    | PaymentCaptured
    | PaymentVoided
    | PaymentRefunded
    | PaymentDeclined
    | EnrolmentConfirmed
    | EnrolmentLookup
    | RecallNotified
    | RecallLookup
    | IdentityBlocked
    | IdentityUnblocked
    | IdentitySplit
    | IdentityMergeConfirmed
    | IdentityErased
    | FlagAcknowledged
    | FlagAssigned
    | FlagNoted
    | FlagResolvedByHand
    | FlagReopened
    | FlagSnoozed,
    Field(discriminator="type"),
]
"""Any touchpoint of the catalogue, told apart by its `type`."""

EVENT_TYPES: tuple[str, ...] = (
    "form.submitted",
    "form.failed",
    "chat.message",
    "message.received",
    "enquiry.responded",
    "call.logged",
    "referral.made",
    "booking.created",
    "booking.changed",
    "booking.cancelled",
    "message.sent",
    "survey.responded",
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "payment.authorised",
    "payment.captured",
    "payment.voided",
    "payment.refunded",
    "payment.declined",
    "enrolment.confirmed",
    "enrolment.lookup",
    "recall.notified",
    "recall.lookup",
    "identity.blocked",
    "identity.unblocked",
    "identity.split",
    "identity.merge_confirmed",
    "identity.erased",
    "flag.acknowledged",
    "flag.assigned",
    "flag.noted",
    "flag.resolved",
    "flag.reopened",
    "flag.snoozed",
)
"""Every `type` string of the catalogue, v1."""

DECISION_TYPES: frozenset[str] = frozenset(
    {"identity.blocked", "identity.unblocked", "identity.split", "identity.merge_confirmed"}
)
"""A person's identity decisions: they change how events link and join no journey."""

ERASURE_TYPE = "identity.erased"
"""A person's order to erase a customer: ingest destroys its keys; it joins no journey."""

HANDLING_TYPES: frozenset[str] = frozenset(
    {
        "flag.acknowledged",
        "flag.assigned",
        "flag.noted",
        "flag.resolved",
        "flag.reopened",
        "flag.snoozed",
    }
)
"""People acting on a flag: they join the flag's journey and change only its handling."""

FlagAction = (
    FlagAcknowledged | FlagAssigned | FlagNoted | FlagResolvedByHand | FlagReopened | FlagSnoozed
)
"""Any handling event."""
