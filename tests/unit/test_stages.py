"""The worker's three stages chained over an in-memory log, with real RocksDB files.

No broker here: records are routed between the stages as Kafka would route them (same key,
same partition, in order). The stored journeys must equal the pure fold of the same events.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from journeys.bench.load import skewed_lines
from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from projections.flag_changes import flag_snapshot, flag_statuses
from projections.journey import Journey
from projections.settings import FoldSettings
from schemas.codec import decode_event, encode_event
from schemas.outputs import FlagChange, FlagSnapshot
from streams.crypto.sealing import Sealer
from streams.kafka.records import InRecord, OutRecord
from streams.stages.cut import SameCut
from streams.stages.ingest import ingest
from streams.stages.journey.segments import journeys_in
from streams.stages.journey.stage import (
    JourneyCache,
    decode_journey,
    encode_journey,
    process_events,
    reevaluate,
    split_journey,
)
from streams.stages.recent import RecentEvents
from streams.stages.validate import validate
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.factories import raw

PARTITIONS = 3
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def partition_of(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS


class Pipeline:
    """The three stages (validate, ingest, journeys) over in-memory topics, each partition
    processed in small batches."""

    def __init__(
        self,
        root: Path,
        batch_size: int = 4,
        recent: RecentEvents | None = None,
        crash_rate: float = 0.0,
        seed: int = 0,
        sealer: Sealer | None = None,
        validated: RecentEvents | None = None,
    ) -> None:
        self.settings = FoldSettings()
        self.sealer = sealer
        self.recent = recent
        self.validated = validated
        """Events the validate stage kept for ingest (as when both run in one process)."""
        self.crash_rate = crash_rate
        """The share of journey batches whose worker dies after sending their outputs."""
        self.rng = random.Random(seed)
        self.crashes = 0
        self.cut = SameCut()
        self.attempts: dict[tuple[int, int, int], list[list[str]]] = defaultdict(list)
        """Per journey batch (partition, first and last offset): the change ids each try sent."""
        self.identity = LocalStore(root / "identity")
        self.journeys = LocalStore(root / "journeys")
        self.cache = JourneyCache()
        self.batch_size = batch_size
        self.touchpoints: dict[int, list[InRecord]] = defaultdict(list)
        self.valid: dict[int, list[InRecord]] = defaultdict(list)
        """The validated topic: what the validate stage accepted, keyed by tenant."""
        self.events: dict[int, list[InRecord]] = defaultdict(list)
        self.logs = {
            "touchpoints": self.touchpoints,
            "validated": self.valid,
            "events": self.events,
        }
        self.read: dict[str, dict[int, int]] = {name: defaultdict(int) for name in self.logs}
        self.flags: list[FlagChange] = []
        self.dead: list[dict[str, object]] = []
        self.dead_keys: list[bytes] = []
        """The Kafka key of each dead letter in `dead`, in the same order."""
        self.tombstones: list[bytes] = []
        """The keys of the dead letters erasure superseded (tombstones on the dead-letter topic)."""
        self.on_erased: Callable[[str, str], None] | None = None
        """Told of each erasure the journey stage applies (as the worker tells its sealer)."""

    def append(self, topic: str, key: bytes | None, value: bytes | None, headers=()) -> None:  # type: ignore[no-untyped-def]
        log = self.logs[topic]
        partition = partition_of(key or b"")
        log[partition].append(
            InRecord(topic, partition, len(log[partition]), key, value, 0, headers)
        )

    def route(self, outs: list[OutRecord]) -> None:
        for out in outs:
            if out.destination in self.logs:
                self.append(out.destination, out.key, out.value, out.headers)
            elif out.destination == "flags":
                self.flags.append(FlagChange.from_bytes(out.value or b"{}"))
            elif out.value is None:
                self.tombstones.append(out.key)
            else:
                self.dead.append(orjson.loads(out.value))
                self.dead_keys.append(out.key)

    def step(self) -> bool:
        """Process one batch of some partition; False when every log is drained."""
        for name, log in self.logs.items():
            for partition, records in sorted(log.items()):
                start = self.read[name][partition]
                size = self.batch_size
                if name == "events" and self.crash_rate:
                    size = self.rng.randint(1, 2 * self.batch_size)  # batches cut anywhere
                batch = records[start : start + size]
                if not batch:
                    continue
                self.read[name][partition] = start + len(batch)
                if name == "events":
                    # As the runner does after a crash: the batch again, with its first end.
                    batch, seek = self.cut.take(partition, batch)
                    if seek is not None:
                        self.read[name][partition] = seek
                    if not batch:
                        return True
                if name == "touchpoints":
                    outs = validate(batch, recent=self.validated)
                elif name == "validated":
                    state = BatchState(self.identity, partition)
                    outs = ingest(
                        state,
                        batch,
                        self.settings,
                        recent=self.recent,
                        sealer=self.sealer,
                        validated=self.validated,
                    )
                    self.identity.write(partition, state.changes)
                else:
                    state = BatchState(self.journeys, partition)
                    outs = process_events(
                        state,
                        self.cache,
                        batch,
                        NOW,
                        self.settings,
                        recent=self.recent,
                        on_erased=self.on_erased,
                    )
                    self.attempts[(partition, batch[0].offset, batch[-1].offset)].append(
                        [
                            FlagChange.from_bytes(o.value or b"{}").change_id
                            for o in outs
                            if o.destination == "flags"
                        ]
                    )
                    if self.rng.random() < self.crash_rate:
                        # Outputs sent, then the worker died: its state is lost and the
                        # batch is read again from the stored offset.
                        self.route(outs)
                        self.read[name][partition] = batch[0].offset
                        self.cut.expect(partition, batch[-1].offset + 1)
                        self.cache.forget(partition)
                        self.crashes += 1
                        return True
                    self.journeys.write(partition, state.changes)
                self.route(outs)
                return True
        return False

    def drain(self) -> None:
        while self.step():
            pass

    def stored(self) -> dict[tuple[str, str], list[str]]:
        journeys = {}
        for partition in range(PARTITIONS):
            for journey in self.stored_journeys(partition):
                journeys[(journey.tenant, journey.customer_id)] = [
                    e.event_id for e in journey.events
                ]
        return journeys

    def stored_journeys(self, partition: int) -> list[Journey]:
        return list(journeys_in(dict(self.journeys.items(partition))).values())


def expected(lines: list[bytes]) -> dict[tuple[str, str], list[str]]:
    report = check_lines(lines, FoldSettings(), NOW)
    return {(j.tenant, j.customer_id): [e.event_id for e in j.events] for j in report.journeys}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stages_store_the_pure_fold_whatever_the_arrival_order(tmp_path: Path, seed: int) -> None:
    lines = demo_lines()
    random.Random(seed).shuffle(lines)
    pipeline = Pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    assert pipeline.stored() == expected(lines)
    assert standing_snapshots(pipeline.flags) == pure_snapshots(lines)
    # the statuses kept, flag by flag as the changes came, are those of the flags now
    report = check_lines(lines, FoldSettings(), NOW)
    for journey in report.journeys:
        ref = (journey.tenant, journey.customer_id)
        kept = [_kept(pipeline, p, ref) or {} for p in range(PARTITIONS)]
        # (each with the count of its changes of content, which only the live path knows)
        found = {k: v.split(".")[0] for statuses in kept for k, v in statuses.items()}
        assert found == flag_statuses(journey.flags)


def standing_snapshots(changes: list[FlagChange]) -> dict[str, FlagSnapshot]:
    """Each standing flag as a consumer keeping the latest snapshot (the flag index) has it."""
    seen: set[str] = set()
    standing: dict[str, FlagSnapshot] = {}
    for change in changes:
        if change.change_id in seen:
            continue
        seen.add(change.change_id)
        if isinstance(change.flag, FlagSnapshot):
            standing[change.flag_id] = change.flag
        else:
            standing.pop(change.flag_id, None)
    return standing


def pure_snapshots(lines: list[bytes]) -> dict[str, FlagSnapshot]:
    """Each flag of the pure fold, as the flag topic carries it."""
    report = check_lines(lines, FoldSettings(), NOW)
    return {f.flag_id: flag_snapshot(f) for j in report.journeys for f in j.flags}


def test_statuses_kept_before_shapes_take_them_without_telling_the_flag_topic(
    tmp_path: Path,
) -> None:
    lines = demo_lines()
    pipeline = Pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    upgraded = 0
    for partition in range(PARTITIONS):
        refs = [ref for ref in pipeline.stored() if _kept(pipeline, partition, ref) is not None]
        old = BatchState(pipeline.journeys, partition)
        for ref in refs:  # as an older worker kept them: status and handling mark only
            kept = _kept(pipeline, partition, ref) or {}
            old.put(
                keys.flags_key(ref), orjson.dumps({k: v.split("@")[0] for k, v in kept.items()})
            )
        pipeline.journeys.write(partition, old.changes)
        state = BatchState(pipeline.journeys, partition)
        outs = reevaluate(state, JourneyCache(), refs, NOW, pipeline.settings)
        assert [o for o in outs if o.destination == "flags"] == []
        pipeline.journeys.write(partition, state.changes)
        for ref in refs:
            kept = _kept(pipeline, partition, ref) or {}
            assert all("@" in status for status in kept.values())
            upgraded += len(kept)
    assert upgraded


def _kept(pipeline: Pipeline, partition: int, ref: tuple[str, str]) -> dict[str, str] | None:
    raw = BatchState(pipeline.journeys, partition).get(keys.flags_key(ref))
    return None if raw is None else dict(orjson.loads(raw))


def test_duplicates_and_bad_records(tmp_path: Path) -> None:
    good = orjson.dumps(raw("form.submitted", {"form": "contact"}, event_id="g1"))
    pipeline = Pipeline(tmp_path)
    for value in (good, good, b"\xff\xfe not json", b"", good.replace(b"contact", b"other")):
        pipeline.append("touchpoints", b"acme", value)
    pipeline.drain()
    assert list(pipeline.stored().values()) == [["g1"]]
    reasons = [str(d["reason"]) for d in pipeline.dead]
    assert len(reasons) == 3
    assert "invalid JSON" in reasons[0]
    assert "empty record" in reasons[1]
    assert "already used" in reasons[2]
    assert "original_base64" in pipeline.dead[0]


def test_records_keyed_otherwise_are_rekeyed_by_tenant(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    for n in range(6):
        event = raw("form.submitted", {"form": "x"}, event_id=f"k{n}", customer={"email": "a@b.co"})
        pipeline.append("touchpoints", f"random-{n}".encode(), orjson.dumps(event))
    pipeline.drain()
    assert [sorted(ids) for ids in pipeline.stored().values()] == [[f"k{n}" for n in range(6)]]


@pytest.mark.parametrize(("seed", "capacity"), [(1, 50_000), (2, 0), (None, 0)])
def test_a_stored_journey_is_the_canonical_encoding_of_its_events(
    tmp_path: Path, seed: int | None, capacity: int
) -> None:
    """Appending arrived bytes must store exactly what encoding the whole journey would."""
    lines = demo_lines()
    if seed is not None:
        random.Random(seed).shuffle(lines)  # late events land among the stored ones
    pipeline = Pipeline(tmp_path, batch_size=3)
    pipeline.cache = JourneyCache(capacity)  # 0: every batch reads its journeys back from disk
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    stored = 0
    for partition in range(PARTITIONS):
        for key, value in pipeline.journeys.items(partition, keys.Prefix.JOURNEY.value):
            ref = keys.journey_of(key)
            assert ref is not None
            assert value == encode_journey(decode_journey(ref, value))
            stored += 1
    assert stored == len(expected(lines))
    assert pipeline.stored() == expected(lines)


def test_a_stored_journey_splits_back_into_each_event_s_own_bytes() -> None:
    """Late events are spliced in from the stored bytes: splitting must not change a byte."""
    lines = demo_lines() + skewed_lines(2_000, 400)
    lines.append(
        orjson.dumps(
            raw(
                "survey.responded",
                {"score": 1e-7, "scale": 10, "note": {"y": [1.5, 5e-324, "é\u2028\n\t\x01"]}},
            )
        )
    )
    events = [decode_event(line) for line in lines]
    journey = Journey("acme", "cus_1", tuple(events))
    assert split_journey(encode_journey(journey)) == [encode_event(e) for e in events]


@pytest.mark.parametrize("capacity", [10_000, 5])
def test_events_ingest_built_are_reused_and_the_journeys_are_the_same(
    tmp_path: Path, capacity: int
) -> None:
    """Taking ingest's event instead of decoding its bytes must not change a journey or flag."""
    lines = demo_lines()
    random.Random(4).shuffle(lines)
    reused = RecentEvents(capacity)
    runs = {}
    for name, recent in (("decoded", None), ("reused", reused)):
        pipeline = Pipeline(tmp_path / name, batch_size=5, recent=recent)
        for line in lines:
            pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
        pipeline.drain()
        runs[name] = (pipeline.stored(), sorted(f.to_bytes() for f in pipeline.flags))
    assert runs["reused"] == runs["decoded"]
    assert runs["decoded"][0] == expected(lines)
    assert reused.hits > 0
    if capacity == 5:
        assert reused.misses > 0  # evicted events are decoded
        assert len(reused) == 5


def test_recent_events_keep_the_newest_and_decode_the_rest() -> None:
    events = [decode_event(line) for line in demo_lines()[:4]]
    raws = [encode_event(e) for e in events]
    recent = RecentEvents(capacity=2)
    for raw_bytes, event in zip(raws, events, strict=True):
        recent.remember(raw_bytes, event)
    assert recent.decode(raws[3]) is events[3]
    assert recent.decode(raws[2]) is events[2]
    again = recent.decode(raws[0])  # forgotten: decoded, equal, not the same object
    assert again == events[0]
    assert again is not events[0]
    assert (recent.hits, recent.misses, len(recent)) == (2, 1, 2)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_batch_replayed_after_a_crash_sends_only_changes_already_sent(
    tmp_path: Path, seed: int
) -> None:
    """Outputs go out before state is stored: read again with its first cut, a batch repeats
    exactly what it sent (cut elsewhere, late events would give flags other moments and ids)."""
    lines = demo_lines() + skewed_lines(600, 120, seed=seed)
    random.Random(seed).shuffle(lines)  # late events move flags' moments
    pipeline = Pipeline(tmp_path, batch_size=4, crash_rate=0.3, seed=seed)
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    assert pipeline.crashes > 0
    assert pipeline.stored() == expected(lines)
    tried_again = [tries for tries in pipeline.attempts.values() if len(tries) > 1]
    # Every crashed batch came back with its cut (some crashed more than once).
    assert sum(len(tries) - 1 for tries in tried_again) == pipeline.crashes
    for tries in tried_again:
        assert all(sent == tries[0] for sent in tries)  # the same changes, the same ids
    assert any(tries[0] for tries in tried_again)


class _Rec:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def _offsets(records: list[_Rec]) -> list[int]:
    return [r.offset for r in records]


def test_same_cut_gathers_the_batch_across_fetches_and_reads_past_it_again() -> None:
    cut = SameCut()
    assert _offsets(cut.take(0, [_Rec(5), _Rec(6)])[0]) == [5, 6]  # nothing expected: as is
    cut.expect(0, 10)  # a batch of 5..9 went out before the crash
    assert cut.take(0, [_Rec(5), _Rec(6)]) == ([], None)
    assert cut.next_offset(0, 5) == 7
    batch, seek = cut.take(0, [_Rec(7), _Rec(8), _Rec(9), _Rec(10), _Rec(11)])
    assert _offsets(batch) == [5, 6, 7, 8, 9]
    assert seek == 10  # 10 and 11 belong to the next batch: read them again
    assert cut.next_offset(0, 10) == 10
    assert _offsets(cut.take(0, [_Rec(10)])[0]) == [10]  # done: back to plain batches


def test_same_cut_is_complete_when_a_record_past_it_arrives_and_forgets_on_revoke() -> None:
    cut = SameCut()
    cut.expect(1, 10)
    batch, seek = cut.take(1, [_Rec(7), _Rec(8), _Rec(12)])  # 9..11: no records (markers)
    assert (_offsets(batch), seek) == ([7, 8], 10)
    cut.expect(2, 4)
    cut.forget(2)
    assert _offsets(cut.take(2, [_Rec(1)])[0]) == [1]


def test_same_cut_with_no_record_before_the_cut_lets_go_instead_of_seeking_forever() -> None:
    cut = SameCut()
    cut.expect(0, 10)  # 5..9 was the batch, but the broker has no records there (a hole)
    assert cut.take(0, [_Rec(10), _Rec(11)]) == ([], 10)
    assert _offsets(cut.take(0, [_Rec(10), _Rec(11)])[0]) == [10, 11]  # not ([], 10) again


def test_a_masked_event_sent_unkeyed_and_keyed_is_one_event(tmp_path: Path) -> None:
    """A producer retry that lost its key must not clash with the keyed copy (redacted kept)."""
    pipeline = Pipeline(tmp_path)
    event = raw(
        "call.logged",
        {"direction": "inbound", "reason": "card 4111 1111 1111 1111 charged twice"},
        event_id="masked-1",
        customer={"email": "a@b.co"},
    )
    line = orjson.dumps(event)
    pipeline.append("touchpoints", None, line)
    pipeline.append("touchpoints", b"acme", line)
    pipeline.append("touchpoints", b"random", line)
    pipeline.drain()
    assert pipeline.dead == []
    (ids,) = pipeline.stored().values()
    assert sorted(ids) == ["masked-1"]
