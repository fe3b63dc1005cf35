"""Read the ledger's own events back without running the contract's Python checks again.

Every event on the ledger's own topics and in its state passed the door
(`schemas.codec.decode_event`) and was then written by `encode_event`: its strings are already
trimmed and within their bounds, its phone numbers well formed, its customer identified. Only
the ledger writes there, so reading those bytes back need not pay for those checks again.

The trusted validator is pydantic's own validator of the contract with exactly those checks
taken out: the Python functions `_strip`, the length bounds of `_lengths`, `_check_phone` and
`Customer`'s identifier check. The contract's parsers of moments and slots, which take every
spelling a producer may send, are replaced by the C parsers (`fromisoformat`) of the one
spelling `encode_event` writes, its shape checked in pydantic-core first. Everything else stays
as validation has it, in pydantic-core: the same model classes built the same way (field order,
`model_extra`, `model_fields_set`, frozen), the same JSON parser, types, enums, literals,
decimals, tuples, string patterns and limits. So the trusted validator runs no Python code of
its own, and for the bytes `encode_event` writes, both give equal events that encode to the
very same bytes (tested on every golden file, the demo, synthetic loads, generated, sealed and
upcast events); anything of the wrong shape fails with a `ValidationError`, and
`schemas.codec.decode_trusted` then validates it in full.

Measured in instructions (callgrind, 10,000 of the bench load's events as `encode_event` wrote
them): see docs/benchmark-history.md, issue 14 item 3. Building the models from Python instead
(orjson or msgspec, then a per-field plan setting each model's slots as `model_construct`
does, sources and customers shared between events) was measured in an earlier session and
read at 0.8-0.9 times validation's rate: the cost of reading an event is building its objects,
which pydantic-core does in Rust; what is taken out here is the part that ran in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from types import CodeType
from typing import Any, cast

from pydantic import BaseModel, TypeAdapter
from pydantic_core import SchemaValidator, core_schema

from schemas.envelope import MAX_TEXT_LENGTH
from schemas.events import Customer, Event
from schemas.types import (
    _EMAIL_PATTERN,
    _check_phone,
    _lengths,
    _strip,
    parse_slot,
    parse_timestamp,
)

_TRUSTED_CHECKS: frozenset[CodeType] = frozenset(
    {
        _strip.__code__,
        _lengths(0, 0).__code__,  # every bound `_lengths` makes is this one function's code
        _check_phone.__code__,
        Customer._has_identifier.__code__,
    }
)
"""The contract's Python checks of a value's content (their code): what the door checked.

Each either leaves a value the door accepted as it is or refuses it, so leaving them out
changes nothing for the bytes `encode_event` wrote."""

_WRAPPERS = frozenset({"function-before", "function-after"})

_SEALABLE_BOUNDS = {"pattern": _EMAIL_PATTERN, "max_length": MAX_TEXT_LENGTH}
"""The string bounds a personal value's ciphertext (`enc:v1:...`, `streams.crypto.fields`) or
`[erased]` does not meet: the e-mail pattern and the longest text. The door checked the clear
values against them; what the ledger stored since may be sealed, so its reads leave them out."""


_YEAR = "(?:19[7-9][0-9]|2[0-9]{3})"  # 1970 to 2999: the door's range, by the written year
_DAY = _YEAR + "-[0-9]{2}-[0-9]{2}"
_WRITTEN_DATE = f"^{_DAY}$"
_WRITTEN_MOMENT = (
    f"^{_DAY}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?:[.][0-9]{{1,6}})?(?:Z|[+-][0-9]{{2}}:[0-9]{{2}})$"
)
"""A moment as `datetime.isoformat` writes one with its offset: all `encode_event` writes."""


def _parsed_as(pattern: str, parse: Callable[[str], Any]) -> core_schema.CoreSchema:
    """A string of that shape, checked in pydantic-core, handed to a parser written in C."""
    return core_schema.chain_schema(
        [
            core_schema.str_schema(pattern=pattern),
            core_schema.no_info_plain_validator_function(parse),
        ]
    )


_WRITTEN_TIMESTAMP = _parsed_as(_WRITTEN_MOMENT, datetime.fromisoformat)
_WRITTEN_SLOT = core_schema.union_schema(
    [_parsed_as(_WRITTEN_DATE, date.fromisoformat), _WRITTEN_TIMESTAMP], mode="left_to_right"
)
_WRITTEN_PARSERS: dict[CodeType | None, core_schema.CoreSchema] = {
    parse_timestamp.__code__: _WRITTEN_TIMESTAMP,
    parse_slot.__code__: _WRITTEN_SLOT,
}
"""The contract's parsers of moments and slots (their code), and what reads them as written.

The contract's parsers take any spelling a producer may send, and run in Python for every
event: a tenth of a trusted read's instructions. What the ledger wrote is `isoformat`'s
spelling, which `fromisoformat` reads into the very value the contract's parser gives (the same
offset, a date slot still a date), with no Python frame. The shape, and with it an offset and
the door's years, is still checked, so a damaged moment fails and is validated in full, and no
naive or far-off moment gets into a fold."""


def without_content_checks(schema: Any) -> Any:
    """A copy of a pydantic core schema with the trusted checks taken out, all else kept."""
    if isinstance(schema, list):
        return [without_content_checks(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")  # a mapping of fields may hold a field named `type`
    if isinstance(kind, str) and kind in _WRAPPERS and _check_code(schema) in _TRUSTED_CHECKS:
        return without_content_checks(schema["schema"])
    if kind == "function-plain" and (written := _WRITTEN_PARSERS.get(_check_code(schema))):
        return written
    if kind == "chain" and schema["steps"][-1] == {"type": "str", "pattern": _EMAIL_PATTERN}:
        return without_content_checks(schema["steps"][0])  # `_ThenPattern`'s e-mail step
    return {
        key: value if key in _OPAQUE else without_content_checks(value)
        for key, value in schema.items()
        if not _sealable_bound(kind, key, value)
    }


def _sealable_bound(kind: object, key: str, value: object) -> bool:
    """Whether a schema entry is a bound that sealed values do not meet (left out)."""
    if key == "str_max_length":  # a model config's bound on every string, extras included
        return True
    return kind == "str" and _SEALABLE_BOUNDS.get(key) == value


_OPAQUE = frozenset({"cls", "function", "serialization", "metadata", "ref", "default"})
"""Keys whose values are not schemas: copied as they are. (A field of one of these names would
keep its checks: slower, never wrong.)"""


def _check_code(schema: dict[str, Any]) -> CodeType | None:
    function: Callable[..., Any] | None = schema.get("function", {}).get("function")
    return getattr(function, "__code__", None)


def _models(schema: Any) -> set[type[BaseModel]]:
    """Every model class a core schema builds."""
    found: set[type[BaseModel]] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "model":
                found.add(node["cls"])
            stack.extend(value for key, value in node.items() if key not in _OPAQUE)
    return found


@contextmanager
def _building_from_the_schema(models: set[type[BaseModel]]) -> Iterator[None]:
    """Let pydantic-core build these models' validators from the schema it is given.

    For a model that is complete, pydantic-core reuses the class's own validator, checks and
    all, whatever the schema says; while the models read as incomplete it builds the schema
    given. Nothing else is changed, and the flags are back as soon as the build is done.
    """
    own = {model: model.__dict__["__pydantic_complete__"] for model in models}
    try:
        for model in own:
            type.__setattr__(model, "__pydantic_complete__", False)
        yield
    finally:
        for model, flag in own.items():
            type.__setattr__(model, "__pydantic_complete__", flag)


def _build() -> tuple[SchemaValidator, SchemaValidator]:
    event = without_content_checks(TypeAdapter(Event).core_schema)
    with _building_from_the_schema(_models(event)):
        return SchemaValidator(event), SchemaValidator(core_schema.list_schema(event))


# Built at import, while the process starts: the models' flags change for a moment only, and
# before anything else can be building schemas of them.
_EVENT, _EVENT_LIST = _build()


def read_event(raw: bytes) -> Event:
    """The event of bytes `encode_event` wrote; `ValidationError` if they are not such bytes."""
    return cast(Event, _EVENT.validate_json(raw))


read_event_unwrapped = cast(Callable[[bytes], Event], _EVENT.validate_json)
"""`read_event` as pydantic-core's own method, without a Python frame around it: for loops
over many records (replay reads 75,000 in a second, and each frame is a few percent of it)."""


def read_events(raw: bytes) -> list[Event]:
    """The events of a JSON array of such bytes (a stored journey), in order."""
    return cast(list[Event], _EVENT_LIST.validate_json(raw))
