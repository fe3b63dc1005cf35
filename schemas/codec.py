"""Bytes in, events out: decode, mask card numbers, validate, and say exactly what is wrong."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from schemas.errors import FieldProblem, InvalidEventError
from schemas.events import CURRENT_SCHEMA_VERSION, EVENT_TYPES, MAX_TEXT_LENGTH, Event
from schemas.redaction import mask_text, mask_value, may_hold_card
from schemas.trusted import read_event, read_events
from schemas.upcasting import needs_upcast, upcast

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
"""Validates and serialises any event of the catalogue."""

MAX_DEPTH = 32
"""The deepest nesting of objects and arrays an event may have (the event object is level 1).

Checked on the raw bytes, without recursion, before anything recursive (parsing, masking,
validation, encoding) sees the event."""


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
    """Decode bytes that `encode_event` wrote (read back from the ledger's own topics and state).

    Trusted: only the ledger writes there, and everything it wrote passed `decode_event`, so
    the contract's Python checks of values are not run again (`schemas.trusted`). Bytes the
    trusted validator refuses (damaged, or not the ledger's) are validated in full, so that
    the error, and a dead letter's reason, is validation's own.
    """
    try:
        return read_event(raw)
    except ValidationError:
        return EVENT_ADAPTER.validate_json(raw)


def decode_trusted_events(raw: bytes) -> list[Event]:
    """Decode a stored journey: a JSON array of events `encode_event` wrote, as `decode_trusted`."""
    try:
        return read_events(raw)
    except ValidationError:
        return _event_list_adapter().validate_json(raw)


@cache
def _event_list_adapter() -> TypeAdapter[list[Event]]:
    # Built on first need: only a stored journey the trusted validator refuses comes here.
    return TypeAdapter(list[Event])


def decode_event(raw: bytes | str) -> Event:
    """Decode one event from a producer: mask card numbers, upcast, validate.

    Raises `InvalidEventError` naming each field and reason; reasons never hold a card number.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if _too_deep(data):
        raise InvalidEventError((_TOO_DEEP,))
    # A long record may hold a text over the limit, to be refused before masking looks at it.
    if len(data) <= MAX_TEXT_LENGTH and not may_hold_card(data):
        try:
            return _unmarked(EVENT_ADAPTER.validate_json(data))
        except ValidationError as exc:
            # Its details, not the exception (nor, in their context, a validator's exception):
            # one kept past its block holds this frame and its callers through its traceback, a
            # cycle only the cyclic collector frees (in a worker, rarely)
            first_errors = exc.errors(include_url=False, include_context=False)
        document = _load(data)
        if not (isinstance(document, dict) and needs_upcast(document)):
            raise InvalidEventError(_problems(first_errors, document)) from None
    else:
        document = _load(data)
    return validate_document(document)


def validate_document(document: Any) -> Event:
    """Validate an already decoded JSON value as an event (masking card numbers first).

    Limits first (nesting depth, text length), then masking, then the contract. `redacted` is
    the ledger's to set: true exactly when masking changed something. An event that is valid
    as sent is never rejected because masking changed it: where a masked value no longer fits
    its field (a phone number, an amount), the hidden digits are written as 0 instead of `*`.
    """
    _check_limits(document)
    masked_document, masked = mask_value(document)
    if not isinstance(masked_document, dict):
        raise InvalidEventError((FieldProblem("", "an event must be a JSON object"),))
    masked_document["redacted"] = masked
    masked_document = upcast(masked_document)
    try:
        return EVENT_ADAPTER.validate_python(masked_document)
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_context=False)  # see `decode_event`
    if masked:
        zeroed, _ = mask_value(document, "0")
        zeroed = upcast(zeroed)
        for detail in details:
            _refill(masked_document, zeroed, detail["loc"])
        try:
            return EVENT_ADAPTER.validate_python(masked_document)
        except ValidationError:
            pass  # invalid as sent: report the first errors
    raise InvalidEventError(_problems(details, masked_document)) from None


def _unmarked(event: Event) -> Event:
    # Only masking marks an event redacted; a producer's own `"redacted": true` is dropped.
    return event.model_copy(update={"redacted": False}) if event.redacted else event


def _refill(target: Any, source: Any, loc: tuple[int | str, ...]) -> None:
    """Put `source`'s value at `loc` (a validation error's location) into `target`."""
    parts = list(loc)
    if parts and parts[0] in EVENT_TYPES:
        parts = parts[1:]
    parent: Any = None
    key: Any = None
    for part in parts:
        if isinstance(target, dict) and isinstance(source, dict):
            if part not in target or part not in source:
                break
        elif isinstance(target, list) and isinstance(source, list):
            if not (isinstance(part, int) and 0 <= part < min(len(target), len(source))):
                break
        else:
            break
        parent, key = target, part
        target, source = target[part], source[part]
    if parent is not None:
        parent[key] = source


_TOO_DEEP = FieldProblem(
    "", f"nested too deep: at most {MAX_DEPTH} levels of objects and arrays (the event is one)"
)
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


def _too_deep(data: bytes) -> bool:
    """Whether the JSON text nests objects and arrays deeper than `MAX_DEPTH` (no recursion)."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    in_string = False
    skip = -1  # the byte after a backslash inside a string is escaped
    for match in _STRUCTURE.finditer(data):
        at = match.start()
        if at == skip:
            continue
        char = data[at]
        if in_string:
            if char == 0x5C:  # backslash
                skip = at + 1
            elif char == 0x22:  # quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _check_limits(document: Any) -> None:
    """Refuse a decoded event nested too deep or holding a text over the length limit.

    Iterative, and before masking: a value's cost is bounded before anything walks it.
    """
    stack: list[tuple[Any, int, str]] = [(document, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise InvalidEventError((_TOO_DEEP,))
            for key, item in value.items():
                if isinstance(key, str) and len(key) > MAX_TEXT_LENGTH:
                    raise InvalidEventError((_too_long(path),))
                stack.append((item, depth + 1, f"{path}.{key}" if path else str(key)))
        elif isinstance(value, list | tuple):
            if depth > MAX_DEPTH:
                raise InvalidEventError((_TOO_DEEP,))
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, str) and len(value) > MAX_TEXT_LENGTH:
            raise InvalidEventError((_too_long(path),))


def _too_long(path: str) -> FieldProblem:
    # Only the first 200 characters of a path, masked: a key may be anything a producer wrote.
    field = mask_text(path[:200])[0]
    return FieldProblem(field, f"longer than {MAX_TEXT_LENGTH:,} characters")


def _load(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError((FieldProblem("", f"invalid JSON: {exc}"),)) from None


def problems_of(error: ValidationError, document: Any) -> tuple[FieldProblem, ...]:
    """Turn pydantic's errors into field problems a producer can act on."""
    return _problems(error.errors(include_url=False, include_context=False), document)


def _problems(details: Iterable[ErrorDetails], document: Any) -> tuple[FieldProblem, ...]:
    problems: list[FieldProblem] = []
    for detail in details:
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
        except Exception as exc:  # one line must never stop the rest: it is reported
            yield Rejected(number, failure(exc))


def failure(exc: BaseException) -> str:
    """The reason for a line whose processing raised: the exception type and its text, masked."""
    return mask_text(f"could not process this line: {type(exc).__name__}: {str(exc)[:300]}")[0]
