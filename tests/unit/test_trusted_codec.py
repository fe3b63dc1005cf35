"""The two codecs read the ledger's bytes alike: the trusted validator and full validation.

`schemas.trusted.read_event` reads the bytes `encode_event` wrote without the contract's
Python checks of values; `decode_trusted` uses it and validates in full whatever it refuses.
Here the trusted validator is called on its own (no fallback to hide a miss) and compared with
`EVENT_ADAPTER.validate_json` over every golden file, the demo, synthetic loads over the whole
catalogue and generated events: equal events of the same type, every field value of the same
kind, the same payload extras and fields set, the same encoding.
"""

from __future__ import annotations

import random
from datetime import date, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel, TypeAdapter, ValidationError

from journeys.bench.load import skewed_lines
from journeys.bench.synthetic import synthetic_lines
from journeys.demo import demo_lines
from projections.journey import Journey
from schemas.codec import (
    EVENT_ADAPTER,
    decode_event,
    decode_trusted,
    decode_trusted_events,
    encode_event,
)
from schemas.errors import InvalidEventError
from schemas.events import DECISION_TYPES, ERASURE_TYPE, EVENT_TYPES, HANDLING_TYPES, Event, Source
from schemas.privacy.personal import personal_paths
from schemas.trusted import read_event, read_events, without_content_checks
from schemas.trusted.reader import read_event_unwrapped
from schemas.upcasting import UPCASTERS
from streams.crypto.fields import ERASED, PREFIX, encrypt_personal
from streams.crypto.keys import new_data_key
from streams.crypto.opening import open_bytes, open_event
from streams.stages.journey.stage import append_to_journey, decode_journey, encode_journey
from tests.factories import ev
from tests.unit.test_fuzz import documents
from tests.unit.test_properties import Scenario, scenarios
from tests.unit.test_trusted_decode import GOLDEN_FILES, _assert_same_model, _fields_sets

EVENT_LIST: TypeAdapter[list[Event]] = TypeAdapter(list[Event])
KEY = new_data_key(random.Random(14).randbytes)
NOT_SCHEMAS = frozenset({"cls", "function", "serialization", "metadata", "default"})


def _assert_both_read(raw: bytes) -> Event:
    """The trusted validator and full validation give the same event for these bytes."""
    trusted = read_event(raw)
    validated = EVENT_ADAPTER.validate_json(raw)
    unwrapped = read_event_unwrapped(raw)  # replay's loop calls pydantic-core directly
    assert type(trusted) is type(validated) is type(unwrapped)
    _assert_same_model(unwrapped, trusted)
    assert trusted == validated
    _assert_same_model(trusted, validated)  # field order, each value's kind, payload extras
    assert _fields_sets(trusted) == _fields_sets(validated)
    assert encode_event(trusted) == raw == encode_event(validated)
    with pytest.raises(ValidationError, match="frozen"):
        trusted.tenant = "changed"
    return trusted


def _stored(line: bytes) -> bytes:
    """What the ledger writes for a producer's line: the door, then the encoding."""
    return encode_event(decode_event(line))


# --- every source of events ----------------------------------------------------------------------


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_every_golden_event_reads_alike(path: Path) -> None:
    _assert_both_read(_stored(path.read_bytes()))


def test_the_golden_files_cover_the_catalogue() -> None:
    assert {path.stem for path in GOLDEN_FILES} == set(EVENT_TYPES)


def test_every_demo_event_reads_alike() -> None:
    for line in demo_lines():
        _assert_both_read(_stored(line))


def test_synthetic_demo_copies_read_alike() -> None:
    for line in synthetic_lines(3):
        _assert_both_read(_stored(line))


def test_a_skewed_load_over_the_whole_catalogue_reads_alike() -> None:
    events = [_assert_both_read(_stored(line)) for line in skewed_lines(4000, 800, seed=3)]
    touchpoints = set(EVENT_TYPES) - DECISION_TYPES - HANDLING_TYPES - {ERASURE_TYPE}
    assert {event.type for event in events} == touchpoints


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(max_events=12))
def test_generated_scenarios_read_alike(scenario: Scenario) -> None:
    for event in scenario.events:
        _assert_both_read(encode_event(event))


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents())
def test_any_event_the_door_accepts_reads_alike(data: bytes) -> None:
    # Arbitrary producers' documents (extra payload fields of any JSON, odd spellings of
    # moments and amounts, card numbers masked): whatever the door takes, both read alike.
    try:
        event = decode_event(data)
    except InvalidEventError:
        return
    assert _assert_both_read(encode_event(event)) == event


def test_values_json_cannot_carry_read_alike() -> None:
    examples = [
        ev("booking.created", {"booking_id": "B1", "slot": "2024-03-12"}),
        ev("booking.created", {"booking_id": "B1", "slot": "2024-03-12T10:30:00.5-08:00"}),
        ev("payment.captured", {"payment_id": "P1", "amount": "1E+2", "currency": "GBP"}),
        ev("payment.refunded", {"payment_id": "P1", "amount": "-0.00", "currency": "GBP"}),
        ev("order.placed", {"order_id": "O1", "items": ["a", "b"], "amount": 5.5}),
        ev("chat.message", {"speaker": "bot", "asked_for": ["plate"]}, source={"channel": "chat"}),
        ev("survey.responded", {"score": 7, "scale": 10}),
        ev("enrolment.lookup", {"programme": "roadside", "found": False}),
        ev("form.submitted", {"form": "f", "tags": [1, None, {"a": [2.5]}], "none": None}),
        ev("enquiry.responded"),
        ev("message.received", {"medium": "email", "text": "card 4111 1111 1111 1111"}),
    ]
    for event in examples:
        assert _assert_both_read(encode_event(event)) == event


# --- stored journeys -----------------------------------------------------------------------------


def test_a_stored_journey_reads_alike() -> None:
    events = [decode_event(line) for line in demo_lines()]
    journey = Journey("acme", "c1", tuple(events))
    stored = encode_journey(journey)
    fast = read_events(stored)
    validated = EVENT_LIST.validate_json(stored)
    assert fast == validated == events
    for got, want in zip(fast, validated, strict=True):
        _assert_same_model(got, want)
    assert decode_journey(("acme", "c1"), stored) == journey
    grown = append_to_journey(stored, [encode_event(events[0])])
    assert decode_trusted_events(grown) == [*events, events[0]]


def test_a_stored_journey_with_a_value_the_ledger_never_writes_reads_alike() -> None:
    event = ev("form.submitted", {"form": "contact"})
    document = orjson.loads(encode_event(event))
    document["redacted"] = 0  # validation takes 0 as false; the ledger never writes it
    stored = b"[" + encode_event(event) + b"," + orjson.dumps(document) + b"]"
    assert read_events(stored) == EVENT_LIST.validate_json(stored) == [event, event]
    assert decode_trusted_events(stored) == [event, event]


def test_a_broken_stored_journey_fails_with_validations_errors() -> None:
    event = ev("form.submitted", {"form": "contact"})
    broken = b"[" + encode_event(event) + b',{"type":"form.exploded"}]'
    assert _outcome(broken, decode_trusted_events) == _outcome(broken, EVENT_LIST.validate_json)
    trusted = _outcome(broken, read_events)
    assert isinstance(trusted, list)
    assert trusted


# --- anything else: what validation says, and what is trusted ---------------------------------


def _form(**changes: Any) -> bytes:
    document = orjson.loads(encode_event(ev("form.submitted", {"form": "contact"})))
    document.update(changes)
    return orjson.dumps(document)


def _form_part(part: str, **changes: Any) -> bytes:
    document = orjson.loads(encode_event(ev("form.submitted", {"form": "contact"})))
    document[part].update(changes)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{oops",
        b"null",
        b"[]",
        b"{}",
        b'{"type": "form.exploded"}',
        _form(type=["form.submitted"]),
        _form(schema_version=2),
        _form(schema_version=True),
        _form(schema_version=1.0),
        _form(redacted=1),
        _form(colour="red"),
        _form(event_id=12),
        _form(occurred_at="2024-03-12T10:30:00"),
        _form(occurred_at="2024-03-12T10:30:00+05:30:15"),
        _form(occurred_at=1710239400),
        _form(source="web"),
        _form_part("source", channel="pigeon"),
        _form_part("source", channel=None, site=3),
        _form_part("customer", email=["a@b.c"]),
        _form_part("customer", colour="red"),
        _form_part("payload", form=None),
        _form_part("payload", requested_slot="tomorrow"),
        _form(payload=None),
        orjson.dumps(
            orjson.loads(encode_event(ev("payment.captured", {"payment_id": "P", "amount": "1"})))
            | {"payload": {"payment_id": "P", "amount": 1}}
        ),
        orjson.dumps(
            orjson.loads(encode_event(ev("survey.responded", {"score": 1})))
            | {"payload": {"score": True}}
        ),
        orjson.dumps(
            orjson.loads(encode_event(ev("chat.message", {"speaker": "bot"})))
            | {"payload": {"speaker": "bot", "asked_for": "plate"}}
        ),
    ],
    ids=lambda raw: raw[-60:].decode(errors="replace"),
)
def test_anything_else_is_read_as_validation_reads_it(raw: bytes) -> None:
    # The trusted validator refuses these as validation does; `decode_trusted` then gives
    # validation's own errors (a dead letter's reason), or, for what validation accepts
    # (`redacted` 1, say), the very same event.
    expected = _outcome(raw, EVENT_ADAPTER.validate_json)
    got = _outcome(raw, decode_trusted)
    trusted = _outcome(raw, read_event)
    assert repr(_outcome(raw, read_event_unwrapped)) == repr(trusted)
    if isinstance(expected, list):
        assert got == expected
        assert isinstance(trusted, list)
        assert trusted != []
    else:
        assert isinstance(got, BaseModel)
        assert isinstance(trusted, BaseModel)
        _assert_same_model(got, expected)
        _assert_same_model(trusted, expected)


def _outcome(raw: bytes, decode: Any) -> Any:
    try:
        return decode(raw)
    except ValidationError as exc:
        return list(exc.errors(include_url=False, include_context=False))


def test_what_is_trusted_is_the_content_the_door_checked() -> None:
    # Bytes the ledger never writes: validation refuses them or trims them; the trusted
    # validator takes them as they are. Only the ledger writes its topics and state.
    document = orjson.loads(encode_event(ev("form.submitted", {"form": "contact"})))
    trusted_only = [
        document | {"source": {"system": "  web  "}},
        document | {"source": {"system": ""}},
        document | {"customer": {"name": "Sam"}},
        document | {"customer": {"phone": "call me"}},
        document | {"payload": {"form": "x" * 300}},
    ]
    for changed in trusted_only:
        raw = orjson.dumps(changed)
        event = read_event(raw)
        assert orjson.loads(encode_event(event)) == changed
        validated = _outcome(raw, EVENT_ADAPTER.validate_json)
        assert validated != event
        assert _outcome(raw, decode_trusted) == event


def test_the_trusted_validator_runs_no_python_check() -> None:
    # A Python check added to the contract stays in the trusted validator (it is kept unless
    # named as a content check the door makes): this test then asks which it is. The
    # contract's parsers of moments and slots are replaced by the C parsers of `isoformat`'s
    # spelling, the only one the ledger writes.
    functions = {
        node["function"]["function"]
        for node in _nodes(without_content_checks(EVENT_ADAPTER.core_schema))
        if isinstance(node.get("type"), str) and node["type"].startswith("function")
    }
    assert functions == {datetime.fromisoformat, date.fromisoformat}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", "2024-03-12T10:30:00Z"),
        ("occurred_at", "2024-03-12T10:30:00.123456-08:00"),
        ("occurred_at", "2024-03-12T10:30:00+05:45"),
        ("occurred_at", "1970-01-01T00:00:00+00:00"),
        ("occurred_at", "2999-12-31T23:59:59.999999+00:00"),
        ("requested_slot", "2024-03-12"),
        ("requested_slot", "2024-03-12T10:30:00.5+01:00"),
    ],
)
def test_every_spelling_of_a_moment_isoformat_writes_reads_alike(field: str, value: str) -> None:
    document = orjson.loads(encode_event(ev("form.submitted", {"form": "contact"})))
    if field == "occurred_at":
        document[field] = value
    else:
        document["payload"][field] = value
    raw = orjson.dumps(document)
    trusted = read_event(raw)
    validated = EVENT_ADAPTER.validate_json(raw)
    assert trusted == validated
    _assert_same_model(trusted, validated)  # the same offset object, a date slot a date


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", "2024-03-12 10:30:00+00:00"),
        ("occurred_at", "2024-03-12t10:30:00z"),
        ("occurred_at", " 2024-03-12T10:30:00+00:00"),
        ("occurred_at", "2024-03-12T10:30+00:00"),
        ("occurred_at", "2024-03-12T10:30:00.1234567+00:00"),
        ("occurred_at", "2024-03-12T10:30:00"),
        ("occurred_at", "2024-03-12"),
        ("occurred_at", "1969-12-31T23:59:59+00:00"),
        ("occurred_at", "3000-01-01T00:00:00+00:00"),
        ("occurred_at", "9999-12-31T23:59:59+00:00"),
        ("occurred_at", "2024-02-30T10:30:00+00:00"),
        ("requested_slot", "2024-02-30"),
        ("requested_slot", "2024-03-12T10:30"),
        ("requested_slot", "2024-03-12T10:30:00"),
        ("requested_slot", "0001-01-01"),
    ],
)
def test_a_moment_the_ledger_never_writes_is_validated_in_full(field: str, value: str) -> None:
    # Another spelling, a naive or far-off moment, an impossible day: the trusted validator
    # refuses it (nothing naive or out of the door's years gets into a fold), and
    # `decode_trusted` gives what validation gives, the event or its errors.
    document = orjson.loads(encode_event(ev("form.submitted", {"form": "contact"})))
    if field == "occurred_at":
        document[field] = value
    else:
        document["payload"][field] = value
    raw = orjson.dumps(document)
    with pytest.raises(ValidationError):
        read_event(raw)
    expected = _outcome(raw, EVENT_ADAPTER.validate_json)
    got = _outcome(raw, decode_trusted)
    if isinstance(expected, list):
        assert got == expected
    else:
        _assert_same_model(got, expected)


# --- sealed values and older versions ---------------------------------------------------------


def _sealed(raw: bytes) -> bytes:
    """What ingest writes for an event's bytes when sealing is on (`Sealer.seal`)."""
    return orjson.dumps(
        encrypt_personal(orjson.loads(raw), KEY.key, KEY.key_id, synthetic_nonces=True)
    )


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(max_events=12))
def test_sealed_events_read_alike(scenario: Scenario) -> None:
    # Sealed bytes (`enc:v1:...` in every personal field) are never validated in full (their
    # ciphertexts meet no e-mail pattern or phone check): the trusted read keeps every
    # ciphertext as written, and opened it is the event full validation reads in clear.
    for event in scenario.events:
        clear = encode_event(event)
        sealed = _sealed(clear)
        read = read_event(sealed)
        assert encode_event(read) == sealed
        paths = personal_paths(orjson.loads(clear))
        document = read.model_dump(mode="json")
        for path in paths:
            section, _, name = path.partition(".")
            assert document[section][name].startswith(PREFIX)
        opened = open_bytes(sealed, {KEY.key_id: KEY.key})
        assert opened == open_event(read, {KEY.key_id: KEY.key})
        _assert_same_model(opened, _assert_both_read(clear))
        _assert_same_model(opened, event)
        erased = open_bytes(sealed, {})
        assert type(erased) is type(event)
        erased_document = erased.model_dump(mode="json")
        for path in paths:
            section, _, name = path.partition(".")
            assert erased_document[section][name] == ERASED


def _version_0(document: dict[str, Any]) -> dict[str, Any]:
    """A made-up older envelope: its moment was `at`, its source system a plain string."""
    older = dict(document)
    older["schema_version"] = 0
    older["at"] = older.pop("occurred_at")
    older["source"] = older["source"]["system"] if len(older["source"]) == 1 else older["source"]
    return older


def _upcast_0(document: dict[str, Any]) -> dict[str, Any]:
    lifted = dict(document)
    lifted["occurred_at"] = lifted.pop("at")
    if isinstance(lifted["source"], str):
        lifted["source"] = {"system": lifted["source"]}
    return lifted


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(max_events=12))
def test_upcast_older_versions_read_alike(scenario: Scenario) -> None:
    # An event sent in an older envelope is upcast at the door and written in the current
    # one: both codecs read what was written alike, and it is the event sent in the new one.
    with mock.patch.dict(UPCASTERS, {0: _upcast_0}):
        for event in scenario.events:
            older = _version_0(orjson.loads(encode_event(event)))
            written = encode_event(decode_event(orjson.dumps(older)))
            _assert_same_model(_assert_both_read(written), event)
            _assert_same_model(
                read_event(_sealed(written)), read_event(_sealed(encode_event(event)))
            )


def test_the_models_keep_their_own_validation() -> None:
    # Building the trusted validator marks the models incomplete for a moment only.
    schema = EVENT_ADAPTER.core_schema
    models = {node["cls"] for node in _nodes(schema) if node.get("type") == "model"}
    assert len(models) > len(EVENT_TYPES)
    assert all(model.__pydantic_complete__ is True for model in models)
    assert Source.model_validate({"system": "  web  "}).system == "web"


def _nodes(schema: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            found.append(node)
            stack.extend(value for key, value in node.items() if key not in NOT_SCHEMAS)
    return found
