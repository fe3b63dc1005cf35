"""The live journey read shows the `IDENTITY_CONFLICT` flags ingest opened (they reach it from
the flag topic, not from the journey stage) as the pure fold's journey shows them (issue 13):
open ones only, by the journey's moment, in the flags' order, at most `MAX_HELD_SHOWN`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from projections.flag_changes import flag_snapshot
from projections.identity import IDENTITY_CONFLICT
from projections.ledger import Ledger
from projections.view import LEFT_OUT, MAX_HELD_SHOWN, view, view_to_dict, with_held
from schemas.codec import decode_event
from schemas.outputs import FlagSnapshot
from streams.flag_index import FlagIndex
from tests.factories import flag_change
from tests.unit.test_identity_rules import SHOP, _line, _settings

LIMITED = _settings({"limits": {"email": 1}})
# Carol orders the same twice: a flag of the journey's own rules beside the held link's
LINES = [
    *SHOP,
    _line(
        "s-9",
        "order.placed",
        "2024-03-09T11:30:00Z",
        {"email": "carol@example.com", "name": "Carol"},
        order_id="NW-9",
        items=["SKU-9"],
    ),
]


def _fold() -> tuple[Ledger, list[Any]]:
    ledger = Ledger(LIMITED)
    for line in LINES:
        ledger.add(decode_event(line))
    return ledger, list(ledger)


def _snapshot(flag_id: str, opened_at: str, **fields: Any) -> FlagSnapshot:
    body: dict[str, Any] = {
        "flag_id": flag_id,
        "rule": IDENTITY_CONFLICT,
        "severity": "medium",
        "status": "open",
        "message": "phone +441134960000 (shop) would have joined …",
        "event_ids": ["s-1"],
        "opened_at": opened_at,
        "resolved_at": None,
        "resolution": None,
        "systems": ["shop"],
        "sites": [],
        **fields,
    }
    return FlagSnapshot.model_validate(body)


def test_the_live_journey_with_the_topics_conflicts_equals_the_pure_folds() -> None:
    ledger, journeys = _fold()
    assert len(journeys) == 2
    shown_conflicts = 0
    kept_order: list[list[str]] = []
    for journey in journeys:
        held = ledger.conflicts_of(journey.tenant, journey.customer_id)
        as_of = max(j.events[-1].occurred_at for j in journeys)  # as `journeys check` shows
        why = ledger.why(journey)
        pure = view_to_dict(view(journey, as_of, LIMITED, held=held, why=why))
        live = view_to_dict(view(journey, as_of, LIMITED, why=why))  # the journey stage's
        assert not [f for f in live["flags"] if f["rule"] == IDENTITY_CONFLICT]
        topic = [flag_snapshot(f) for f in held]
        # the flag topic also carries the customer's other flags and resolved conflicts
        topic += [flag_snapshot(f) for f in view(journey, as_of, LIMITED).flags]
        topic.append(_snapshot("flg_done", "2024-03-09T09:00:00+00:00", status="resolved"))
        assert with_held(live, topic) == pure
        if len(pure["flags"]) > 1:
            kept_order.append([f["rule"] for f in pure["flags"]])
        shown_conflicts += sum(f["rule"] == IDENTITY_CONFLICT for f in pure["flags"])
    assert shown_conflicts == 2
    # Carol's journey has a flag of its own too, opened after the held link: order is tested
    assert kept_order == [[IDENTITY_CONFLICT, "DUPLICATE_ORDER"]], kept_order


def test_a_conflict_opened_after_the_moment_shown_or_not_a_moment_is_left_out() -> None:
    _, journeys = _fold()
    journey = journeys[0]
    as_of = journey.events[-1].occurred_at
    document = view_to_dict(view(journey, as_of, LIMITED))
    later = _snapshot("flg_later", (as_of + timedelta(seconds=1)).isoformat())
    naive = _snapshot("flg_naive", "2024-03-09T09:00:00")
    garbage = _snapshot("flg_garbage", "not a moment")
    assert with_held(document, [later, naive, garbage]) is document


def test_past_the_limit_the_latest_conflicts_are_shown_and_the_rest_counted() -> None:
    _, journeys = _fold()
    journey = journeys[0]
    document = view_to_dict(view(journey, journey.events[-1].occurred_at, LIMITED))
    many = [
        _snapshot(f"flg_{n:03d}", f"2024-03-0{1 + n // 24}T{n % 24:02d}:00:00+00:00")
        for n in range(MAX_HELD_SHOWN + 7)
    ]
    shown = with_held(document, reversed(many))
    conflicts = [f["flag_id"] for f in shown["flags"] if f["rule"] == IDENTITY_CONFLICT]
    assert conflicts == [f.flag_id for f in many[7:]]
    assert shown[LEFT_OUT] == 7
    assert LEFT_OUT not in with_held(document, many[:3])
    assert LEFT_OUT not in document


def test_the_flag_index_gives_one_customers_flags_of_its_own_tenant_only() -> None:
    index = FlagIndex()
    index.apply(flag_change("opened", "acme", "cus_a", "flg_1", rule=IDENTITY_CONFLICT))
    index.apply(flag_change("opened", "acme", "cus_a", "flg_2"))
    index.apply(flag_change("opened", "northwind", "cus_a", "flg_3", rule=IDENTITY_CONFLICT))
    index.apply(flag_change("opened", "acme", "cus_b", "flg_4", rule=IDENTITY_CONFLICT))
    assert sorted(f.flag_id for f in index.snapshots_of("acme", "cus_a")) == ["flg_1", "flg_2"]
    assert [f.flag_id for f in index.snapshots_of("northwind", "cus_a")] == ["flg_3"]
    index.apply(flag_change("withdrawn", "acme", "cus_a", "flg_1"))
    index.apply(flag_change("resolved", "acme", "cus_a", "flg_2", status="resolved"))
    assert [(f.flag_id, f.status) for f in index.snapshots_of("acme", "cus_a")] == [
        ("flg_2", "resolved")
    ]
    index.apply(flag_change("withdrawn", "acme", "cus_a", "flg_2"))
    assert index.snapshots_of("acme", "cus_a") == []
    assert index.of_customer("acme", "cus_b")[0]["customer_id"] == "cus_b"
    assert len(index) == 2
