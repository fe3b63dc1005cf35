"""Build events straight from bytes the ledger wrote itself, without validating them again.

Every event on the ledger's own topics and in its state was validated once, at the door
(`schemas.codec.decode_event`), then written by `encode_event`. Only the ledger writes there,
so reading those bytes back need not pay for validation again (pydantic: about 20 µs an event,
most of replay's time). Here the JSON is parsed by orjson and the frozen pydantic models are
built directly, as `model_construct` builds them: the same classes, field values of the same
types, `model_extra` and `model_fields_set` as validation sets them, so the events are equal
to validated ones and encode to the very bytes they were read from.

What JSON cannot carry is converted from a plan made once per model at import, from its
fields: date-times and slots by the contract's own parsers (`parse_timestamp`, `parse_slot`),
amounts to `Decimal`, lists to tuples, channels to their enum members. Trusted means the
checks on a value's content are not made again (string lengths and patterns, trimming, the
customer's identifier); its shape still is: unknown or missing fields, a value of the wrong
JSON type, an unsupported schema version or an unknown event type raise `UntrustedRecord` (or
the parser's error). The caller (`schemas.codec.decode_trusted`) then validates the record as
any other, so a record written by an older version or damaged is still read, or refused with
validation's reasons, exactly as before.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from pydantic import BaseModel, PlainValidator
from pydantic.fields import FieldInfo

from schemas.events import EVENT_TYPES, Event
from schemas.types import parse_slot, parse_timestamp

Reader = Callable[[Any], Any]
"""Turns one JSON value of a field into the value validation would give it (or raises)."""


class UntrustedRecord(ValueError):
    """A record that is not what `encode_event` writes: validate it instead."""


_new = object.__new__
_set = object.__setattr__
_NONE = type(None)
_STRICT_STR = frozenset({str})
_STR_OR_NONE = frozenset({str, _NONE})
_PARSERS: dict[Callable[..., Any], Reader] = {
    parse_timestamp: parse_timestamp,
    parse_slot: parse_slot,
}


# --- readers of one value ----------------------------------------------------------------


def _string(value: Any) -> str:
    if type(value) is not str:
        raise UntrustedRecord("not a string")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise UntrustedRecord("not true or false")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise UntrustedRecord("not an integer")
    return value


def _float(value: Any) -> float:
    # A float field holds a float; a whole number written without a point reads as one too.
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise UntrustedRecord("not a number")


def _decimal(value: Any) -> Decimal:
    # `encode_event` writes amounts as strings, exactly as `str(Decimal)` gives them.
    if type(value) is not str:
        raise UntrustedRecord("an amount not written as a string")
    amount = Decimal(value)
    if not amount.is_finite():
        raise UntrustedRecord("an amount that is not a finite number")
    return amount


def _strings(value: Any) -> tuple[str, ...]:
    if type(value) is not list or not _STRICT_STR.issuperset(map(type, value)):
        raise UntrustedRecord("not a list of strings")
    return tuple(value)


def _items(read: Reader) -> Reader:
    def items(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise UntrustedRecord("not a list")
        return tuple(map(read, value))

    return items


def _one_of(choices: Mapping[Any, Any]) -> Reader:
    """A literal or an enum: the value (or member) for each JSON value allowed."""
    lookup = dict(choices).__getitem__  # KeyError, or TypeError for a list: not one of them
    if all(type(value) is str for value in choices):
        return lookup  # only a string equals a string: the lookup is the whole check (a dict's)
    kinds = {value: type(value) for value in choices}

    def one_of(value: Any) -> Any:
        member = lookup(value)
        if type(value) is not kinds[value]:
            raise UntrustedRecord("a value of the wrong JSON type")  # True or 1.0 for 1
        return member

    return one_of


# --- plans, one per model -----------------------------------------------------------------


def _reader(annotation: Any, metadata: list[Any]) -> Reader:
    """The reader of a (non-null) value of this annotation; unknown kinds fail at import."""
    for item in metadata:
        if isinstance(item, PlainValidator):
            return _PARSERS[item.func]  # the contract's own parser: the very same value
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *more = get_args(annotation)
        return _reader(base, more)
    if origin is Literal:
        return _one_of({value: value for value in get_args(annotation)})
    if origin is tuple:
        item, ellipsis = get_args(annotation)
        assert ellipsis is Ellipsis, annotation
        read = _reader(item, [])
        return _strings if read is _string else _items(read)
    simple = {str: _string, bool: _bool, int: _int, float: _float, Decimal: _decimal}
    if annotation in simple:
        return simple[annotation]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _one_of({member.value: member for member in annotation})
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _plan(annotation).read
    raise TypeError(f"no trusted reader for {annotation!r}")


def _nullable(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `None`, and whether `None` was allowed."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [arg for arg in args if arg is not _NONE]
        if len(rest) == 1 and len(rest) < len(args):
            return rest[0], True
    return annotation, False


class _Required:
    """Stands in the template for a required field (never read: presence is checked first)."""


_REQUIRED = _Required()


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to build one model from its JSON object."""

    model: type[BaseModel]
    template: dict[str, Any]
    """Every field in declaration order, with its default: a copy updated with the object
    holds the fields in the order validation puts them in `__dict__`."""
    names: frozenset[str]
    required: frozenset[str]
    extra: bool
    """Unknown fields are the producer's own, kept in `model_extra` (payloads)."""
    strings: Callable[[dict[str, Any]], tuple[Any, ...]] | None
    """The values of the plain string fields that are not nullable."""
    nullable_strings: Callable[[dict[str, Any]], tuple[Any, ...]] | None
    converted: tuple[tuple[str, Reader, bool], ...]
    """(name, reader, nullable) of every other field."""
    shared: dict[tuple[tuple[str, Any], ...], BaseModel] | None
    """Models already built, by their JSON object's items, when every field is a string."""

    def read(self, data: Any) -> BaseModel:
        """The model this JSON object holds, as validation builds it."""
        if type(data) is not dict:
            raise UntrustedRecord(f"{self.model.__name__}: not an object")
        shared = self.shared
        if shared is None:
            return self._build(data)
        # Sources and customers repeat from event to event: equal frozen models can be one.
        # Only a string equals a string, so a hit is an object read before, value for value.
        key = tuple(data.items())
        model = shared.get(key)  # TypeError for a list or object: not what the ledger writes
        if model is None:
            model = self._build(data)
            if len(shared) >= SHARED_MODELS:
                shared.clear()
            shared[key] = model
        return model

    def _build(self, data: dict[str, Any]) -> BaseModel:
        values = self.template.copy()
        values.update(data)  # known fields keep the template's order; unknown ones come last
        extra: dict[str, Any] | None = {} if self.extra else None
        if len(values) != len(self.template):
            if extra is None:
                raise UntrustedRecord(f"{self.model.__name__}: unknown fields")
            names = self.names
            extra = {key: value for key, value in data.items() if key not in names}
            for key in extra:
                del values[key]
        if not data.keys() >= self.required:
            raise UntrustedRecord(f"{self.model.__name__}: a required field is missing")
        if self.strings is not None and not _STRICT_STR.issuperset(map(type, self.strings(values))):
            raise UntrustedRecord(f"{self.model.__name__}: a field is not a string")
        if self.nullable_strings is not None and not _STR_OR_NONE.issuperset(
            map(type, self.nullable_strings(values))
        ):
            raise UntrustedRecord(f"{self.model.__name__}: a field is not a string")
        for name, read, nullable in self.converted:
            if name in data:
                value = values[name]
                if value is not None or not nullable:
                    values[name] = read(value)
        model = _new(self.model)
        _set(model, "__dict__", values)
        # Validation counts every key given as set, the producer's own payload fields too.
        _set(model, "__pydantic_fields_set__", set(data))
        _set(model, "__pydantic_extra__", extra)
        _set(model, "__pydantic_private__", None)
        return model


def _getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]] | None:
    """The values of these fields as a tuple, from one C call."""
    if not names:
        return None
    # One name would give the value itself, not a tuple: ask for it twice.
    getter: Callable[[dict[str, Any]], tuple[Any, ...]] = itemgetter(*names, *names[:1])
    return getter


_PLANS: dict[type[BaseModel], _Plan] = {}

SHARED_MODELS = 8192
"""Sources and customers kept per model to be shared by later events; all dropped when full."""


def _plan(model: type[BaseModel]) -> _Plan:
    """The plan of a model, made from its fields once."""
    if model in _PLANS:
        return _PLANS[model]
    # What `model_construct` would do beyond setting the four slots, none of it is used here.
    if (
        model.__pydantic_post_init__
        or model.__private_attributes__
        or model.__pydantic_root_model__
    ):
        raise TypeError(f"{model.__name__}: the trusted reader builds plain models only")
    fields: dict[str, FieldInfo] = model.model_fields
    if any(field.alias or field.validation_alias for field in fields.values()):
        raise TypeError(f"{model.__name__}: the trusted reader reads no aliases")
    template: dict[str, Any] = {}
    strings: list[str] = []
    nullable_strings: list[str] = []
    converted: list[tuple[str, Reader, bool]] = []
    for name, field in fields.items():
        template[name] = (
            _REQUIRED if field.is_required() else field.get_default(call_default_factory=True)
        )
        annotation, nullable = _nullable(field.annotation)
        read = _reader(annotation, field.metadata)
        if read is _string:
            (nullable_strings if nullable else strings).append(name)
        else:
            converted.append((name, read, nullable))
    # Models of strings only (sources, customers) are shared: their JSON items are a key.
    only_strings = model.model_config.get("extra") != "allow" and all(
        isinstance(getattr(read, "__self__", None), dict) for _, read, _ in converted
    )
    plan = _Plan(
        model=model,
        template=template,
        names=frozenset(fields),
        required=frozenset(name for name, field in fields.items() if field.is_required()),
        extra=model.model_config.get("extra") == "allow",
        strings=_getter(strings),
        nullable_strings=_getter(nullable_strings),
        converted=tuple(converted),
        shared={} if only_strings else None,
    )
    _PLANS[model] = plan
    return plan


def _event_models() -> dict[str, type[BaseModel]]:
    """Each event type's model, from the `Event` union."""
    union, *_ = get_args(Event)
    models: dict[str, type[BaseModel]] = {}
    for model in get_args(union):
        (tag,) = get_args(model.model_fields["type"].annotation)
        models[tag] = model
    assert set(models) == set(EVENT_TYPES), "the catalogue and the union disagree"
    return models


_READERS: dict[str, Callable[[Any], BaseModel]] = {
    tag: _plan(model).read for tag, model in _event_models().items()
}


def _read(document: Any) -> Event:
    if type(document) is not dict:
        raise UntrustedRecord("an event must be a JSON object")
    read = _READERS.get(document.get("type"))  # type: ignore[arg-type]
    if read is None:
        raise UntrustedRecord("no known event type")
    return read(document)  # type: ignore[return-value]


def read_event(raw: bytes) -> Event:
    """The event of bytes `encode_event` wrote; raises on anything else (validate it then)."""
    return _read(orjson.loads(raw))


def read_events(raw: bytes) -> list[Event]:
    """The events of a JSON array of such bytes (a stored journey), in order."""
    documents = orjson.loads(raw)
    if type(documents) is not list:
        raise UntrustedRecord("not a JSON array")
    return [_read(document) for document in documents]
