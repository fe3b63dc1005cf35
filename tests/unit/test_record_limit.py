"""A journey's state record never outgrows the record limit: the events that would make it
larger go to dead letters naming the limit, the journey keeps what it had, the stage goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from projections.settings import FoldSettings
from schemas.codec import decode_event, encode_event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_EVENT
from streams.kafka.records import InRecord, customer_key
from streams.stages.journey_stage import (
    RECORD_FRAMING_BYTES,
    JourneyCache,
    decode_journey,
    process_events,
)
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.factories import raw

NOW = datetime(2026, 11, 22, tzinfo=UTC)
REF = ("acme", "cus_0123456789abcdef")
LIMIT = 20_000


def _records(first: int, count: int, offset: int) -> list[InRecord]:
    headers = ((HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, REF[1].encode()))
    records = []
    for i in range(first, first + count):
        document = raw(
            "message.received",
            {"medium": "email", "text": f"message {i} " + "x" * 3_000},
            when=NOW - timedelta(days=30) + timedelta(minutes=i),
            event_id=f"big-{i:03d}",
        )
        value = encode_event(decode_event(orjson.dumps(document)))
        records.append(
            InRecord("events", 0, offset + i - first, customer_key(*REF), value, 0, headers)
        )
    return records


def _run(store: LocalStore, records: list[InRecord], limit: int | None) -> list[dict[str, object]]:
    state = BatchState(store, 0)
    outs = process_events(
        state, JourneyCache(), records, NOW, FoldSettings(), max_record_bytes=limit
    )
    store.write(0, state.changes)
    return [orjson.loads(o.value or b"{}") for o in outs if o.destination == "dead_letters"]


def _stored(store: LocalStore) -> tuple[bytes, list[str]]:
    value = store.get(0, keys.journey_key(REF))
    assert value is not None
    return value, [e.event_id for e in decode_journey(REF, value).events]


def test_events_past_the_record_limit_go_to_dead_letters_and_the_journey_keeps_what_it_had(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "journeys")
    assert _run(store, _records(0, 4, 0), LIMIT) == []
    value, first = _stored(store)
    assert len(first) == 4

    dead = _run(store, _records(4, 6, 4), LIMIT)  # 10 events of 3 KB: more than 20 KB
    value, kept = _stored(store)
    assert len(value) + len(keys.journey_key(REF)) + RECORD_FRAMING_BYTES <= LIMIT
    assert kept[:4] == first
    assert kept == [f"big-{i:03d}" for i in range(len(kept))]  # in arrival order, none skipped
    assert len(kept) + len(dead) == 10
    assert dead
    for letter in dead:
        assert "record limit of 20,000" in str(letter["reason"])
        assert "max_record_bytes" in str(letter["reason"])

    before = value
    dead = _run(store, _records(10, 1, 10), LIMIT)  # still no room: nothing written
    assert len(dead) == 1
    assert _stored(store)[0] == before


def test_without_a_limit_every_event_is_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "journeys")
    assert _run(store, _records(0, 10, 0), None) == []
    assert len(_stored(store)[1]) == 10


def test_a_stored_journey_already_over_the_limit_is_left_alone(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "journeys")
    _run(store, _records(0, 10, 0), None)  # written before the limit was enforced
    before = _stored(store)[0]
    dead = _run(store, _records(10, 2, 10), LIMIT)
    assert len(dead) == 2
    assert _stored(store)[0] == before


def test_the_limit_is_a_setting_defaulting_to_kafkas(tmp_path: Path) -> None:
    from journeys.settings import load_settings

    assert load_settings(None, {}).kafka_settings().max_record_bytes == 1_048_576
    path = tmp_path / "journeys.toml"
    path.write_text("[kafka]\nmax_record_bytes = 8388608\n", encoding="utf-8")
    assert load_settings(path, {}).kafka_settings().max_record_bytes == 8_388_608
