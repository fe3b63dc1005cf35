"""The journey stage lists each customer's merges: as the pure fold does, bounded, carried on."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from projections.journey import Merge
from projections.settings import FoldSettings
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_MERGES,
    KIND_REGROUP,
    MergeHistory,
    MergeRecord,
    RegroupRecord,
)
from streams.kafka.records import InRecord
from streams.stages.journey.merges import MAX_MERGES, as_merges, merges_of, pass_on, take
from streams.stages.journey.stage import JourneyCache, process_events
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.factories import raw
from tests.unit.test_stages import NOW, PARTITIONS, Pipeline

T = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def merge_histories(pipeline: Pipeline) -> dict[tuple[str, str], tuple[Merge, ...]]:
    """Every customer's merges as the pipeline's journey stage keeps them."""
    found = {}
    for partition in range(PARTITIONS):
        for key, value in pipeline.journeys.items(partition):
            ref = keys.customer_of(keys.Prefix.MERGES, key)
            if ref is not None:
                found[ref] = as_merges(MergeHistory.from_bytes(value).merges)
    return found


def _live_merges(pipeline: Pipeline) -> dict[tuple[str, str], list[tuple[str, str, str, str]]]:
    return {
        ref: [(m.at.isoformat(), m.event_id, m.identifier, m.from_customer) for m in merges]
        for ref, merges in merge_histories(pipeline).items()
    }


def _pure_merges(lines: list[bytes]) -> dict[tuple[str, str], list[tuple[str, str, str, str]]]:
    report = check_lines(lines, FoldSettings(), NOW)
    return {
        (j.tenant, j.customer_id): [
            (m.at.isoformat(), m.event_id, m.identifier, m.from_customer) for m in j.merges or ()
        ]
        for j in report.journeys
        if j.merges
    }


def _merging_lines() -> list[bytes]:
    lines = []
    for n in range(6):  # six customers, one car (VIN) each; then one event joins them all
        # (VINs, not e-mails: six e-mails would be past the default limit of three)
        customer = {"vin": f"WVWZZZ1KZAW00012{n}", "plate": f"AB{n}2 CDE"}
        lines.append(
            orjson.dumps(raw("form.submitted", {"form": "x"}, event_id=f"a{n}", customer=customer))
        )
    everyone = {"customer_ref": "C-1", "vin": "WVWZZZ1KZAW000120", "plate": "AB12 CDE"}
    lines.append(
        orjson.dumps(raw("form.submitted", {"form": "x"}, event_id="j1", customer=everyone))
    )
    for n in range(2, 6):
        customer = {"customer_ref": "C-1", "plate": f"AB{n}2 CDE"}
        lines.append(
            orjson.dumps(raw("form.submitted", {"form": "x"}, event_id=f"j{n}", customer=customer))
        )
    return lines


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_merges_equal_the_pure_fold_whatever_the_order_and_crashes(
    tmp_path: Path, seed: int
) -> None:
    lines = demo_lines()
    random.Random(seed).shuffle(lines)
    lines += _merging_lines()  # in order: one customer made of six, through merges of merges
    pipeline = Pipeline(tmp_path, crash_rate=0.2, seed=seed)
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    pure = _pure_merges(lines)
    assert max(len(m) for m in pure.values()) == 6
    assert _live_merges(pipeline) == pure


def _merge(n: int, into: str = "cus_b") -> MergeRecord:
    return MergeRecord(
        tenant="acme",
        from_=f"cus_{n:03d}",
        into=into,
        at=T + timedelta(minutes=n),
        event_id=f"e-{n}",
        identifier=f"email c{n}@garage.co.uk",
    )


def test_a_customer_keeps_its_latest_merges_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "journeys")
    state = BatchState(store, 0)
    ref = ("acme", "cus_b")
    for n in range(MAX_MERGES + 20):
        history = MergeHistory(tenant="acme", customer="cus_b", merges=(_merge(n),))
        assert take(state, ref, history, None) == []
        take(state, ref, history, None)  # delivered twice: counted once
    kept = merges_of(state, ref)
    assert [m.event_id for m in kept] == [f"e-{n}" for n in range(20, MAX_MERGES + 20)]


def test_a_merged_customer_carries_its_merges_to_the_one_it_merged_into(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "journeys")
    state = BatchState(store, 0)
    ref = ("acme", "cus_b")
    take(state, ref, MergeHistory(tenant="acme", customer="cus_b", merges=(_merge(1),)), None)
    (out,) = pass_on(state, ref, _merge(2, into="cus_c").model_copy(update={"from_": "cus_b"}))
    assert merges_of(state, ref) == ()
    assert out.key is not None
    assert dict(out.headers)["kind"] == KIND_MERGES
    carried = MergeHistory.from_bytes(out.value or b"")
    assert carried.customer == "cus_c"
    assert [(m.event_id, m.from_) for m in carried.merges] == [("e-1", "cus_001"), ("e-2", "cus_b")]
    # a history arriving after the customer merged on follows it
    (again,) = take(state, ref, carried, ("acme", "cus_d"))
    assert MergeHistory.from_bytes(again.value or b"").customer == "cus_d"
    # a rename (no identifier reached the customer) carries the merges and adds none
    take(state, ref, carried, None)
    (renamed,) = pass_on(state, ref, MergeRecord(tenant="acme", from_="cus_b", into="cus_e"))
    assert MergeHistory.from_bytes(renamed.value or b"").merges == carried.merges


def test_a_split_deals_each_merge_to_the_part_holding_its_identifier(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "journeys")
    state = BatchState(store, 0)
    ref = ("acme", "cus_b")
    merges = tuple(_merge(n) for n in (1, 2, 3, 4))
    take(state, ref, MergeHistory(tenant="acme", customer="cus_b", merges=merges), None)
    regroup = RegroupRecord(
        tenant="acme",
        customer="cus_b",
        parts={
            "cus_b": ("email:c1@garage.co.uk",),
            "cus_c": ("email:c3@garage.co.uk",),
            "cus_004": ("email:c4@garage.co.uk",),
        },
        reason="blocked by r.khan on 2026-03-01: switchboard",
        decision_id="dec-1",
        dropped=("email:c2@garage.co.uk",),
    )
    headers = ((HEADER_KIND, KIND_REGROUP), (HEADER_CUSTOMER_ID, b"cus_b"))
    record = InRecord("events", 0, 0, b"acme/cus_b", regroup.to_bytes(), 0, headers)
    out = process_events(state, JourneyCache(), [record], NOW, FoldSettings())
    assert merges_of(state, ref) == (merges[0],)  # c2 is refused now; cus_004 stands again
    (sent,) = [o for o in out if (HEADER_KIND, KIND_MERGES) in o.headers]
    assert sent.key == b"acme/cus_c"
    assert MergeHistory.from_bytes(sent.value or b"").merges == (merges[2],)
