"""Reading back the ledger's own bytes: `decode_trusted` gives the very event the door accepted.

The stream worker and replay decode every event they read from the ledger's topics with
`decode_trusted`. For bytes that `encode_event` wrote, the result must be the event that was
encoded, as validation builds it: equal, with the same concrete type in every field (a date slot
stays a date, an offset stays that offset, amounts stay `Decimal`, lists become tuples, the
channel an enum member), the producer's extra payload fields kept, re-encoding to the same
bytes, and still frozen. Anything of another shape must fail exactly as validation fails (the
content of values the door checked is trusted: see `test_trusted_codec.py`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel, ValidationError

from journeys.bench.load import skewed_lines
from journeys.demo import demo_lines
from schemas.codec import EVENT_ADAPTER, decode_event, decode_trusted, encode_event
from schemas.events import DECISION_TYPES, ERASURE_TYPE, EVENT_TYPES, HANDLING_TYPES, Channel, Event
from tests.factories import ev
from tests.unit.test_properties import Scenario, scenarios

GOLDEN_FILES = sorted((Path(__file__).resolve().parents[1] / "golden" / "v1").glob("*.json"))


def _assert_same_value(got: Any, want: Any, where: str) -> None:
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, BaseModel):
        _assert_same_model(got, want, where)
    elif isinstance(want, tuple):
        assert len(got) == len(want), where
        for index, (item, wanted) in enumerate(zip(got, want, strict=True)):
            _assert_same_value(item, wanted, f"{where}[{index}]")
    else:
        assert got == want, where
        if isinstance(want, datetime):
            assert got.tzinfo == want.tzinfo, where
            assert got.utcoffset() == want.utcoffset(), where


def _assert_same_model(got: BaseModel, want: BaseModel, where: str = "event") -> None:
    assert list(got.__dict__) == list(want.__dict__), where  # field order too: it is the encoding
    for name, value in want.__dict__.items():
        _assert_same_value(got.__dict__[name], value, f"{where}.{name}")
    assert got.model_extra == want.model_extra, where


def _fields_sets(model: BaseModel) -> list[set[str]]:
    nested = [value for value in model.__dict__.values() if isinstance(value, BaseModel)]
    return [set(model.model_fields_set), *(s for value in nested for s in _fields_sets(value))]


def _assert_reads_back(event: Event) -> Event:
    raw = encode_event(event)
    decoded = decode_trusted(raw)
    assert decoded == event
    _assert_same_model(decoded, event)
    validated = EVENT_ADAPTER.validate_json(raw)
    assert decoded == validated
    _assert_same_model(decoded, validated)
    assert _fields_sets(decoded) == _fields_sets(validated)
    assert encode_event(decoded) == raw == encode_event(validated)
    with pytest.raises(ValidationError, match="frozen"):
        decoded.event_id = "changed"
    with pytest.raises(ValidationError, match="frozen"):
        decoded.payload.note = "changed"  # type: ignore[union-attr]
    return decoded


# --- what the ledger holds --------------------------------------------------------------------


def test_every_demo_event_reads_back() -> None:
    for line in demo_lines():
        _assert_reads_back(decode_event(line))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_every_golden_event_reads_back(path: Path) -> None:
    _assert_reads_back(decode_event(path.read_bytes()))


def test_a_synthetic_load_over_the_whole_catalogue_reads_back() -> None:
    events = [decode_event(line) for line in skewed_lines(3000, 600)]
    assert {event.type for event in events} == set(
        EVENT_TYPES
    ) - DECISION_TYPES - HANDLING_TYPES - {ERASURE_TYPE}
    for event in events:
        _assert_reads_back(event)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(max_events=12))
def test_generated_events_read_back(scenario: Scenario) -> None:
    for event in scenario.events:
        _assert_reads_back(event)


# --- the values that must keep their kind ------------------------------------------------------


def test_extra_payload_fields_come_back_as_they_were_sent() -> None:
    extra = {
        "nothing": None,
        "tags": ["a", 1, None, 2.5, {"deep": [True]}],
        "campaign": {"utm": ["spring", 2], "none": None},
        "attempt": 3,
        "ratio": 0.1,
        "big": 2**62,
        "flag": False,
        "locale": "en-GB",
    }
    event = ev("form.submitted", {"form": "contact", **extra})
    decoded = _assert_reads_back(event)
    assert decoded.payload.model_extra == extra


def test_a_date_slot_stays_a_date_and_a_date_time_slot_keeps_its_offset() -> None:
    dated = _assert_reads_back(ev("booking.created", {"booking_id": "B1", "slot": "2024-03-12"}))
    assert type(dated.payload.slot) is date  # type: ignore[union-attr]
    timed = _assert_reads_back(
        ev("booking.created", {"booking_id": "B1", "slot": "2024-03-12T10:30:00+01:00"})
    )
    slot = timed.payload.slot  # type: ignore[union-attr]
    assert type(slot) is datetime
    assert slot.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    "moment",
    [
        "2024-03-12T10:30:00+05:30",
        "2024-03-12T10:30:00-08:00",
        "2024-03-12T10:30:00Z",
        "2024-03-12 10:30z",
        "2024-03-12T10:30:00.123456789-05:00",
        "2024-03-12T10:30:00.5+00:00",
    ],
)
def test_an_occurred_at_keeps_its_offset(moment: str) -> None:
    event = ev("message.received", {"medium": "email"}, when=moment)
    decoded = _assert_reads_back(event)
    assert decoded.occurred_at.utcoffset() == event.occurred_at.utcoffset()


@pytest.mark.parametrize(
    "amount", ["34.98", "0.10", "-0.00", "1E+2", "1e-7", "12345678901234567890.123456789", 5, 5.5]
)
def test_an_amount_stays_the_same_decimal(amount: Any) -> None:
    event = ev("payment.captured", {"payment_id": "P1", "amount": amount, "currency": "GBP"})
    decoded = _assert_reads_back(event)
    assert type(decoded.payload.amount) is Decimal  # type: ignore[union-attr]
    assert str(decoded.payload.amount) == str(event.payload.amount)  # type: ignore[union-attr]


def test_enums_tuples_floats_and_defaults_keep_their_kind() -> None:
    chat = _assert_reads_back(
        ev(
            "chat.message",
            {"speaker": "agent", "asked_for": ["plate", "phone"]},
            source={"channel": "chat"},
        )
    )
    assert chat.source.channel is Channel.CHAT
    assert chat.payload.asked_for == ("plate", "phone")  # type: ignore[union-attr]
    assert chat.payload.provided == ()  # type: ignore[union-attr]
    survey = _assert_reads_back(ev("survey.responded", {"score": 7, "scale": 10}))
    assert type(survey.payload.score) is float  # type: ignore[union-attr]
    assert type(survey.payload.scale) is int  # type: ignore[union-attr]
    answered = _assert_reads_back(ev("enquiry.responded"))
    assert answered.payload.model_extra == {}
    found = _assert_reads_back(ev("recall.lookup", {"recall_code": "R-1", "found": False}))
    assert found.payload.found is False  # type: ignore[union-attr]


def test_a_redacted_event_reads_back_redacted() -> None:
    event = ev("message.received", {"medium": "email", "text": "card 4111 1111 1111 1111"})
    assert event.redacted
    assert _assert_reads_back(event).redacted


# --- what is not the ledger's own bytes --------------------------------------------------------


def _form_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(encode_event(ev("form.submitted", {"form": "contact"})))
    document.update(changes)
    return document


def _outcome(raw: bytes, decode: Any) -> Event | list[Any]:
    try:
        event: Event = decode(raw)
    except ValidationError as exc:
        return list(exc.errors(include_url=False, include_context=False))
    return event


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{oops",
        b"null",
        b"[]",
        b'"form.submitted"',
        b"{}",
        b'{"type": "form.exploded"}',
        orjson.dumps(_form_document(schema_version=2)),
        orjson.dumps(_form_document(schema_version=0)),
        orjson.dumps(_form_document(schema_version=True)),
        orjson.dumps(_form_document(occurred_at="2024-03-12T10:30:00")),
        orjson.dumps(_form_document(occurred_at="2024-03-12T10:30:00+05:30:15")),
        orjson.dumps(_form_document(colour="red")),
        orjson.dumps(_form_document(type=["form.submitted"])),
        orjson.dumps(_form_document(redacted=1)),
    ],
    ids=lambda raw: raw[:40].decode(errors="replace"),
)
def test_anything_else_is_read_exactly_as_validation_reads_it(raw: bytes) -> None:
    expected = _outcome(raw, EVENT_ADAPTER.validate_json)
    got = _outcome(raw, decode_trusted)
    if isinstance(expected, list):
        assert got == expected  # the same errors, as pydantic's ValidationError
    else:
        assert isinstance(got, BaseModel)
        _assert_same_model(got, expected)


def test_a_document_without_the_written_defaults_is_still_read_as_validation_reads_it() -> None:
    document = _form_document()
    del document["schema_version"], document["redacted"]
    raw = orjson.dumps(document)
    decoded = decode_trusted(raw)
    _assert_same_model(decoded, EVENT_ADAPTER.validate_json(raw))
    assert decoded.schema_version == 1
    assert decoded.redacted is False
