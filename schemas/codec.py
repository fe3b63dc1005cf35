"""Bytes in, events out: decode, mask card numbers, validate, and say exactly what is wrong."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from schemas.errors import FieldProblem, InvalidEventError
from schemas.events import CURRENT_SCHEMA_VERSION, EVENT_TYPES, Event
from schemas.redaction import mask_text, mask_value, may_hold_card
from schemas.upcasting import needs_upcast, upcast

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
"""Validates and serialises any event of the catalogue."""


def encode_event(event: Event) -> bytes:
    """The canonical JSON bytes of an event (absent fields left out, extra payload fields kept)."""
    if _null_extras(event):
        return orjson.dumps(event_to_dict(event))
    return EVENT_ADAPTER.dump_json(event, exclude_none=True)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict, as `encode_event` writes it."""
    data: dict[str, Any] = EVENT_ADAPTER.dump_python(event, mode="json", exclude_none=True)
    # `exclude_none` leaves out absent optional fields, but a producer's own payload field
    # that is null was sent on purpose: keep it, so that decoding the encoding is the event.
    data["payload"].update(_null_extras(event))
    return data


def _null_extras(event: Event) -> dict[str, None]:
    extra = event.payload.model_extra or {}
    return {key: None for key, value in extra.items() if value is None}


def decode_trusted(raw: bytes) -> Event:
    """Decode bytes that `encode_event` wrote (read back from the ledger's own topics)."""
    return EVENT_ADAPTER.validate_json(raw)


def decode_event(raw: bytes | str) -> Event:
    """Decode one event from a producer: mask card numbers, upcast, validate.

    Raises `InvalidEventError` naming each field and reason; reasons never hold a card number.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if not may_hold_card(data):
        try:
            return EVENT_ADAPTER.validate_json(data)
        except ValidationError as exc:
            first_error = exc
        document = _load(data)
        if not (isinstance(document, dict) and needs_upcast(document)):
            raise InvalidEventError(problems_of(first_error, document)) from None
    else:
        document = _load(data)
    return validate_document(document)


def validate_document(document: Any) -> Event:
    """Validate an already decoded JSON value as an event (masking card numbers first)."""
    document, masked = mask_value(document)
    if not isinstance(document, dict):
        raise InvalidEventError((FieldProblem("", "an event must be a JSON object"),))
    if masked:
        document["redacted"] = True
    document = upcast(document)
    try:
        return EVENT_ADAPTER.validate_python(document)
    except ValidationError as exc:
        raise InvalidEventError(problems_of(exc, document)) from None


def _load(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError((FieldProblem("", f"invalid JSON: {exc}"),)) from None


def problems_of(error: ValidationError, document: Any) -> tuple[FieldProblem, ...]:
    """Turn pydantic's errors into field problems a producer can act on."""
    problems: list[FieldProblem] = []
    for detail in error.errors(include_url=False):
        problem = _problem(detail, document)
        if problem not in problems:
            problems.append(problem)
    return tuple(problems)


def _problem(detail: ErrorDetails, document: Any) -> FieldProblem:
    kind = detail["type"]
    loc = list(detail["loc"])
    if kind == "union_tag_not_found":
        return FieldProblem("type", "required: one of " + ", ".join(EVENT_TYPES))
    if kind == "union_tag_invalid":
        given = document.get("type") if isinstance(document, dict) else None
        return FieldProblem(
            "type", f"unknown event type {given!r}; expected one of " + ", ".join(EVENT_TYPES)
        )
    if loc and isinstance(loc[0], str) and loc[0] in EVENT_TYPES:
        loc = loc[1:]  # pydantic names the union member first; producers know it as `type`
    field = _dotted(loc)
    if field == "schema_version" and kind == "literal_error":
        version = document.get("schema_version") if isinstance(document, dict) else None
        if isinstance(version, int) and version > CURRENT_SCHEMA_VERSION:
            reason = (
                f"version {version} is newer than this ledger reads "
                f"({CURRENT_SCHEMA_VERSION}); upgrade journey-ledger"
            )
        else:
            reason = (
                f"unsupported version {version!r}; this ledger reads 1 to {CURRENT_SCHEMA_VERSION}"
            )
        return FieldProblem(field, reason)
    return FieldProblem(field, _reason(detail))


def _dotted(loc: list[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


_REASONS = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_too_short": "must not be empty",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "bool_type": "must be true or false",
}


def _reason(detail: ErrorDetails) -> str:
    kind = detail["type"]
    if kind in _REASONS:
        return _REASONS[kind]
    message = detail["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    text, _ = mask_text(message[:1].lower() + message[1:])
    return text


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that is not a valid event, with the physical line number and the reason."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event and the physical line it came from."""

    line: int
    event: Event


def decode_lines(lines: Iterable[bytes]) -> Iterator[Accepted | Rejected]:
    """Decode JSON Lines; blank lines are skipped, bad lines rejected, good ones kept."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield Accepted(number, decode_event(line))
        except InvalidEventError as exc:
            yield Rejected(number, "; ".join(str(p) for p in exc.problems))
