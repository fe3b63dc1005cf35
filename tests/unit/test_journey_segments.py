"""A journey is stored as bounded segments: however long it grows, no state record passes the
record limit, an event in order rewrites only the tail, a late one only its segment, and what
is read back is the journey (real RocksDB files)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import journey as journey_fold
from projections.journey import Journey, event_order
from projections.settings import FoldSettings, RuleSettings
from schemas.codec import decode_event, encode_event
from schemas.events import Event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_EVENT, KIND_MERGE, MergeRecord
from streams.kafka.records import InRecord, customer_key
from streams.stages.journey.segments import (
    RECORD_FRAMING_BYTES,
    SEGMENT_EVENTS,
    SegmentBounds,
    SegmentIndex,
    SegmentWriter,
    encode_journey,
    read_journey,
)
from streams.stages.journey.stage import JourneyCache, process_events
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.factories import raw

NOW = datetime(2026, 11, 22, tzinfo=UTC)
REF = ("acme", "cus_0123456789abcdef")
START = NOW - timedelta(days=400)
NO_RULES = FoldSettings(rules=RuleSettings(enabled=frozenset()))
"""Storage is under test here: the rules would only add time."""


def _event(i: int, size: int = 0, ref: tuple[str, str] = REF) -> Event:
    document = raw(
        "message.received",
        {"medium": "email", "text": f"message {i} " + "x" * size},
        when=START + timedelta(minutes=i),
        event_id=f"ev-{ref[1]}-{i:05d}",
    )
    return decode_event(orjson.dumps(document))


def _record(event: Event, offset: int, ref: tuple[str, str] = REF) -> InRecord:
    headers = ((HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, ref[1].encode()))
    return InRecord("events", 0, offset, customer_key(*ref), encode_event(event), 0, headers)


def _run(
    store: LocalStore,
    records: list[InRecord],
    limit: int | None = None,
    cache: JourneyCache | None = None,
) -> dict[bytes, bytes | None]:
    state = BatchState(store, 0)
    outs = process_events(
        state, cache or JourneyCache(0), records, NOW, NO_RULES, max_record_bytes=limit
    )
    assert [o for o in outs if o.destination == "dead_letters"] == []
    store.write(0, state.changes)
    return state.changes


def _stored(store: LocalStore, ref: tuple[str, str] = REF) -> Journey | None:
    return read_journey(lambda key: store.get(0, key), ref)


def _pure(events: list[Event], ref: tuple[str, str] = REF) -> Journey:
    """What `journey.fold` gives for events of distinct ids (the fold is quadratic in tests)."""
    return Journey(*ref, tuple(sorted(events, key=event_order)))


def test_a_ten_thousand_event_journey_is_stored_in_records_within_the_limit(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "journeys")
    limit = 300 * 1024
    events = [_event(i, size=random.Random(i).randrange(0, 900)) for i in range(10_000)]
    arrival = list(events)
    rng = random.Random(7)
    for _ in range(300):  # some arrive late, after events later than them
        a, b = rng.randrange(len(arrival)), rng.randrange(len(arrival))
        arrival[a], arrival[b] = arrival[b], arrival[a]
    cache = JourneyCache()
    for start in range(0, len(arrival), 500):
        batch = arrival[start : start + 500]
        _run(store, [_record(e, start + n) for n, e in enumerate(batch)], limit, cache)
    assert _stored(store) == _pure(events)
    largest = max(len(key) + len(value) for key, value in store.items(0))
    assert largest + RECORD_FRAMING_BYTES <= limit
    tail = store.get(0, keys.journey_key(REF))
    assert tail is not None
    assert len(orjson.loads(tail)) <= SEGMENT_EVENTS
    index = SegmentIndex.from_bytes(store.get(0, keys.journey_index_key(REF)))
    assert index.sealed + len(orjson.loads(tail)) == 10_000
    assert all(count <= SEGMENT_EVENTS for _, count in index.segments)


def test_an_event_in_order_rewrites_the_tail_and_a_late_one_only_its_segment(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "journeys")
    events = [_event(i) for i in range(0, 1_800, 2)]  # even minutes: odd ones come late
    _run(store, [_record(e, n) for n, e in enumerate(events)])
    index = SegmentIndex.from_bytes(store.get(0, keys.journey_index_key(REF)))
    assert [count for _, count in index.segments] == [SEGMENT_EVENTS] * 4

    def journey_keys(changes: dict[bytes, bytes | None]) -> set[bytes]:
        return {k for k in changes if k.startswith((b"j/", b"jh/", b"js/"))}

    changed = _run(store, [_record(_event(1_801), 900)])
    assert journey_keys(changed) == {keys.journey_key(REF)}

    late = _event(501)  # among the second segment's events
    changed = _run(store, [_record(late, 901)])
    assert journey_keys(changed) == {
        keys.journey_index_key(REF),
        keys.journey_segment_key(REF, index.segments[1][0]),  # deleted, 201 events now:
        keys.journey_segment_key(REF, index.next),  # cut in two under new numbers
        keys.journey_segment_key(REF, index.next + 1),
    }
    counts = SegmentIndex.from_bytes(store.get(0, keys.journey_index_key(REF))).segments
    assert [count for _, count in counts] == [200, 101, 100, 200, 200]
    assert _stored(store) == _pure([*events, _event(1_801), late])


def test_a_journey_stored_as_one_record_before_segments_reads_and_is_then_segmented(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "journeys")
    events = [_event(i) for i in range(450)]
    store.write(0, {keys.journey_key(REF): encode_journey(_pure(events))})
    assert _stored(store) == _pure(events)
    _run(store, [_record(_event(450), 0)])
    assert _stored(store) == _pure([*events, _event(450)])
    tail = store.get(0, keys.journey_key(REF))
    assert tail is not None
    assert len(orjson.loads(tail)) <= SEGMENT_EVENTS


def test_a_segmented_customer_merged_into_another_passes_on_every_event_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "journeys")
    events = [_event(i) for i in range(700)]
    _run(store, [_record(e, n) for n, e in enumerate(events)])
    merge = MergeRecord(tenant=REF[0], from_=REF[1], into="cus_survivor")
    headers = ((HEADER_KIND, KIND_MERGE),)
    record = InRecord("events", 0, 700, customer_key(*REF), merge.to_bytes(), 0, headers)
    state = BatchState(store, 0)
    outs = process_events(state, JourneyCache(), [record], NOW, NO_RULES)
    store.write(0, state.changes)
    passed = [o for o in outs if o.destination == "events"]
    assert sorted(decode_event(o.value or b"").event_id for o in passed) == sorted(
        e.event_id for e in events
    )
    left = [k for k, _ in store.items(0) if keys.Prefix.JOURNEY_SEGMENT.value in k[:3]]
    assert left == []
    assert _stored(store) is None


@settings(max_examples=40, deadline=None)
@given(
    order=st.permutations(range(40)),
    cuts=st.lists(st.integers(1, 8), min_size=1, max_size=40),
    events_bound=st.integers(1, 6),
)
def test_segments_read_back_as_the_journey_whatever_the_arrival_order(
    order: list[int], cuts: list[int], events_bound: int
) -> None:
    """Batches of any size, events in any order: the stored segments are the journey, each
    segment within the bounds."""
    import tempfile

    bounds = SegmentBounds(events=events_bound, bytes=2_000)
    with tempfile.TemporaryDirectory() as root:
        store = LocalStore(Path(root))
        arrived: list[Event] = []
        position = 0
        for size in [*cuts, len(order)]:
            batch = [_event(i, size=i * 20) for i in order[position : position + size]]
            position += size
            if not batch:
                break
            state = BatchState(store, 0)
            before = _stored(store) or Journey(*REF)
            after = before
            for event in batch:
                after = journey_fold.apply(after, event)
            added = {e.event_id: encode_event(e) for e in batch}
            SegmentWriter(state, bounds).update(REF, before, after, added)
            store.write(0, state.changes)
            arrived.extend(batch)
            assert _stored(store) == _pure(sorted(arrived, key=event_order))
            for key, value in store.items(0):
                if key.startswith((keys.Prefix.JOURNEY.value, keys.Prefix.JOURNEY_SEGMENT.value)):
                    held = orjson.loads(value)
                    assert 1 <= len(held) <= events_bound
                    assert len(held) == 1 or len(value) <= bounds.bytes
        store.close()


def test_segments_stay_within_a_record_limit_set_lower_than_their_default_size() -> None:
    bounds = SegmentBounds.within(300 * 1024)
    assert bounds.bytes <= 300 * 1024 - RECORD_FRAMING_BYTES - 200
    assert SegmentBounds.within(8 * 1024 * 1024).bytes == SegmentBounds().bytes


def test_the_limit_is_a_setting_defaulting_to_kafkas(tmp_path: Path) -> None:
    from journeys.settings import load_settings

    assert load_settings(None, {}).kafka_settings().max_record_bytes == 1_048_576
    path = tmp_path / "journeys.toml"
    path.write_text("[kafka]\nmax_record_bytes = 8388608\n", encoding="utf-8")
    assert load_settings(path, {}).kafka_settings().max_record_bytes == 8_388_608


def test_the_stage_steps_each_event_through_the_rules_once_when_events_come_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluation kept with a hot journey is carried on, not walked again per batch."""
    from projections.evaluation import Evaluation

    steps: list[str] = []
    original = Evaluation._step

    def counted(self: Evaluation, event: Event) -> None:
        steps.append(event.event_id)
        original(self, event)

    monkeypatch.setattr(Evaluation, "_step", counted)
    store, cache = LocalStore(tmp_path / "journeys"), JourneyCache()
    events = [_event(i) for i in range(30)]
    for start in range(0, 30, 10):
        batch = events[start : start + 10]
        state = BatchState(store, 0)
        process_events(
            state, cache, [_record(e, start + n) for n, e in enumerate(batch)], NOW, FoldSettings()
        )
        store.write(0, state.changes)
    # Kept from the first batch on (with the journey): every event is stepped once.
    assert steps == [e.event_id for e in events]
    late = _event(-1)  # before every stored event: the walks start again, once
    state = BatchState(store, 0)
    process_events(state, cache, [_record(late, 30)], NOW, FoldSettings())
    assert len(steps) == 30 + 31
