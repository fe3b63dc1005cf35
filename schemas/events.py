"""The touchpoint contract, v1: one frozen model per event type."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from schemas.types import Email, Identifier, Name, Phone, Slot, TenantId, Text, Timestamp

MAX_TEXT_LENGTH = 10_000
"""The longest string an event may hold anywhere (producers' own payload fields too)."""

CURRENT_SCHEMA_VERSION = 1
"""The newest envelope version this ledger reads; older ones are upcast."""

IDENTIFIER_KINDS: tuple[str, ...] = (
    "customer_ref",
    "email",
    "phone",
    "plate",
    "vin",
    "order_id",
    "card_token",
    "membership_id",
    "anonymous_id",
)
"""The customer fields that identify a customer, in the order they are shown."""


class Channel(StrEnum):
    """How the touchpoint reached or left the customer."""

    WEB = "web"
    CHAT = "chat"
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    POST = "post"
    IN_PERSON = "in_person"
    SYSTEM = "system"
    PARTNER = "partner"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=MAX_TEXT_LENGTH)


class _Payload(BaseModel):
    # Producers may carry fields of their own in a payload: they are kept as they came.
    model_config = ConfigDict(frozen=True, extra="allow", str_max_length=MAX_TEXT_LENGTH)


class Source(_Frozen):
    """The system that recorded the touchpoint, and where and by whom."""

    system: Name
    channel: Channel | None = None
    site: Name | None = None
    actor: Name | None = None


class Customer(_Frozen):
    """What the source system knew about who the customer is."""

    customer_ref: Identifier | None = None
    email: Email | None = None
    phone: Phone | None = None
    plate: Identifier | None = None
    vin: Identifier | None = None
    order_id: Identifier | None = None
    card_token: Identifier | None = None
    membership_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _has_identifier(self) -> Customer:
        # Runs for every event at the door: a plain loop over the field values is several
        # times cheaper than `any()` over a generator of `getattr` calls.
        values = self.__dict__
        for kind in IDENTIFIER_KINDS:
            if values[kind]:
                return self
        raise ValueError(
            "needs at least one identifier other than name: " + ", ".join(IDENTIFIER_KINDS)
        )

    def identifiers(self) -> list[tuple[str, str]]:
        """The (kind, raw value) pairs present, in catalogue order."""
        return [(kind, value) for kind in IDENTIFIER_KINDS if (value := getattr(self, kind))]


class _Envelope(_Frozen):
    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    occurred_at: Timestamp
    tenant: TenantId
    source: Source
    customer: Customer
    correlation_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    schema_version: Literal[1] = 1
    redacted: bool = False


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


class IdentityDecisionPayload(_Payload):
    """A person's decision about the identifier the event's customer carries: who and why."""

    reason: Name
    decided_by: Name


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


class IdentityBlocked(_Envelope):
    """A person decided that the customer's identifier never links events (a shared value)."""

    type: Literal["identity.blocked"]
    payload: IdentityDecisionPayload


class IdentityUnblocked(_Envelope):
    """A person withdrew an earlier block: the identifier links events again."""

    type: Literal["identity.unblocked"]
    payload: IdentityDecisionPayload


class IdentitySplit(_Envelope):
    """A person split a customer along the identifier its customer carries: it links no more."""

    type: Literal["identity.split"]
    payload: IdentityDecisionPayload


class IdentityMergeConfirmed(_Envelope):
    """A person confirmed that the identifier joins one person: links past limits, unsplit."""

    type: Literal["identity.merge_confirmed"]
    payload: IdentityDecisionPayload


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
    | IdentityMergeConfirmed,
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
)
"""Every `type` string of the catalogue, v1."""

DECISION_TYPES: frozenset[str] = frozenset(
    {"identity.blocked", "identity.unblocked", "identity.split", "identity.merge_confirmed"}
)
"""A person's identity decisions: they change how events link and join no journey."""
