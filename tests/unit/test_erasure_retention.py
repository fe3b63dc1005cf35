"""Retention: the pure decisions, the last-event index ingest keeps, and the timer pass that
erases customers silent longer than their tenant's `retention_days` (real RocksDB)."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.privacy.retention import (
    activity_day,
    cutoff_day,
    event_day,
    is_expired,
    later_day,
    retention_event_id,
    retention_grounds,
)
from schemas.outputs import HEADER_KIND, KIND_ERASED, ErasureRecord
from streams.crypto.fields import ERASED, PREFIX
from streams.kafka.records import OutRecord
from streams.stages.identity.activity import note_activity
from streams.stages.identity.retention import SWEEP_PER_PASS, expire, sweep
from streams.stages.journey.stage import decode_journey
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.factories import raw
from tests.unit.test_erasure import _customer, _erasure, _journeys, _rings, _sealer
from tests.unit.test_stages import PARTITIONS, Pipeline, partition_of

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
ACME = partition_of(b"acme")


# The pure decisions.


def test_an_event_s_day_is_its_utc_date() -> None:
    late_evening = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert event_day(late_evening) == "2026-03-02"
    assert event_day(datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-02-28"
    )


def test_an_event_dated_in_the_future_counts_for_the_day_it_was_received() -> None:
    received = int(datetime(2026, 12, 2, 9, 0, tzinfo=UTC).timestamp() * 1000)
    assert activity_day(datetime(9999, 1, 1, tzinfo=UTC), received) == "2026-12-02"
    assert activity_day(datetime(2026, 11, 1, tzinfo=UTC), received) == "2026-11-01"
    assert activity_day(datetime(9999, 1, 1, tzinfo=UTC), 0) == "9999-01-01"  # unknown


def test_the_last_day_only_moves_forward() -> None:
    assert later_day(None, "2026-01-05") == "2026-01-05"
    assert later_day("2026-01-05", "2026-01-06") == "2026-01-06"
    assert later_day("2026-01-05", "2026-01-05") is None
    assert later_day("2026-01-05", "2025-12-31") is None  # a late event changes nothing


def test_a_customer_is_expired_only_when_silent_longer_than_the_retention() -> None:
    cutoff = cutoff_day(NOW, 30)
    assert cutoff == "2026-11-02"
    assert is_expired("2026-11-01", cutoff)
    assert not is_expired("2026-11-02", cutoff)  # exactly 30 days: kept until tomorrow
    assert not is_expired("2026-12-02", cutoff)
    assert cutoff_day(NOW.astimezone(timezone(timedelta(hours=-10))), 30) == cutoff


def test_a_retention_erasure_names_its_setting_and_repeats_under_the_same_id() -> None:
    assert retention_grounds(365) == "retention_days=365"
    assert retention_event_id("cus_1", "2026-01-01") == retention_event_id("cus_1", "2026-01-01")
    assert retention_event_id("cus_1", "2026-01-01") != retention_event_id("cus_1", "2026-01-02")


# The index ingest keeps.


def _index(store: LocalStore, tenant: str = "acme") -> list[tuple[str, str]]:
    return [
        keys.retention_entry(key)
        for partition in range(PARTITIONS)
        for key, _ in store.items(partition, keys.retention_prefix(tenant))
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dates(date(2020, 1, 1), date(2030, 1, 1)), min_size=1))
def test_the_index_holds_one_entry_per_customer_at_its_latest_day(days: list[date]) -> None:
    with _TempStore() as store:
        state = BatchState(store, 0)
        for day in days:
            note_activity(state, "acme", "cus_a", day.isoformat())
            store.write(0, state.changes)
            state = BatchState(store, 0)
        assert _index(store) == [(max(days).isoformat(), "cus_a")]
        assert store.get(0, keys.last_seen_key("acme", "cus_a")) == max(days).isoformat().encode()


def test_a_merge_gives_the_survivor_the_latest_day_of_both(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    state = BatchState(store, 0)
    note_activity(state, "acme", "cus_a", "2026-01-01")
    note_activity(state, "acme", "cus_b", "2026-06-01")
    store.write(0, state.changes)
    state = BatchState(store, 0)
    note_activity(state, "acme", "cus_a", "2025-12-01", absorbed=["cus_b"])  # a late event
    store.write(0, state.changes)
    assert _index(store) == [("2026-06-01", "cus_a")]
    assert store.get(0, keys.last_seen_key("acme", "cus_b")) is None


class _TempStore:
    """A RocksDB store in a temporary directory (hypothesis runs many examples per test)."""

    def __enter__(self) -> LocalStore:
        self._dir = tempfile.TemporaryDirectory()
        self.store = LocalStore(Path(self._dir.name))
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        self._dir.cleanup()


# The timer pass, through both stages.


def _event(email: str, when: datetime, tenant: str = "acme", **customer: str) -> bytes:
    document = raw(
        "message.received",
        {"text": "call me back", "medium": "email"},
        customer={"email": email, "name": "Pat", **customer},
        when=when,
        tenant=tenant,
    )
    return orjson.dumps(document)


def _pipeline(tmp_path: Path, lines: list[bytes], sealed: bool = True) -> Pipeline:
    pipeline = Pipeline(tmp_path, sealer=_sealer() if sealed else None)
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    assert not pipeline.dead
    return pipeline


def _pass(
    pipeline: Pipeline,
    retention: dict[str, int],
    now: datetime = NOW,
    erased: dict[str, int] | None = None,
    limit: int = 200,
) -> list[OutRecord]:
    """One timer pass over every identity partition, persisted and routed as the runner does."""
    outs: list[OutRecord] = []
    for partition in range(PARTITIONS):
        state = BatchState(pipeline.identity, partition)
        found = expire(state, retention, now, pipeline.sealer, erased, limit)
        pipeline.identity.write(partition, state.changes)
        pipeline.route(found)
        outs += found
    pipeline.drain()
    return outs


def test_the_timer_erases_silent_customers_as_forget_does_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=3)
    pipeline = _pipeline(
        tmp_path,
        [
            _event("old@x.org", old),
            _event("old@x.org", old + timedelta(days=2)),
            _event("new@x.org", old),
            _event("new@x.org", recent),  # the same customer came back: kept
            _event("other@x.org", old, tenant="globex"),  # no retention in its tenant
        ],
    )
    gone, kept = _customer(pipeline, "old@x.org"), _customer(pipeline, "new@x.org")
    kept_before = _journeys(pipeline)[("acme", kept)]
    erased: dict[str, int] = {}
    outs = _pass(pipeline, {"acme": 30}, erased=erased)
    (out,) = outs
    assert dict(out.headers)[HEADER_KIND] == KIND_ERASED
    record = ErasureRecord.from_bytes(out.value or b"")
    assert (record.customer, record.decided_by, record.grounds) == (
        gone,
        "retention",
        "retention_days=30",
    )
    assert record.keys_destroyed == 1
    assert erased == {"acme": 1}
    assert ("acme", gone) not in _rings(pipeline)
    with pytest.raises(AssertionError):
        _customer(pipeline, "old@x.org")
    assert _customer(pipeline, "new@x.org") == kept
    stored = _journeys(pipeline)
    assert stored[("acme", kept)] == kept_before
    skeleton = decode_journey(("acme", gone), stored[("acme", gone)])
    assert len(skeleton.events) == 2
    assert {e.customer.email for e in skeleton.events} == {ERASED}
    assert PREFIX.encode() not in stored[("acme", gone)]
    assert _index(pipeline.identity) == [((NOW - timedelta(days=3)).date().isoformat(), kept)]
    assert len(_index(pipeline.identity, "globex")) == 1
    assert _pass(pipeline, {"acme": 30}) == []  # nothing left to do: a second pass erases none


def test_a_pass_erases_at_most_its_limit_and_the_next_pass_goes_on(tmp_path: Path) -> None:
    lines = [_event(f"c{n}@x.org", NOW - timedelta(days=100 - n)) for n in range(5)]
    pipeline = _pipeline(tmp_path, lines, sealed=False)
    erased: dict[str, int] = {}
    first = _pass(pipeline, {"acme": 30}, erased=erased, limit=2)
    assert len(first) == 2
    assert erased == {"acme": 2}
    assert len(_index(pipeline.identity)) == 3
    assert _customer(pipeline, "c4@x.org")  # the youngest waits
    _pass(pipeline, {"acme": 30}, erased=erased, limit=2)
    _pass(pipeline, {"acme": 30}, erased=erased, limit=2)
    assert erased == {"acme": 5}
    assert _index(pipeline.identity) == []


def test_the_longest_silent_customers_go_first(tmp_path: Path) -> None:
    lines = [_event(f"c{n}@x.org", NOW - timedelta(days=100 - n)) for n in range(4)]
    pipeline = _pipeline(tmp_path, lines, sealed=False)
    ids = [_customer(pipeline, f"c{n}@x.org") for n in range(4)]
    first = _pass(pipeline, {"acme": 30}, limit=2)
    assert [ErasureRecord.from_bytes(o.value or b"").customer for o in first] == ids[:2]


def test_customers_merged_into_a_recent_one_are_not_erased(tmp_path: Path) -> None:
    old = NOW - timedelta(days=60)
    pipeline = _pipeline(
        tmp_path,
        [
            _event("a@x.org", old),
            _event("b@x.org", old, phone="07700 900123"),
            # a recent event joins both: the survivor's last day is today's
            _event("a@x.org", NOW - timedelta(days=1), phone="07700 900123"),
        ],
    )
    survivor = _customer(pipeline, "a@x.org")
    assert _customer(pipeline, "b@x.org") == survivor
    assert _index(pipeline.identity) == [((NOW - timedelta(days=1)).date().isoformat(), survivor)]
    assert _pass(pipeline, {"acme": 30}) == []


def test_a_customer_erased_by_forget_leaves_the_index(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, [_event("a@x.org", NOW - timedelta(days=60))])
    customer = _customer(pipeline, "a@x.org")
    pipeline.append("touchpoints", b"acme", _erasure(customer))
    pipeline.drain()
    assert _index(pipeline.identity) == []
    assert pipeline.identity.get(ACME, keys.last_seen_key("acme", customer)) is None
    assert _pass(pipeline, {"acme": 30}) == []


class _CountingStore(LocalStore):
    """A store that counts the entries its scans hand out, by key family (`lr/`, `m/`...)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.read: Counter[bytes] = Counter()

    def items(
        self, partition: int, prefix: bytes = b"", after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        for item in super().items(partition, prefix, after):
            self.read[prefix.partition(b"/")[0]] += 1
            yield item


def test_a_pass_reads_the_index_only_up_to_the_first_customer_it_keeps(tmp_path: Path) -> None:
    store = _CountingStore(tmp_path / "identity")
    state = BatchState(store, 0)
    for n in range(1_000):
        note_activity(state, "acme", f"cus_{n:04d}", "2026-11-30")
        state.put(keys.members_key("acme", f"cus_{n:04d}"), b'["email:x"]')
    for n in range(3):  # three silent ones
        note_activity(state, "acme", f"cus_old{n}", "2026-01-01")
        state.put(keys.members_key("acme", f"cus_old{n}"), b'["email:y"]')
    store.write(0, state.changes)
    store.read.clear()
    state = BatchState(store, 0)
    outs = expire(state, {"acme": 30}, NOW, None)
    assert len(outs) == 3
    assert store.read[b"lr"] == 4  # the three due entries and the first one kept
    assert store.read[b"m"] == SWEEP_PER_PASS  # the sweep's bounded read, nothing more
    store.write(0, state.changes)
    store.read.clear()
    assert expire(BatchState(store, 0), {"acme": 30}, NOW, None) == []
    assert store.read[b"lr"] == 1


def test_the_sweep_indexes_customers_stored_before_the_index_as_seen_today(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "identity")
    state = BatchState(store, 0)
    for n in range(7):  # identity state from before the index existed: members only
        state.put(keys.members_key("acme", f"cus_{n}"), b'["email:x"]')
    note_activity(state, "acme", "cus_3", "2026-10-01")  # one indexed already
    store.write(0, state.changes)
    passes = []
    for _ in range(3):
        state = BatchState(store, 0)
        passes.append(sweep(state, "acme", "2026-12-02", limit=3))
        store.write(0, state.changes)
    assert passes == [3, 2, 1]  # reads 0..2, 3..5 (3 was indexed), then 6 and the end
    assert store.get(0, keys.sweep_key("acme")) is None  # the next sweep starts over
    index = {customer: day for day, customer in _index(store)}
    assert index == {
        **{f"cus_{n}": "2026-12-02" for n in range(7)},
        "cus_3": "2026-10-01",  # an indexed customer keeps its day
    }
    # indexed as of today, nobody is forgotten before the retention has run from today
    month_on = expire(BatchState(store, 0), {"acme": 30}, NOW + timedelta(days=30), None)
    assert [ErasureRecord.from_bytes(o.value or b"").customer for o in month_on] == ["cus_3"]
    assert len(expire(BatchState(store, 0), {"acme": 30}, NOW + timedelta(days=31), None)) == 7


def test_a_customer_erased_in_a_pass_is_not_indexed_again_by_its_sweep(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "identity")
    state = BatchState(store, 0)
    note_activity(state, "acme", "cus_a", "2026-01-01")
    state.put(keys.members_key("acme", "cus_a"), b'["email:x"]')
    store.write(0, state.changes)
    state = BatchState(store, 0)
    assert len(expire(state, {"acme": 30}, NOW, None)) == 1
    store.write(0, state.changes)
    assert _index(store) == []


def test_one_tenant_s_backlog_never_starves_another(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "identity")
    state = BatchState(store, 0)
    for tenant in ("acme", "globex"):
        for n in range(3):
            note_activity(state, tenant, f"cus_{n}", "2026-01-01")
            state.put(keys.members_key(tenant, f"cus_{n}"), b'["email:z"]')
    store.write(0, state.changes)
    erased: dict[str, int] = {}
    outs = expire(BatchState(store, 0), {"acme": 30, "globex": 30}, NOW, None, erased, limit=1)
    assert len(outs) == 2
    assert erased == {"acme": 1, "globex": 1}
