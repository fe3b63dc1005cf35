"""The validate stage: any key in, canonical masked events keyed by tenant out, the rest aside.

And ingest reading what it wrote: the trusted reader, or the event the stage kept in this
process, with the same outputs either way; bytes no validate stage wrote go through the door.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from journeys.bench.cpu.serial import serial_cost
from projections.settings import FoldSettings
from schemas.codec import decode_event, decode_trusted, encode_event
from schemas.errors import InvalidEventError
from streams.kafka.records import InRecord, OutRecord
from streams.stages import validate as validate_module
from streams.stages.ingest import ingest, read_validated
from streams.stages.recent import RecentEvents
from streams.stages.validate import MAX_EVENT_BYTES, validate
from streams.store.state import BatchState, LocalStore
from tests.factories import raw

VISA = "4111111111111111"


def _touchpoint(value: bytes | None, offset: int = 0, key: bytes | None = None) -> InRecord:
    return InRecord("journeys.touchpoints.v1", 2, offset, key, value, 1234)


def _dead(outs: list[OutRecord]) -> list[dict[str, Any]]:
    return [orjson.loads(o.value or b"") for o in outs if o.destination == "dead_letters"]


@pytest.mark.parametrize("key", [None, b"e1", b"random", b"other-tenant"])
def test_a_valid_touchpoint_keyed_by_anything_goes_on_keyed_by_its_tenant(
    key: bytes | None,
) -> None:
    document = raw("form.submitted", {"form": "  contact "}, event_id="e1", tenant="acme")
    (out,) = validate([_touchpoint(orjson.dumps(document), key=key)])

    assert out.destination == "validated"
    assert out.key == b"acme"
    assert out.value == encode_event(decode_event(orjson.dumps(document)))
    assert orjson.loads(out.value or b"")["payload"]["form"] == "contact"  # trimmed at the door


def test_card_numbers_are_masked_before_anything_leaves_the_stage() -> None:
    document = raw("call.logged", {"direction": "inbound", "reason": f"card {VISA} declined"})
    (out,) = validate([_touchpoint(orjson.dumps(document))])

    assert VISA not in (out.value or b"").decode()
    assert decode_trusted(out.value or b"").redacted is True  # as ingest reads it


def test_bad_records_go_aside_with_their_reason_and_the_batch_goes_on() -> None:
    too_large = b'{"pad": "' + b"x" * MAX_EVENT_BYTES + b'"}'
    no_tenant = orjson.dumps({k: v for k, v in raw("form.submitted").items() if k != "tenant"})
    card_not_json = b'{"note": "' + VISA.encode() + b'"'
    records = [
        _touchpoint(b"", 0),
        _touchpoint(too_large, 1),
        _touchpoint(b"\xff\xfe not json", 2),
        _touchpoint(no_tenant, 3),
        _touchpoint(card_not_json, 4, key=VISA.encode()),
        _touchpoint(orjson.dumps(raw("form.submitted", {"form": "contact"}, event_id="good")), 5),
    ]
    outs = validate(records)

    dead = _dead(outs)
    assert [d["offset"] for d in dead] == [0, 1, 2, 3, 4]
    assert "empty record" in dead[0]["reason"]
    assert "record too large" in dead[1]["reason"]
    assert "invalid JSON" in dead[2]["reason"]
    assert "original_base64" in dead[2]
    assert dead[3]["reason"].startswith("tenant")
    assert all(d["topic"] == "journeys.touchpoints.v1" and d["partition"] == 2 for d in dead)
    assert VISA not in orjson.dumps(dead).decode()
    assert [orjson.loads(o.value or b"")["event_id"] for o in outs[5:]] == ["good"]


def test_a_record_the_decoder_fails_on_goes_aside_with_the_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(_data: bytes | str) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(validate_module, "decode_event", failing)
    (dead,) = _dead(validate([_touchpoint(orjson.dumps(raw("form.submitted", {"form": "x"})))]))

    assert dead["error"] == "RecursionError"
    assert dead["reason"].startswith("could not decode this record: RecursionError")


def test_ingest_reads_the_stage_s_bytes_as_they_are_and_others_through_the_door() -> None:
    (out,) = validate([_touchpoint(orjson.dumps(raw("form.submitted", {"form": " x "})))])
    event, body = read_validated(out.value or b"")
    assert body is out.value  # canonical already: not encoded again
    assert event == decode_event(out.value or b"")

    # Bytes the trusted reader refuses get the door's reasons, naming the field.
    sent = orjson.dumps(raw("form.submitted", {"form": "x"}, tenant=" acme "))
    with pytest.raises(InvalidEventError, match="tenant"):
        read_validated(sent)


def _validated(outs: list[OutRecord]) -> list[InRecord]:
    return [
        InRecord("journeys.validated.v1", 0, offset, o.key, o.value, 0, o.headers)
        for offset, o in enumerate(o for o in outs if o.destination == "validated")
    ]


def test_ingest_takes_the_events_the_stage_kept_with_the_same_outputs(tmp_path: Path) -> None:
    lines = [
        orjson.dumps(
            raw(
                "form.submitted",
                {"form": "x"},
                event_id=f"e{n}",
                customer={"email": f"{n % 3}@b.co"},
            )
        )
        for n in range(12)
    ]
    kept = RecentEvents()
    door = validate([_touchpoint(line, n) for n, line in enumerate(lines)], recent=kept)
    assert len(kept) == 12
    results = []
    for name, validated in (("cold", None), ("kept", kept)):
        store = LocalStore(tmp_path / name)
        try:
            state = BatchState(store, 0)
            results.append(
                (
                    ingest(state, _validated(door), FoldSettings(), validated=validated),
                    state.changes,
                )
            )
        finally:
            store.close()
    assert results[0] == results[1]
    assert kept.hits == 12


def test_ingest_sends_a_record_under_another_key_on_to_its_tenant(tmp_path: Path) -> None:
    (out,) = validate(
        [_touchpoint(orjson.dumps(raw("form.submitted", {"form": "x"}, tenant="acme")))]
    )
    store = LocalStore(tmp_path / "identity")
    try:
        record = InRecord("journeys.validated.v1", 0, 0, b"elsewhere", out.value)
        (again,) = ingest(BatchState(store, 0), [record], FoldSettings())
    finally:
        store.close()
    assert (again.destination, again.key, again.value) == ("validated", b"acme", out.value)


def test_the_serial_section_harness_measures_every_stage() -> None:
    cost = serial_cost(events=200, repeat=1)
    assert cost.events == 200
    assert min(cost.validate_us, cost.ingest_us, cost.ingest_kept_us, cost.journeys_us) > 0
    assert 0 < cost.serial_share < 1
