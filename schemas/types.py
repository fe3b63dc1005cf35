"""Value types of the event contract: timestamps, slots and identifiers."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})?$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TENANT = r"^[a-z0-9][a-z0-9-]{0,63}$"
_PHONE_PATTERN = r"^\+?[0-9 ()./\-]+$"


def _parse_datetime(value: str) -> datetime:
    if not _RFC3339.match(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 date-time such as 2024-03-12T10:30:00+00:00"
        )
    text = value.replace(" ", "T").replace("t", "T").replace("z", "Z")
    if len(text) > 26 and "." in text:
        # Python keeps microseconds; RFC 3339 allows more digits.
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6]}{rest[digits.end() :]}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset; add Z or an offset such as +01:00")
    return parsed


def parse_timestamp(value: Any) -> datetime:
    """Parse an RFC 3339 date-time that carries a UTC offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("datetime has no UTC offset; naive timestamps are ambiguous")
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with a UTC offset")
    return _parse_datetime(value.strip())


def parse_slot(value: Any) -> datetime | date:
    """Parse a slot: an RFC 3339 date-time with offset, or a plain date."""
    if isinstance(value, datetime):
        return parse_timestamp(value)
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a date (2024-03-12) or a date-time with offset")
    text = value.strip()
    if _DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date") from exc
    return _parse_datetime(text)


def _iso(value: datetime | date) -> str:
    return value.isoformat()


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _check_phone(value: str) -> str:
    if not re.match(_PHONE_PATTERN, value):
        raise ValueError("may hold only digits, spaces, a leading + and ( ) . / -")
    if sum(ch.isdigit() for ch in value) < 6:
        raise ValueError("needs at least 6 digits")
    return value


_DATETIME_SCHEMA = {"type": "string", "format": "date-time"}
_SLOT_SCHEMA = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]
}

Timestamp = Annotated[
    datetime,
    PlainValidator(parse_timestamp),
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema(_DATETIME_SCHEMA),
]
"""An instant with its UTC offset, as written by the source system."""

Slot = Annotated[
    datetime | date,
    PlainValidator(parse_slot),
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema(_SLOT_SCHEMA),
]
"""An appointment: a date-time with its offset, or a date when no time was given."""

Text = Annotated[str, StringConstraints(max_length=10_000)]
"""Free text such as a message body."""

Name = Annotated[str, BeforeValidator(_strip), StringConstraints(min_length=1, max_length=200)]
"""A short non-empty label: a form name, a programme, a party."""

Identifier = Annotated[
    str, BeforeValidator(_strip), StringConstraints(min_length=1, max_length=256)
]
"""A non-empty identifier as the source system wrote it."""

Email = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"),
]
"""An e-mail address (one @, no spaces)."""

Phone = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(max_length=40),
    AfterValidator(_check_phone),
    WithJsonSchema({"type": "string", "pattern": _PHONE_PATTERN, "maxLength": 40}),
]
"""A phone number as written: national or international, any punctuation."""

TenantId = Annotated[str, StringConstraints(pattern=_TENANT)]
"""A tenant: lower-case letters, digits and dashes, starting with a letter or digit."""
