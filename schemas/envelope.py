"""The envelope every touchpoint shares: who, when, where from, about whom; and the bases."""

from __future__ import annotations

from enum import StrEnum
from operator import itemgetter
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.types import Email, Identifier, Name, Phone, TenantId, Timestamp

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

_IDENTIFIER_VALUES = itemgetter(*IDENTIFIER_KINDS)


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
        values = self.__dict__  # several times cheaper than `getattr`, as above
        return [(kind, value) for kind in IDENTIFIER_KINDS if (value := values[kind])]

    def identifier_values(self) -> tuple[str | None, ...]:
        """Every identifier field's value (None when absent), in `IDENTIFIER_KINDS` order.

        One C call: a cheap, hashable key for what `identifiers` gives (readers cache on it).
        """
        values: tuple[str | None, ...] = _IDENTIFIER_VALUES(self.__dict__)
        return values


class _Envelope(_Frozen):
    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    occurred_at: Timestamp
    tenant: TenantId
    source: Source
    customer: Customer
    correlation_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    schema_version: Literal[1] = 1
    redacted: bool = False
