"""The benchmark's pure parts: percentiles, the baseline fold, flag latencies, the skewed load."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from journeys.bench.load import (
    BENCH_TENANTS,
    SyntheticLoad,
    event_counts,
    skewed_lines,
    skewed_load,
)
from journeys.bench.offline import (
    EncryptionCost,
    check_rate,
    decode_rates,
    encryption_cost,
    hot_customer_cost_ratio,
    hot_events,
)
from journeys.bench.result import (
    REQUIRED_KEYS,
    BenchResult,
    BenchSizes,
    flag_latencies,
    fold_raw,
    machine_info,
    percentile,
    render_result,
)
from journeys.bench.synthetic import synthetic_lines
from journeys.bench.workers import worker_config
from journeys.cli.check import check_lines
from journeys.settings import Settings, load_settings
from projections.identifiers import identity_ids
from projections.ledger import Ledger
from projections.settings import RULES, FoldSettings
from schemas.codec import decode_event
from schemas.events import DECISION_TYPES, ERASURE_TYPE, EVENT_TYPES, HANDLING_TYPES
from tests.factories import flag_change

NOW = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def load() -> SyntheticLoad:
    return skewed_load(6_000, 1_200, seed=7)


# --- percentiles -------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile(list(reversed(values)), 50) == pytest.approx(50.5)


def test_percentile_of_one_value_and_errors() -> None:
    assert percentile([3.5], 99) == 3.5
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


# --- baseline fold and flag latencies ----------------------------------------------------------


def test_fold_raw_groups_event_ids_by_tenant_and_first_identifier() -> None:
    journeys: dict[tuple[str, str], list[str]] = {}
    lines = [
        b'{"event_id":"a","tenant":"t","customer":{"email":"x@y.z","phone":"1"}}',
        b'{"event_id":"b","tenant":"t","customer":{"email":"x@y.z"}}',
        b'{"event_id":"c","tenant":"u","customer":{"plate":"AB12"}}',
        None,
    ]
    assert fold_raw(lines, journeys) == 4
    assert journeys == {("t", "x@y.z"): ["a", "b"], ("u", "AB12"): ["c"]}


def _flag(change: str, rule: str, ids: list[str], tenant: str = "t") -> bytes:
    return flag_change(change, tenant, "c", "f", rule=rule, event_ids=ids).to_bytes()


def test_flag_latency_runs_from_the_latest_event_sent_to_the_first_opening() -> None:
    sent = {"e1": 100.0, "e2": 100.5, "e3": 101.0}
    records = [
        (100_700, _flag("opened", "DATE_MISMATCH", ["e1", "e2"])),  # 200 ms after e2
        (105_000, _flag("opened", "DATE_MISMATCH", ["e2", "e1"])),  # moved by a merge: ignored
        (101_050, _flag("resolved", "DATE_MISMATCH", ["e1", "e2"])),  # not an opening
        (101_300, _flag("opened", "REPEATED_ASK", ["e3", "unknown"])),  # 300 ms after e3
        (101_300, _flag("opened", "REPEATED_ASK", ["not-ours"])),  # not sent here
        (101_300, None),
    ]
    assert sorted(flag_latencies(records, sent)) == pytest.approx([200.0, 300.0])


def test_flag_latency_is_never_negative() -> None:
    assert flag_latencies([(99_000, _flag("opened", "R", ["e1"]))], {"e1": 100.0}) == [0.0]


# --- the result and the machine ----------------------------------------------------------------


def test_result_has_the_keys_the_issue_requires() -> None:
    document = BenchResult().to_dict()
    assert set(REQUIRED_KEYS) <= document.keys()
    assert {"producer_events_per_s", "pipeline_two_workers_events_per_s"} <= document.keys()
    assert {"rocksdb_mb_per_million_events", "machine", "sizes"} <= document.keys()
    assert {"check_events_per_s", "hot_customer_cost_ratio"} <= document.keys()
    assert "encryption_share_of_event_cpu" in document
    assert "encryption_share_of_pipeline_cpu" in document
    assert {"single_tenant_events_per_s", "processes_auto_events_per_s"} <= document.keys()
    assert {"peers", "pipeline_vs_peers"} <= document.keys()
    assert document["peers"] == {}


def test_result_renders_the_measured_peers_as_a_table() -> None:
    result = BenchResult(
        pipeline_events_per_s=5_000,
        processes_auto_events_per_s=8_000,
        single_tenant_events_per_s=4_000,
        peers={"faust": {"events_per_s": 1_500, "store": "rocksdb://"}},
        pipeline_vs_peers=3.33,
        sizes={"events": 10, "customers": 2, "processes": 2},
    )
    console = Console(record=True, width=200)

    render_result(console, result)

    text = console.export_text()
    assert "peer: faust" in text
    assert "1,500 events/s" in text
    assert "--processes auto" in text
    assert "8,000 events/s" in text
    assert "3.33" in text
    assert "not measured in this run" not in text


def test_machine_info_names_cores_python_and_broker() -> None:
    info = machine_info("embedded Tansu")
    assert info["cores"] >= 1
    assert info["python"].count(".") == 2
    assert info["broker"] == "embedded Tansu"


def test_sizes_default_customers_to_a_fifth_of_the_events() -> None:
    assert BenchSizes(events=1_000).customer_count == 200
    assert BenchSizes(events=1_000, customers=7).customer_count == 7
    assert BenchSizes(rate=200, latency_seconds=2.5).latency_events == 500


def test_worker_config_is_a_settings_file_for_the_run(tmp_path: Path) -> None:
    settings = Settings().with_bootstrap_servers("broker:9093")
    path = tmp_path / "w.toml"
    path.write_text(worker_config(settings, "bench-x.two", "t" * 20), encoding="utf-8")
    loaded = load_settings(path, {})
    assert loaded.kafka.bootstrap_servers == "broker:9093"
    assert loaded.kafka.topic_prefix == "bench-x.two"
    assert loaded.api.tokens[0].token == "t" * 20
    assert loaded.api.tokens[0].tenants == ("*",)
    assert loaded.fold_settings() == settings.fold_settings()


# --- the skewed load ---------------------------------------------------------------------------


def test_event_counts_are_skewed_and_sum_exactly() -> None:
    counts = event_counts(50_000, 10_000, random.Random(3))
    assert sum(counts) == 50_000
    assert min(counts) >= 1
    ordered = sorted(counts, reverse=True)
    assert ordered[0] >= 20 * ordered[len(ordered) // 2]  # the heaviest dwarfs the median
    assert sum(ordered[:1_000]) > 0.35 * 50_000  # a tenth of the customers, over a third
    assert max(counts) <= 50_000 // 50  # capped


def test_event_counts_reject_fewer_events_than_customers() -> None:
    with pytest.raises(ValueError, match="at least one event per customer"):
        event_counts(5, 10, random.Random(1))


def test_skewed_load_spreads_customers_over_the_tenants_given() -> None:
    single = skewed_load(500, 100, seed=3, tenants=BENCH_TENANTS[:1])

    assert {c.tenant for c in single.customers} == {BENCH_TENANTS[0]}
    assert {orjson.loads(line)["tenant"] for line in single.lines} == {BENCH_TENANTS[0]}
    assert len(single.lines) == 500


def test_skewed_load_is_deterministic_by_seed() -> None:
    assert skewed_lines(800, 150, seed=5) == skewed_lines(800, 150, seed=5)
    assert skewed_lines(800, 150, seed=5) != skewed_lines(800, 150, seed=6)


def test_skewed_load_has_the_size_asked_for(load: SyntheticLoad) -> None:
    assert len(load.lines) == 6_000
    assert len(load.customers) == 1_200
    assert sum(c.events for c in load.customers) == 6_000
    tenants = Counter(c.tenant for c in load.customers)
    assert set(tenants) == set(BENCH_TENANTS)


def test_skewed_load_is_valid_ordered_and_uses_the_whole_catalogue(load: SyntheticLoad) -> None:
    events = [decode_event(line) for line in load.lines]
    assert {e.type for e in events} == set(EVENT_TYPES) - DECISION_TYPES - HANDLING_TYPES - {
        ERASURE_TYPE
    }
    moments = [e.occurred_at for e in events]
    assert moments == sorted(moments)
    assert len({e.event_id for e in events}) == len(events)


def test_skewed_load_needs_stitching_and_merges(load: SyntheticLoad) -> None:
    keys: dict[int, list[set[str]]] = {}
    for line, owner in zip(load.lines, load.customer_of_line, strict=True):
        keys.setdefault(owner, []).append({i.key for i in identity_ids(decode_event(line))})
    several = [sets for sets in keys.values() if len(sets) > 1]
    stitched = [sets for sets in several if not set.intersection(*sets)]
    # No identifier on every event: only transitive stitching makes one journey of them.
    assert 0.15 < len(stitched) / len(several) < 0.9
    plans = load.customers
    assert any(c.merges for c in plans)
    assert any(c.anchored for c in plans)


def test_skewed_load_folds_into_one_journey_per_customer_flagging_the_contradictory(
    load: SyntheticLoad,
) -> None:
    report = check_lines(load.lines, FoldSettings(), NOW)
    assert not report.rejected
    assert len(report.journeys) == len(load.customers)
    flagged = {int(j.events[0].event_id.split("-")[1]) for j in report.journeys if j.flags}
    planned = {c.index for c in load.customers if c.contradictory}
    assert flagged == planned
    assert 0.02 < len(planned) / len(load.customers) < 0.5
    rules = {f.rule for j in report.journeys for f in j.flags}
    assert rules == set(RULES)  # every rule fires somewhere
    # The recall the service centre could not see, then a 3/10: the score comes with its cause.
    recalls = {c.index for c in load.customers if c.contradictory and c.story == "recall"}
    assert recalls
    for journey in report.journeys:
        if int(journey.events[0].event_id.split("-")[1]) in recalls:
            low = [f for f in journey.flags if f.rule == "LOW_SCORE_AFTER_FLAGS"]
            assert any("RECALL_NOT_VISIBLE (head-office-recalls" in f.message for f in low)


def test_synthetic_lines_are_unchanged_by_the_skewed_generator() -> None:
    first = orjson.loads(next(iter(synthetic_lines(1))))
    assert first["event_id"] == "acm-0001-0"
    assert len(list(synthetic_lines(2))) == 2 * 31  # two copies of the demo


def test_check_rate_checks_every_generated_event() -> None:
    rate = check_rate(500, seed=3)
    assert rate.events == 500
    assert rate.events_per_s > 0


def test_hot_events_fold_into_one_journey() -> None:
    events = hot_events(skewed_lines(300, 60, seed=2))
    ledger = Ledger(FoldSettings())
    ledger.add_all(events)
    assert [len(journey.events) for journey in ledger] == [300]


def test_hot_customer_cost_ratio_is_a_positive_ratio() -> None:
    assert hot_customer_cost_ratio(hot=60, measured=5, seed=2) > 0


def test_decode_rates_reads_with_both_decoders() -> None:
    rates = decode_rates(300, seed=2, repeat=1)
    assert rates.trusted_events_per_s > 0
    assert rates.pydantic_events_per_s > 0


def test_encryption_cost_measures_the_same_events_it_checks() -> None:
    cost = encryption_cost(200, seed=2)
    assert cost.events == 200
    assert cost.crypto_s > 0
    assert cost.check_s > 0
    assert 0 < cost.share < 1


def test_the_encryption_share_is_crypto_over_crypto_and_check() -> None:
    assert EncryptionCost(10, crypto_s=1.0, check_s=3.0).share == 0.25
    assert EncryptionCost(0, crypto_s=0.0, check_s=0.0).share == 0.0


def test_the_sealing_share_times_sealing_inside_the_chained_stages() -> None:
    from journeys.bench.sealing_share import sealing_share

    share = sealing_share(300, seed=2)
    assert share.events == 300
    assert share.sealed >= 300  # every event sealed (and merges' identifiers as notes)
    assert 0 < share.sealing_s < share.pipeline_s
    assert 0 < share.share < 1


def test_the_timed_sealer_seals_as_the_sealer_does(tmp_path: Path) -> None:
    """Timing must not change a byte: the same body sealed by both is the same."""
    from journeys.bench.sealing_share import BENCH_MASTER_KEY, TimedSealer
    from streams.crypto.keys import LocalKeyProvider
    from streams.crypto.sealing import Sealer
    from streams.store.state import BatchState, LocalStore

    body = skewed_lines(1, 1, seed=3)[0]
    sealed = []
    for name, sealer in (
        ("plain", Sealer(LocalKeyProvider(BENCH_MASTER_KEY), random=lambda n: bytes(n))),
        ("timed", TimedSealer(LocalKeyProvider(BENCH_MASTER_KEY), random=lambda n: bytes(n))),
    ):
        store = LocalStore(tmp_path / name)
        try:
            state = BatchState(store, 0)
            sealed.append(sealer.seal(state, "acme", "cus_1", body))
            ring = sealer.ring(state, "acme", "cus_1")
            assert ring is not None
            sealed.append(sealer.seal_note(ring, "acme", "e1", "a@b.co").encode())
        finally:
            store.close()
    assert sealed[:2] == sealed[2:]
    assert b"enc:v1:" in sealed[0]
    assert isinstance(sealed[0], bytes)


def test_the_email_check_cost_judges_each_distinct_address_and_says_it_per_address() -> None:
    from journeys.bench.offline import EmailCheckCost, email_check_cost

    cost = email_check_cost(addresses=40, repeat=1)
    assert cost.addresses == 40
    assert min(cost.validator_s, cost.problem_s, cost.normalise_s) >= 0
    assert EmailCheckCost(4, 0.0, 0.0, 0.0002).per_address_us(0.0002) == pytest.approx(50.0)


def test_the_shared_value_check_folds_one_customer_an_event_and_says_a_rate() -> None:
    from journeys.bench.offline import shared_value_check_rate, shared_value_lines

    lines = shared_value_lines(12)
    report = check_lines(lines, FoldSettings())
    assert report.accepted == 12
    assert not report.rejected
    # default limits: three e-mails share the phone, the other nine customers stand alone
    assert sorted(len(j.events) for j in report.journeys) == [1] * 9 + [3]
    assert shared_value_check_rate(12) > 0
