"""Normalise customer identifiers so that the same one written differently compares equal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import email_validator
import phonenumbers

from schemas.events import DECISION_TYPES, IDENTIFIER_KINDS, Customer, Event
from schemas.privacy.personal import ERASED

MASK_RUN = "****"
"""What a masked card number looks like inside an identifier."""

MIN_NSN_DIGITS = 8
"""A national number stitches to an international one only with this many significant digits."""

_NOT_DIGIT = re.compile(r"\D")
_PLATE_NOISE = re.compile(r"[\s\-]")
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+\-]+(?:\.[a-z0-9_+\-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:[a-z0-9][a-z0-9-]{0,61})?[a-z]"
)
"""Addresses `email_validator` always accepts (ASCII dot-atom, hostname labels, a TLD ending in a
letter); with no `--` and no special-use domain, checked beside it. Anything else is validated."""


HASHED_MARK = "#"
"""How a hashed value in a graph key starts: no normalised value does (`GraphHasher`)."""

_HASH_BYTES = 20
"""160 bits of the HMAC are kept: 27 base64url characters, past guessing and collisions."""

_HASHED_KEY = re.compile(r":#[A-Za-z0-9_-]{27}\Z")


def is_hashed_key(key: str) -> bool:
    """Whether a graph key holds its value as `GraphHasher` writes it (`kind:#...`), not clear."""
    return _HASHED_KEY.search(key) is not None


@dataclass(frozen=True, slots=True)
class GraphHasher:
    """Keyed hashes (HMAC-SHA256 under one tenant's secret) of the graph's identifier values."""

    secret: bytes = field(repr=False)
    _keyed: hmac.HMAC = field(init=False, repr=False, compare=False)
    """The HMAC keyed once: keying it costs about as much as hashing a key."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keyed", hmac.new(self.secret, digestmod=hashlib.sha256))

    def __call__(self, key: str) -> str:
        """`#` + unpadded base64url of the HMAC of a clear key (`kind:value`, a phone's
        `phone:<nsn>`): no `:` or `/` in it (base32 was a tenth of ingest's added CPU)."""
        mac = self._keyed.copy()
        mac.update(key.encode())
        digest = mac.digest()[:_HASH_BYTES]
        return HASHED_MARK + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def __repr__(self) -> str:
        """No secret shown."""
        return "GraphHasher(secret=…)"

    def __reduce__(self) -> tuple[type[GraphHasher], tuple[bytes]]:
        """Copied and pickled by its secret (a keyed HMAC is neither)."""
        return (GraphHasher, (self.secret,))


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A phone number reduced to its country code (when known) and national significant number."""

    country_code: int | None
    nsn: str
    written: str
    hashed: str | None = None
    """The keyed hash of the national number that graph keys hold instead of it, if hashed."""

    @property
    def number(self) -> str:
        """The national number as graph keys spell it: its keyed hash when hashed, else clear."""
        return self.nsn if self.hashed is None else self.hashed

    @property
    def key(self) -> str:
        """The identity-graph key of this number."""
        if self.country_code is None:
            return f"phone:{self.number}"
        return f"phone:+{self.country_code}:{self.number}"

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
        return f"phone:{self.number}"


class Refusal(Protocol):
    """A tenant's own reason not to link on an identifier (blocked values), or None."""

    def __call__(self, ident: NormalisedId, /) -> str | None:
        """Why this identifier must not link, or None."""


@dataclass(frozen=True, slots=True)
class NormalisedId:
    """One identifier after normalisation: its kind, the value shown, and its graph key."""

    kind: str
    value: str
    key: str
    phone: PhoneNumber | None = None
    unusable: str | None = None
    """Why this identifier is not used for matching (junk or placeholder), or None."""
    hashed: bool = False
    """Whether `key` holds the keyed hash of the value (`GraphHasher`) instead of the value."""

    @property
    def named(self) -> str:
        """The value as stored records may name it: clear, or as its key holds it when hashed
        (a phone `+<country><hash>` or `<hash>`), so no record of a hashed graph holds it."""
        if not self.hashed:
            return self.value
        rest = self.key.partition(":")[2]
        return f"+{rest[1:].replace(':', '', 1)}" if rest.startswith("+") else rest


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


PLACEHOLDER_VALUES = frozenset(
    {
        "",
        "-",
        "--",
        "?",
        "0",
        "none",
        "null",
        "nil",
        "n/a",
        "na",
        "unknown",
        "test",
        "noemail",
        "no email",
        "no-email",
        "nomail",
        "notknown",
        "not known",
        "not given",
        "tbc",
        "xxx",
    }
)
"""Values (and e-mail local parts) people type when they have no identifier to give."""

PLACEHOLDER_EMAIL_DOMAINS = frozenset(
    {"test.com", "example.invalid", "localhost", "localhost.localdomain", "invalid", "test"}
)
"""E-mail domains that are placeholders. `example.com` is not one of them: see the README."""

PLACEHOLDER_DOMAIN_LABELS = frozenset({"noemail", "nomail", "no-email", "none", "invalid"})
"""A domain whose first label is one of these is a placeholder (`noemail.co.uk`)."""

_SEQUENCES = ("01234567890123456789", "98765432109876543210")
MIN_SEQUENCE_DIGITS = 6
"""A run of consecutive digits this long (`0123456789`, `987654`) is a placeholder number."""


def _placeholder_digits(digits: str) -> str | None:
    if len(digits) >= 3 and len(set(digits)) == 1:
        return "a run of one digit"
    if len(digits) >= MIN_SEQUENCE_DIGITS and any(digits in seq for seq in _SEQUENCES):
        return "a run of consecutive digits"
    return None


def phone_problem(phone: PhoneNumber, region: str | None) -> str | None:
    """Why a phone number is a placeholder or impossible, or None when it is plausible."""
    for digits in (phone.written, phone.nsn):
        if (problem := _placeholder_digits(digits)) is not None:
            return f"placeholder number ({problem})"
    if phone.country_code is None:
        return None  # no region to judge it by: only placeholders are refused
    possible = _possible_number(phone.country_code, phone.nsn)
    if possible is None:
        return f"not a possible number for +{phone.country_code}"
    if not possible:
        where = f"region {region}" if region else f"+{phone.country_code}"
        return f"not a possible number for {where}"
    return None


# Cached: each way a system writes a number is normalised once, but parsing the number again
# to judge it is as dear as the first parse, and the spellings of one number share its answer.
@lru_cache(maxsize=65_536)
def _possible_number(country_code: int, nsn: str) -> bool | None:
    """Whether libphonenumber finds +country_code nsn a possible number (None: unparseable)."""
    try:
        number = phonenumbers.parse(f"+{country_code}{nsn}", None)
    except phonenumbers.NumberParseException:
        return None
    return bool(phonenumbers.is_possible_number(number))


def email_problem(value: str) -> str | None:
    """Why an e-mail address is a placeholder or not valid syntax, or None when plausible."""
    local, at, domain = value.rpartition("@")
    if value in PLACEHOLDER_VALUES or (at and local in PLACEHOLDER_VALUES):
        return "placeholder address"
    if at and (
        domain in PLACEHOLDER_EMAIL_DOMAINS
        or domain.endswith((".invalid", ".test", ".localhost", ".example"))
        or domain.split(".", 1)[0] in PLACEHOLDER_DOMAIN_LABELS
    ):
        return f"placeholder domain {domain}"
    if _plainly_valid(value, domain):
        return None
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return f"not a valid e-mail address ({str(exc).rstrip('.')})"
    return None


def _plainly_valid(value: str, domain: str) -> bool:
    """Whether `email_validator` would accept the address, known without running it (it costs
    about 100 µs an address, and almost every address is this plain)."""
    return (
        len(value) <= _EMAIL_MAX_LENGTH
        and "--" not in domain
        and _PLAIN_EMAIL.fullmatch(value) is not None
        and not any(domain == d or domain.endswith("." + d) for d in _SPECIAL_USE_DOMAINS)
    )


_EMAIL_MAX_LENGTH = 254
_SPECIAL_USE_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def value_problem(kind: str, value: str) -> str | None:
    """Why any other identifier's value is a placeholder, or None."""
    if value.lower() in PLACEHOLDER_VALUES:
        return "placeholder value"
    repeatable = kind in ("customer_ref", "membership_id", "plate", "vin")
    if repeatable and len(value) >= 3 and len(set(value.lower())) == 1:
        return "placeholder value (one character repeated)"
    return None


# Cached: customers come back, and parsing a phone number costs more than the rest of stitching.
@lru_cache(maxsize=65_536)
def normalise(
    kind: str, raw: str, region: str | None = None, hasher: GraphHasher | None = None
) -> NormalisedId:
    """Normalise one identifier of the given kind, noting when it is junk; with a `hasher`, its
    graph key holds the keyed hash of its value (`value` and a phone's `nsn` stay clear, in
    memory only)."""
    ident = _normalise(kind, raw, region)
    if hasher is None or ident.unusable == "erased":
        return ident
    phone = ident.phone
    if phone is not None:
        hashed = hasher(f"phone:{phone.nsn}")
        phone = PhoneNumber(phone.country_code, phone.nsn, phone.written, hashed)
        return NormalisedId(kind, ident.value, phone.key, phone, ident.unusable, True)
    return NormalisedId(
        kind, ident.value, f"{kind}:{hasher(ident.key)}", None, ident.unusable, True
    )


def _normalise(kind: str, raw: str, region: str | None) -> NormalisedId:
    if raw == ERASED:  # an erased customer's events must never stitch to each other
        return NormalisedId(kind, raw, f"{kind}:{raw}", unusable="erased")
    if kind == "phone":
        phone = normalise_phone(raw, region)
        return NormalisedId(kind, phone.display, phone.key, phone, phone_problem(phone, region))
    if kind == "email":
        value = normalise_email(raw)
        problem = email_problem(value)
    elif kind in ("plate", "vin"):
        value = normalise_plate(raw)
        problem = value_problem(kind, value)
    else:
        value = raw.strip()
        problem = value_problem(kind, value)
    return NormalisedId(kind, value, f"{kind}:{value}", unusable=problem)


def held_spellings(
    identifier: str, region: str | None = None, hasher: GraphHasher | None = None
) -> tuple[str, ...]:
    """The keys a merge's identifier (`kind value`, as a journey lists it) is held under: its
    own, and a phone's national spelling (a number stitched without its country)."""
    kind, _, value = identifier.partition(" ")
    ident = normalise(kind, value, region, hasher)
    national = ident.phone.national_key if ident.phone else None
    return (ident.key,) if national is None else (ident.key, national)


def customer_ids(
    customer: Customer, region: str | None = None, hasher: GraphHasher | None = None
) -> tuple[NormalisedId, ...]:
    """The normalised identifiers of an event's customer (never the name), keys hashed by
    `hasher` when given.

    A value that held a card number is masked to its last four digits; two different cards
    can end alike, so a masked value never stitches customers.
    """
    return _customer_ids(customer.identifier_values(), region, hasher)


def identifier_values_ids(
    values: tuple[str | None, ...], region: str | None = None, hasher: GraphHasher | None = None
) -> tuple[NormalisedId, ...]:
    """The normalised identifiers of identifier values in `IDENTIFIER_KINDS` order, exactly as
    an event's customer with those values gets them (`customer_ids`): for values read from
    outside an event (a dead letter's)."""
    return _customer_ids(values, region, hasher)


# Cached by the customer's identifier values: a customer's events mostly carry the same ones,
# and the fold, the journey's identifiers and its links each read them (each read built the
# pairs and looked each identifier up again: about 15% of a check's CPU, sampled).
@lru_cache(maxsize=65_536)
def _customer_ids(
    values: tuple[str | None, ...], region: str | None, hasher: GraphHasher | None
) -> tuple[NormalisedId, ...]:
    return tuple(
        normalise(kind, raw, region, hasher)
        for kind, raw in zip(IDENTIFIER_KINDS, values, strict=True)
        if raw and MASK_RUN not in raw
    )


def identity_ids(
    event: Event,
    region: str | None = None,
    refuse: Refusal | None = None,
    refused: MutableMapping[str, int] | None = None,
    hasher: GraphHasher | None = None,
) -> list[NormalisedId]:
    """The identifiers an event stitches on; an event whose only ones were masked stands alone.

    Junk identifiers (`unusable`) and those `refuse` names a reason for (a tenant's blocked
    values) never link: an event holding only such identifiers stands alone too. With
    `refused`, each is counted there under `junk` or `blocked`. With `hasher`, keys are hashed.
    """
    if event.type in DECISION_TYPES:  # a person's decision names an identifier, never links it
        return [NormalisedId("event", event.event_id, f"event:{event.event_id}")]
    ids = []
    for ident in customer_ids(event.customer, region, hasher):
        if ident.unusable is not None:
            why = "junk"
        elif refuse is not None and refuse(ident) is not None:
            why = "blocked"
        else:
            ids.append(ident)
            continue
        if refused is not None:
            refused[why] += 1
    if not ids:
        ids = [NormalisedId("event", event.event_id, f"event:{event.event_id}")]
    return ids
