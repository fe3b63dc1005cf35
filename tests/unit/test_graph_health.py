"""Graph health: the pure bookkeeping, and the live scan equal to the pure fold's figures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from journeys.bench.load import skewed_lines
from journeys.demo import demo_lines
from projections.health.graph import MAX_TOP, graph_health, strong_counts
from projections.ledger import fold, identity_stats
from schemas.codec import decode_event
from streams.graph_health import GraphHealthCache, worker_health
from tests.unit.test_identity_rules import BLOCK, DEALER, SHOP, _line, _settings
from tests.unit.test_identity_split import DAVE_AGAIN
from tests.unit.test_stages import PARTITIONS, Pipeline


def test_strong_counts_count_distinct_strong_identifiers_seen_with_each_key() -> None:
    edges = [
        {"phone:+44:1134960000", "email:a@x.example"},
        {"phone:+44:1134960000", "email:b@x.example", "customer_ref:c-1"},
        {"phone:+44:1134960000", "email:a@x.example"},  # again: counted once
    ]
    counts = strong_counts(edges)
    assert counts["phone:+44:1134960000"] == 3
    assert counts["email:b@x.example"] == 1  # itself aside
    assert counts["email:a@x.example"] == 0
    stitched = strong_counts([{"phone:+44:7123", "phone:7123", "email:a@x", "email:b@x"}])
    assert "phone:7123" not in stitched  # the national form of the same number
    assert stitched["phone:+44:7123"] == 2


def test_top_lists_are_bounded_and_ranked() -> None:
    customers = [
        (f"c{n:04d}", n % 37, [{f"plate:P{n}", f"email:{n}@x", f"email:{n}@y"}]) for n in range(500)
    ]
    health = graph_health(iter(customers), top=1000)
    assert health.customers == 500
    assert len(health.largest) == MAX_TOP
    assert [n for _, n in health.largest] == sorted((n % 37 for n in range(500)), reverse=True)[
        :MAX_TOP
    ]
    assert health.largest[0] == ("c0036", 36)  # ties by id
    assert health.shared_values == 500  # each plate seen with two e-mails
    assert len(health.shared) == MAX_TOP


def test_only_an_admin_sees_values() -> None:
    health = graph_health(iter([("cus_1", 3, [{"plate:AB12", "email:a@x", "email:b@x"}])]))
    hidden = orjson.dumps(health.to_dict(show_values=False))
    for value in (b"cus_1", b"AB12", b"a@x"):
        assert value not in hidden
    shown = health.to_dict(show_values=True)
    assert shown["largest_customers"] == [{"customer_id": "cus_1", "identifiers": 3}]
    assert shown["suspected_shared"] == [{"identifier": "plate:AB12", "strong_identifiers": 2}]


def _compare(pipeline: Pipeline, lines: list[bytes]) -> int:
    ledger = fold([decode_event(line) for line in lines], pipeline.settings)
    live = worker_health(pipeline.identity, range(PARTITIONS))
    assert set(live) == {tenant for tenant, _ in ledger.seen}
    shared = 0
    for tenant, health in live.items():
        pure = identity_stats(ledger, tenant)
        assert health.customers == pure["customers"]
        assert [list(row) for row in health.largest] == [
            [row["customer_id"], row["identifiers"]] for row in pure["largest_customers"]
        ]
        assert [n for _, n in health.shared] == [
            row["strong_identifiers"] for row in pure["suspected_shared"]
        ]
        assert [k.partition(":")[0] for k, _ in health.shared] == [
            row["identifier"].partition(" ")[0] for row in pure["suspected_shared"]
        ]
        assert not health.truncated
        shared += len(health.shared)
    return shared


def test_the_live_figures_equal_the_pure_fold(tmp_path: Path) -> None:
    lines = [*DEALER, *SHOP]
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings()
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert _compare(pipeline, lines) == 1  # the dealer's switchboard


def test_the_live_figures_equal_the_pure_fold_on_the_demo_and_a_skewed_load(
    tmp_path: Path,
) -> None:
    lines = [*demo_lines(), *skewed_lines(300, 40, seed=4)]
    pipeline = Pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    _compare(pipeline, lines)


def test_a_capped_scan_says_its_figures_are_partial(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    for line in demo_lines():
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    capped = worker_health(pipeline.identity, range(PARTITIONS), max_records=3)
    assert any(h.truncated for h in capped.values())
    assert all(h.customers <= 3 for h in capped.values())


def test_the_cache_keeps_its_figures_until_they_are_stale(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings()
    pipeline.append("touchpoints", b"acme", DEALER[0])
    pipeline.drain()
    cache = GraphHealthCache(pipeline.identity, lambda: range(PARTITIONS), min_interval=3600)
    first = asyncio.run(cache.refresh())["acme"].customers
    for line in SHOP:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert asyncio.run(cache.refresh())["acme"].customers == first  # not read again yet
    cache.min_interval = 0
    assert asyncio.run(cache.refresh())["acme"].customers > first


def test_a_closed_cache_reads_the_state_no_more(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings()
    pipeline.append("touchpoints", b"acme", DEALER[0])
    pipeline.drain()
    cache = GraphHealthCache(pipeline.identity, lambda: range(PARTITIONS), min_interval=0)
    asyncio.run(cache.close())
    assert asyncio.run(cache.refresh()) == {}


def test_a_value_whose_links_a_limit_held_is_counted_across_customers_as_the_pure_fold(
    tmp_path: Path,
) -> None:
    """The switchboard is in Carol's edges only (Dave's link to it was held): it was still
    seen with both e-mails, and the live figures say so, as `journeys identity stats` does."""
    lines = [*SHOP, DAVE_AGAIN]
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings({"limits": {"email": 1}})
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert _compare(pipeline, lines) == 1
    (health,) = worker_health(pipeline.identity, range(PARTITIONS)).values()
    assert health.shared == [("phone:+44:1134960000", 2)]


def test_a_value_a_person_blocked_is_not_a_suspected_shared_value(tmp_path: Path) -> None:
    """Carol's customer keeps the blocked switchboard in its edges, beside two strong
    identifiers; the pure fold never counts a blocked value, nor does the live scan."""
    both = _line(
        "g-1",
        "form.submitted",
        "2024-03-09T09:00:00Z",
        {"email": "carol@example.com", "customer_ref": "C-9", "phone": "0113 496 0000"},
        form="a",
    )
    lines = [both, BLOCK]
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings()
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    ledger = fold([decode_event(line) for line in lines], pipeline.settings)
    assert identity_stats(ledger, "acme")["suspected_shared"] == []
    health = worker_health(pipeline.identity, range(PARTITIONS))["acme"]
    assert health.shared == []  # without the decision: the switchboard with two
    # a decision stands alone live, but it is no customer, live as offline
    assert health.customers == identity_stats(ledger, "acme")["customers"] == 1
