"""Value types of the event contract: timestamps, slots and identifiers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import CoreSchema, PydanticKnownError, core_schema

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})?$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TENANT = r"^[a-z0-9][a-z0-9-]{0,63}$"
_PHONE_PATTERN = r"^\+?[0-9 ()./\-]+$"
_PHONE = re.compile(_PHONE_PATTERN)
_EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"
_PHONE_MAX_LENGTH = 40
# What `datetime.isoformat` writes, and what most producers send: `_parse_datetime` would hand
# such a string to `fromisoformat` unchanged, so it can go there directly.
_CANONICAL_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest moment an event may carry (timestamps and slots)."""
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Moments must be before this one: years 1970 to 2999, in UTC. Far from the limits of Python's
dates, so adding a rule's window to any moment of an event never overflows."""
_RANGE = "must lie in the years 1970 to 2999 (UTC)"


def _in_range(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"{moment.isoformat()} {_RANGE}")
    return moment


def _date_in_range(day: date) -> date:
    if not EARLIEST.year <= day.year < LATEST.year:
        raise ValueError(f"{day.isoformat()} {_RANGE}")
    return day


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
    return _in_range(parsed)


def parse_timestamp(value: Any) -> datetime:
    """Parse an RFC 3339 date-time that carries a UTC offset, in the years 1970 to 2999."""
    if type(value) is str and _CANONICAL_DATETIME.fullmatch(value):
        return _in_range(datetime.fromisoformat(value))
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("datetime has no UTC offset; naive timestamps are ambiguous")
        return _in_range(value)
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with a UTC offset")
    return _parse_datetime(value.strip())


def parse_slot(value: Any) -> datetime | date:
    """Parse a slot: an RFC 3339 date-time with offset, or a plain date (years 1970 to 2999)."""
    if type(value) is str and _CANONICAL_DATETIME.fullmatch(value):
        return _in_range(datetime.fromisoformat(value))
    if isinstance(value, datetime):
        return parse_timestamp(value)
    if isinstance(value, date):
        return _date_in_range(value)
    if not isinstance(value, str):
        raise ValueError("must be a date (2024-03-12) or a date-time with offset")
    text = value.strip()
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date") from exc
        return _date_in_range(day)
    return _parse_datetime(text)


def _iso(value: datetime | date) -> str:
    return value.isoformat()


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lengths(min_length: int, max_length: int) -> Callable[[str], str]:
    # `StringConstraints` after a `BeforeValidator` cannot reach pydantic-core's string check,
    # so pydantic applies each bound as a Python function of its own. One function for both
    # saves a call per field and raises exactly the errors those two would raise.
    def check(value: str) -> str:
        size = len(value)
        if size < min_length:
            raise PydanticKnownError(
                "too_short",
                {"field_type": "Value", "min_length": min_length, "actual_length": size},
            )
        if size > max_length:
            raise PydanticKnownError(
                "too_long",
                {"field_type": "Value", "max_length": max_length, "actual_length": size},
            )
        return value

    return check


def _check_phone(value: str) -> str:
    # The length bound was a `StringConstraints` of its own: checked here, it costs no call.
    if len(value) > _PHONE_MAX_LENGTH:
        raise PydanticKnownError(
            "too_long",
            {"field_type": "Value", "max_length": _PHONE_MAX_LENGTH, "actual_length": len(value)},
        )
    if not _PHONE.match(value):
        raise ValueError("may hold only digits, spaces, a leading + and ( ) . / -")
    if sum(map(str.isdigit, value)) < 6:  # the same count as a generator, without its frames
        raise ValueError("needs at least 6 digits")
    return value


@dataclass(frozen=True, slots=True)
class _ThenPattern:
    """Check a pattern in pydantic-core after the annotations before it, with no Python call."""

    # `StringConstraints(pattern=...)` after a Python validator becomes a Python wrap function
    # around the same pydantic-core check; a chain step runs that check directly.

    pattern: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.chain_schema(
            [handler(source), core_schema.str_schema(pattern=self.pattern)]
        )


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

# The strings below are trimmed by Python's `str.strip` (pydantic-core's `strip_whitespace`
# trims fewer characters, and its length errors read differently), then bounded by `_lengths`;
# `WithJsonSchema` states the bounds the exported schema has always shown.

Name = Annotated[
    str,
    BeforeValidator(_strip),
    AfterValidator(_lengths(1, 200)),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200}),
]
"""A short non-empty label: a form name, a programme, a party."""

Identifier = Annotated[
    str,
    BeforeValidator(_strip),
    AfterValidator(_lengths(1, 256)),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 256}),
]
"""A non-empty identifier as the source system wrote it."""

Email = Annotated[
    str,
    BeforeValidator(_strip),
    AfterValidator(_lengths(3, 320)),
    _ThenPattern(_EMAIL_PATTERN),
    WithJsonSchema({"type": "string", "minLength": 3, "maxLength": 320}),
]
"""An e-mail address (one @, no spaces)."""

Phone = Annotated[
    str,
    BeforeValidator(_strip),
    AfterValidator(_check_phone),
    WithJsonSchema({"type": "string", "pattern": _PHONE_PATTERN, "maxLength": _PHONE_MAX_LENGTH}),
]
"""A phone number as written: national or international, any punctuation."""

TenantId = Annotated[str, StringConstraints(pattern=_TENANT)]
"""A tenant: lower-case letters, digits and dashes, starting with a letter or digit."""
