"""What the rules (and the knowledge view) read out of events, shared rather than per rule."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from schemas.events import ChatMessage, Event, FormFailed, FormSubmitted

SlotValue = datetime | date


def requested_slot(event: Event) -> SlotValue | None:
    """The slot a customer asked for in a form or a chat line, if any."""
    if isinstance(event, FormSubmitted | FormFailed):
        return event.payload.requested_slot
    if isinstance(event, ChatMessage) and event.payload.speaker == "customer":
        return event.payload.requested_slot
    return None


_ALIASES = {
    "phone_number": "phone",
    "mobile": "phone",
    "mobile_number": "phone",
    "telephone": "phone",
    "tel": "phone",
    "email_address": "email",
    "e_mail": "email",
    "registration": "plate",
    "reg": "plate",
    "registration_number": "plate",
    "number_plate": "plate",
    "licence_plate": "plate",
    "license_plate": "plate",
    "vin_number": "vin",
    "order": "order_id",
    "order_number": "order_id",
    "order_no": "order_id",
    "membership": "membership_id",
    "membership_number": "membership_id",
    "member_id": "membership_id",
    "customer_number": "customer_ref",
    "account": "customer_ref",
    "account_number": "customer_ref",
    "full_name": "name",
    "customer_name": "name",
    "date": "slot",
    "time": "slot",
    "appointment": "slot",
    "requested_slot": "slot",
    "preferred_date": "slot",
    "location": "site",
    "branch": "site",
    "dealer": "site",
    "dealership": "site",
    "store": "site",
}
_SEPARATORS = re.compile(r"[\s\-]+")


def field_name(text: str) -> str:
    """The canonical name of a field asked for or provided (`Phone number` -> `phone`)."""
    name = _SEPARATORS.sub("_", text.strip().casefold())
    return _ALIASES.get(name, name)


_NOISE = re.compile(r"[^0-9a-z]")


def subject_key(text: str) -> str:
    """Programme names and recall codes compare without case, spaces or punctuation."""
    return _NOISE.sub("", text.casefold())


def money(amount: Decimal | None, currency: str | None) -> str | None:
    """An amount as people read it (`1,250.00 GBP`), None without one."""
    if amount is None:
        return None
    return f"{amount:,.2f} {currency}" if currency else f"{amount:,.2f}"
