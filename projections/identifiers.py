"""Normalise customer identifiers so that the same one written differently compares equal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from schemas.events import Customer, Event

MASK_RUN = "****"
"""What a masked card number looks like inside an identifier."""

MIN_NSN_DIGITS = 8
"""A national number stitches to an international one only with this many significant digits."""

_NOT_DIGIT = re.compile(r"\D")
_PLATE_NOISE = re.compile(r"[\s\-]")


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A phone number reduced to its country code (when known) and national significant number."""

    country_code: int | None
    nsn: str
    written: str

    @property
    def key(self) -> str:
        """The identity-graph key of this number."""
        if self.country_code is None:
            return f"phone:{self.nsn}"
        return f"phone:+{self.country_code}:{self.nsn}"

    @property
    def display(self) -> str:
        """How the number is shown: E.164 when the country is known, else the digits written."""
        if self.country_code is None:
            return self.written
        return f"+{self.country_code}{self.nsn}"

    @property
    def national_key(self) -> str | None:
        """The key of the same number written nationally, when long enough to stitch on."""
        if len(self.nsn) < MIN_NSN_DIGITS:
            return None
        return f"phone:{self.nsn}"


@dataclass(frozen=True, slots=True)
class NormalisedId:
    """One identifier after normalisation: its kind, the value shown, and its graph key."""

    kind: str
    value: str
    key: str
    phone: PhoneNumber | None = None


def normalise_phone(raw: str, region: str | None = None) -> PhoneNumber:
    """Reduce a phone number to country code and national significant number.

    International numbers (+ or 00) and, with a default region, national ones are parsed by
    libphonenumber; without a region a national number keeps its digits less one trunk 0.
    """
    text = raw.strip()
    digits = _NOT_DIGIT.sub("", text)
    international = text.startswith("+") or digits.startswith("00")
    candidate = "+" + digits.removeprefix("00") if international else text
    if international or region:
        try:
            number = phonenumbers.parse(candidate, None if international else region)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and number.country_code:
            nsn = phonenumbers.national_significant_number(number)
            if nsn:
                return PhoneNumber(number.country_code, nsn, digits)
    national = digits[1:] if digits.startswith("0") and not digits.startswith("00") else digits
    return PhoneNumber(None, national, digits)


def normalise_email(raw: str) -> str:
    """Trim and lower-case an e-mail address."""
    return raw.strip().lower()


def normalise_plate(raw: str) -> str:
    """Upper-case a plate or VIN and drop spaces and dashes."""
    return _PLATE_NOISE.sub("", raw).upper()


# Cached: customers come back, and parsing a phone number costs more than the rest of stitching.
@lru_cache(maxsize=65_536)
def normalise(kind: str, raw: str, region: str | None = None) -> NormalisedId:
    """Normalise one identifier of the given kind."""
    if kind == "phone":
        phone = normalise_phone(raw, region)
        return NormalisedId(kind, phone.display, phone.key, phone)
    if kind == "email":
        value = normalise_email(raw)
    elif kind in ("plate", "vin"):
        value = normalise_plate(raw)
    else:
        value = raw.strip()
    return NormalisedId(kind, value, f"{kind}:{value}")


def customer_ids(customer: Customer, region: str | None = None) -> list[NormalisedId]:
    """The normalised identifiers of an event's customer (never the name).

    A value that held a card number is masked to its last four digits; two different cards
    can end alike, so a masked value never stitches customers.
    """
    return [
        normalise(kind, raw, region) for kind, raw in customer.identifiers() if MASK_RUN not in raw
    ]


def identity_ids(event: Event, region: str | None = None) -> list[NormalisedId]:
    """The identifiers an event stitches on; an event whose only ones were masked stands alone."""
    ids = customer_ids(event.customer, region)
    if not ids:
        ids = [NormalisedId("event", event.event_id, f"event:{event.event_id}")]
    return ids
