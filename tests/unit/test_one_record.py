"""One record never stops a stage: whatever it raises, it goes to dead letters and the rest go on.

Also the door's limits that keep such records out before anything recursive sees them
(nesting depth, timestamps), and date arithmetic in the fold that cannot overflow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from journeys.cli.check import check_lines
from projections.moments import END_OF_TIME, later
from projections.rules import enquiries
from projections.settings import FoldSettings, RuleSettings
from schemas import codec
from schemas.codec import MAX_DEPTH, decode_event, encode_event
from schemas.errors import InvalidEventError
from streams.kafka.records import InRecord
from streams.stages import ingest as ingest_module
from streams.stages import validate as validate_module
from streams.stages.ingest import KIND_EVENT, ingest
from streams.stages.journey.stage import JourneyCache, process_events
from streams.stages.validate import validate
from streams.store.state import BatchState, LocalStore
from tests.factories import ev, raw

NOW = datetime(2026, 11, 22, tzinfo=UTC)
VISA = "4111111111111111"


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def _deep_touchpoint(depth: int, leaf: Any = "caf\u00e9") -> bytes:
    """The reported touchpoint: a payload nested `depth` deep, with one `\\u` escape."""
    document = raw("message.received", {"medium": "sms", "x": _nested(depth, leaf)})
    return json.dumps(document).encode()  # orjson refuses to write past 255 levels


def _record(value: bytes | None, offset: int = 0, key: bytes = b"acme") -> InRecord:
    return InRecord("touchpoints", 0, offset, key, value)


def _good(offset: int, event_id: str) -> InRecord:
    return _record(
        orjson.dumps(raw("message.received", {"medium": "sms"}, event_id=event_id)), offset
    )


# --- the door -----------------------------------------------------------------------------------


def test_the_reported_touchpoint_is_refused_at_the_door_with_a_reason() -> None:
    data = _deep_touchpoint(300)
    assert b"\\u00e9" in data

    with pytest.raises(InvalidEventError, match="nested too deep"):
        decode_event(data)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 5000])
def test_nesting_past_the_limit_is_refused_before_anything_recursive_runs(
    depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def untouched(*_: Any) -> Any:
        raise AssertionError("a recursive step ran on a document nested too deep")

    monkeypatch.setattr(codec, "mask_value", untouched)
    monkeypatch.setattr(codec, "_load", untouched)
    # The event object is level 1, the payload level 2: `x` holds the rest.
    data = b'{"payload": {"x": ' + b"[" * (depth - 2) + b"]" * (depth - 2) + b"}}"
    with pytest.raises(InvalidEventError, match="nested too deep"):
        decode_event(data)


def test_nesting_up_to_the_limit_is_accepted_and_brackets_in_strings_do_not_count() -> None:
    # The event (level 1) > payload (2) > x, 30 objects deep (3 to 32).
    document = raw("message.received", {"medium": "sms", "x": _nested(MAX_DEPTH - 2, "[[[{{{")})
    document["payload"]["y"] = "[" * 100 + '\\"' + "{" * 100
    event = decode_event(orjson.dumps(document))
    assert event.payload.model_extra is not None
    with pytest.raises(InvalidEventError, match="nested too deep"):
        codec.validate_document(
            raw("message.received", {"medium": "sms", "x": _nested(MAX_DEPTH - 1, 1)})
        )


def test_a_long_text_is_refused_before_masking_looks_at_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def untouched(*_: Any) -> Any:
        raise AssertionError("masking ran before the length limit was checked")

    monkeypatch.setattr(codec, "mask_value", untouched)
    document = raw("message.received", {"medium": "sms", "notes": ["1 " * 5001]})
    with pytest.raises(InvalidEventError, match=r"payload\.notes\[0\]: longer than 10,000"):
        decode_event(orjson.dumps(document))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", "9999-12-31T23:00:00+00:00"),
        ("occurred_at", "3000-01-01T00:00:00Z"),
        ("occurred_at", "1969-12-31T23:59:59Z"),
        ("occurred_at", "0001-01-01T00:00:00+01:00"),
        ("payload.requested_slot", "9999-12-31T23:00:00+00:00"),
        ("payload.requested_slot", "9999-12-31"),
        ("payload.requested_slot", "0001-01-01"),
    ],
)
def test_moments_outside_the_years_1970_to_2999_are_refused_naming_the_field(
    field: str, value: str
) -> None:
    document = raw("form.submitted", {"form": "contact"})
    if field == "occurred_at":
        document["occurred_at"] = value
    else:
        document["payload"]["requested_slot"] = value

    with pytest.raises(InvalidEventError) as caught:
        decode_event(orjson.dumps(document))
    (problem,) = caught.value.problems
    assert problem.field == field
    assert "1970 to 2999" in problem.reason


def test_the_edges_of_the_range_are_accepted() -> None:
    for moment in (
        "1970-01-01T00:00:00Z",
        "2999-12-31T23:59:59.999999Z",
        "3000-01-01T00:30:00+01:00",
    ):
        decode_event(orjson.dumps(raw("form.submitted", {"form": "contact"}, when=moment)))


# --- the fold's arithmetic ---------------------------------------------------------------------


def test_a_moment_plus_a_window_saturates_instead_of_overflowing() -> None:
    last = datetime(2999, 12, 31, 23, tzinfo=UTC)
    assert later(last, timedelta(hours=24)) == datetime(3000, 1, 1, 23, tzinfo=UTC)
    assert later(last, timedelta.max) == END_OF_TIME


def test_the_enquiry_rule_takes_any_window_on_the_last_moments() -> None:
    rules = RuleSettings(enquiry_response_window=timedelta(days=999_999_999))
    event = ev("message.received", {"medium": "sms"}, when="2999-12-31T23:00:00+00:00")
    as_of = datetime(2999, 12, 31, 23, 30, tzinfo=UTC)

    assert enquiries.detect([event], as_of, rules) == []
    assert enquiries.pending_deadline([event], as_of, rules) == END_OF_TIME


def test_check_reports_what_once_crashed_it() -> None:
    lines = [
        json.dumps(raw("message.received", {"medium": "sms", "x": _nested(255, VISA)})).encode(),
        orjson.dumps(raw("message.received", {"medium": "sms"}, when="9999-12-31T23:00:00+00:00")),
        orjson.dumps(raw("message.received", {"medium": "sms"}, when="2999-12-31T23:00:00Z")),
    ]

    report = check_lines(lines, FoldSettings())

    assert [r.line for r in report.rejected] == [1, 2]
    assert "nested too deep" in report.rejected[0].reason
    assert report.rejected[1].reason.startswith("occurred_at: ")
    assert VISA not in repr(report)
    assert report.accepted == 1


def test_check_reports_a_line_whose_fold_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from projections.ledger import Ledger

    original = Ledger.add

    def add(self: Ledger, event: Any) -> Any:
        if event.event_id == "boom":
            raise RecursionError("maximum recursion depth exceeded")
        return original(self, event)

    monkeypatch.setattr(Ledger, "add", add)
    lines = [
        orjson.dumps(raw("message.received", {"medium": "sms"}, event_id="boom")),
        orjson.dumps(raw("message.received", {"medium": "sms"}, event_id="fine")),
    ]

    report = check_lines(lines, FoldSettings())

    assert report.accepted == 1
    (rejected,) = report.rejected
    assert rejected.line == 1
    assert "RecursionError" in rejected.reason


# --- the ingest stage ----------------------------------------------------------------------------


def _dead(outs: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in outs if o.destination == "dead_letters"]


def _emitted(outs: list[Any]) -> list[str]:
    return [orjson.loads(o.value)["event_id"] for o in outs if o.destination == "events"]


def _door_then_ingest(state: BatchState, records: list[InRecord]) -> list[Any]:
    """The validate stage on raw records, then ingest on what it accepted: both stages' outputs."""
    door = validate(records)
    accepted = [
        InRecord("validated", 0, offset, o.key, o.value, 0, o.headers)
        for offset, o in enumerate(o for o in door if o.destination == "validated")
    ]
    return [o for o in door if o.destination != "validated"] + ingest(
        state, accepted, FoldSettings()
    )


def test_ingest_sets_the_reported_touchpoints_aside_and_goes_on(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "identity")
    records = [
        _record(_deep_touchpoint(300), 0),
        _record(_deep_touchpoint(950, VISA), 1),
        _good(2, "after"),
    ]
    try:
        outs = _door_then_ingest(BatchState(store, 0), records)
    finally:
        store.close()

    dead = _dead(outs)
    assert [d["offset"] for d in dead] == [0, 1]
    assert all("nested too deep" in d["reason"] for d in dead)
    assert VISA not in json.dumps(dead)
    assert _emitted(outs) == ["after"]


@pytest.mark.parametrize(
    ("module", "where"),
    [(validate_module, "encode_event"), (ingest_module, "link"), (ingest_module, "identity_ids")],
)
def test_the_stages_send_a_record_aside_whatever_it_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: Any, where: str
) -> None:
    original = getattr(module, where)

    def failing(*args: Any) -> Any:
        text = args[0].event_id if where != "link" else args[2]
        if "boom" in str(text) or (where == "link" and any("boom" in str(k) for k in text)):
            raise RecursionError("maximum recursion depth exceeded")
        return original(*args)

    monkeypatch.setattr(module, where, failing)
    boom = raw(
        "message.received",
        {"medium": "sms"},
        event_id="boom",
        customer={"customer_ref": "boom"},
    )
    store = LocalStore(tmp_path / "identity")
    state = BatchState(store, 0)
    try:
        outs = _door_then_ingest(state, [_record(orjson.dumps(boom), 0), _good(1, "after")])
    finally:
        store.close()

    (dead,) = _dead(outs)
    assert dead["error"] == "RecursionError"
    assert "RecursionError" in dead["reason"]
    assert _emitted(outs) == ["after"]
    # The record left no trace: sent again once fixed, it is not taken for a duplicate.
    assert not any(b"/boom" in key for key in state.changes if key.startswith(b"s/"))


# --- the journey stage --------------------------------------------------------------------------


def _keyed(value: bytes, offset: int, customer: bytes = b"cus_1") -> InRecord:
    headers = (("kind", KIND_EVENT), ("customer_id", customer))
    return InRecord("events", 0, offset, b"acme/" + customer, value, 0, headers)


def test_the_journey_stage_sets_an_unreadable_record_aside_and_goes_on(tmp_path: Path) -> None:
    good = encode_event(ev("message.received", {"medium": "sms"}, event_id="after"))
    records = [_keyed(b"{not json", 0), _keyed(b'{"type": "form.submitted"}', 1), _keyed(good, 2)]
    store = LocalStore(tmp_path / "journeys")
    try:
        state = BatchState(store, 0)
        outs = process_events(state, JourneyCache(), records, NOW, FoldSettings())
    finally:
        store.close()

    dead = _dead(outs)
    assert [d["offset"] for d in dead] == [0, 1]
    assert all(d["error"] == "ValidationError" for d in dead)
    assert any(key.startswith(b"j/") for key in state.changes)


def test_the_journey_stage_sets_aside_an_event_the_rules_fail_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = enquiries.detect

    def detect(events: Any, as_of: datetime, rules: RuleSettings) -> Any:
        if any(e.event_id == "boom" for e in events):
            raise OverflowError("date value out of range")
        return original(events, as_of, rules)

    monkeypatch.setattr(enquiries, "detect", detect)
    from projections import rules

    monkeypatch.setitem(rules.DETECTORS, "UNANSWERED_ENQUIRY", detect)
    first = ev("message.received", {"medium": "sms"}, event_id="first")
    boom = ev("message.received", {"medium": "sms"}, event_id="boom")
    records = [_keyed(encode_event(first), 0), _keyed(encode_event(boom), 1)]
    store = LocalStore(tmp_path / "journeys")
    try:
        state = BatchState(store, 0)
        outs = process_events(state, JourneyCache(), records, NOW, FoldSettings())
    finally:
        store.close()

    (dead,) = _dead(outs)
    assert dead["offset"] == 1
    assert dead["error"] == "OverflowError"
    (stored,) = [v for k, v in state.changes.items() if k.startswith(b"j/")]
    assert [e["event_id"] for e in orjson.loads(stored or b"[]")] == ["first"]
    flags = [orjson.loads(o.value) for o in outs if o.destination == "flags"]
    assert [f["flag"]["rule"] for f in flags] == ["UNANSWERED_ENQUIRY"]


# --- dead letters and echoes never hold a card, however it was spelled ------------------------


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(char):04x}" for char in text)


@pytest.mark.parametrize(
    "value",
    [
        # Valid JSON, an invalid event: the parsed value is masked.
        b'{"type": "form.exploded", "note": "' + _escaped(VISA).encode() + b'"}',
        b'{"type": "form.exploded", "n": [' + VISA.encode() + b"]}",
        # Not JSON: the text is unescaped, then masked.
        b'{"note": "' + _escaped("4111 1111 1111 1111").encode() + b'"',
        b'oops "' + _escaped(VISA[:8]).encode() + VISA[8:].encode() + b'"',
    ],
)
def test_a_dead_letter_never_holds_a_card_however_it_was_spelled(value: bytes) -> None:
    (out,) = validate([_record(value)])
    # ingest, reading a record no validate stage wrote, sends it aside the same way
    assert ingest(None, [_record(value)], FoldSettings()) == [out]  # type: ignore[arg-type]

    letter = orjson.loads(out.value or b"")
    original = letter["original"]
    assert "1111" in original
    assert VISA not in original
    assert _escaped(VISA[:8]) not in original
    assert "4111 1111" not in original


def test_the_api_echoes_the_event_id_as_stored() -> None:
    import asyncio
    from types import SimpleNamespace

    from journeys.server import api

    class Producer:
        async def send(self, item: Any) -> Any:
            del item
            return asyncio.get_running_loop().create_future()

    context = SimpleNamespace(producer=Producer())
    item = raw("message.received", {"medium": "sms"}, event_id=f"pan-{VISA}")

    result = asyncio.run(api._send_one(context, None, 0, item))  # type: ignore[arg-type]

    assert result["event_id"] == "pan-************1111"
    assert decode_event(orjson.dumps(item)).event_id == result["event_id"]


def test_the_timer_goes_on_past_a_journey_the_rules_fail_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from projections.evaluation import Evaluation
    from streams.stages.journey.stage import DeadlineIndex, reevaluate

    enquiry = ev("message.received", {"medium": "sms"}, event_id="waiting")
    store = LocalStore(tmp_path / "journeys")
    try:
        state = BatchState(store, 0)
        deadlines = DeadlineIndex()
        cache = JourneyCache()
        process_events(
            state,
            cache,
            [_keyed(encode_event(enquiry), 0)],
            enquiry.occurred_at,
            FoldSettings(),
            deadlines,
        )
        assert deadlines.get(0, ("acme", "cus_1")) is not None

        def broken(*_: Any) -> Any:
            raise OverflowError("date value out of range")

        # the customer's evaluation is kept from its first batch: its reading fails now
        monkeypatch.setattr(Evaluation, "changes", broken)
        outs = reevaluate(state, cache, [("acme", "cus_1")], NOW, FoldSettings(), deadlines)
    finally:
        store.close()

    assert outs == []
    assert deadlines.get(0, ("acme", "cus_1")) is None


def test_check_reports_the_lines_of_a_journey_the_rules_fail_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from projections import rules

    original = rules.DETECTORS["UNANSWERED_ENQUIRY"]

    def detect(events: Any, as_of: datetime, rules: RuleSettings) -> Any:
        if any(e.event_id == "boom" for e in events):
            raise OverflowError("date value out of range")
        return original(events, as_of, rules)

    monkeypatch.setitem(rules.DETECTORS, "UNANSWERED_ENQUIRY", detect)
    lines = [
        orjson.dumps(raw("message.received", {"medium": "sms"}, event_id="boom")),
        orjson.dumps(
            raw("message.received", {"medium": "sms"}, event_id="fine", customer={"email": "x@y.z"})
        ),
    ]

    report = check_lines(lines, FoldSettings())

    assert [j.events[0].event_id for j in report.journeys] == ["fine"]
    (rejected,) = report.rejected
    assert rejected.line == 1
    assert "OverflowError" in rejected.reason
