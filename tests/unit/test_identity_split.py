"""Undoing a wrong merge live: a block splits the customers its value joined, flags withdrawn.

The pure parts (`projections.regroup`) are held equal to the offline fold with the decision;
the stages, driven over in-memory topics with real RocksDB files, are held equal to
`journeys check` of the same lines, whatever order they arrive in.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from journeys.cli.check import check_lines
from projections.flag_changes import GENERATION, flag_transitions
from projections.identifiers import identity_ids
from projections.identity import IDENTITY_CONFLICT, customer_id_for
from projections.ledger import fold_all
from projections.regroup import components, decided_form, split, split_graph, split_reason
from projections.rules import detect
from schemas.codec import decode_event, encode_event
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_EVENT,
    KIND_MERGE,
    KIND_MOVED,
    KIND_REGROUP,
    KIND_REJOIN,
    FlagSnapshot,
    MergeRecord,
    RegroupRecord,
    RejoinRecord,
)
from streams.kafka.records import InRecord, OutRecord
from streams.stages.identity.members import stored_members
from streams.stages.journey.segments import read_journey
from streams.stages.journey.split import (
    HEADER_FORWARDED,
    HEADER_SETTLED,
    HEADER_SPLIT_FROM,
    split_document,
)
from streams.stages.journey.stage import JourneyCache, process_events
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.unit.test_identity_rules import BLOCK, SHOP, _decision, _line, _settings
from tests.unit.test_journey_merges import merge_histories
from tests.unit.test_stages import NOW, Pipeline, partition_of

SWITCHBOARD = "phone:1134960000"
"""The decided form of the shop's switchboard number, `0113 496 0000`."""

CAROL_AGAIN = _line(
    "s-3",
    "form.submitted",
    "2024-03-09T13:00:00Z",
    {"email": "carol@example.com", "phone": "0113 496 0000"},
    form="contact",
)
SWITCHBOARD_ONLY = _line(
    "s-4",
    "form.submitted",
    "2024-03-09T09:00:00Z",
    {"phone": "0113 496 0000"},
    form="callback",
)


def _edges(lines: list[bytes]) -> list[frozenset[str]]:
    settings = _settings()
    return [
        frozenset(
            i.key for i in identity_ids(decode_event(line), "GB", settings.identity_for("acme"))
        )
        for line in lines
    ]


def _refused(key: str) -> bool:
    return decided_form(key) == SWITCHBOARD


def test_components_leave_the_blocked_value_out() -> None:
    parts = components("acme", _edges([*SHOP, SWITCHBOARD_ONLY]), _refused)
    assert sorted(parts.values(), key=min) == [
        frozenset({"email:carol@example.com"}),
        frozenset({"email:dave@example.com"}),
    ]


@pytest.mark.parametrize("extra", [[], [CAROL_AGAIN], [CAROL_AGAIN, SWITCHBOARD_ONLY]])
def test_a_split_equals_the_offline_fold_with_the_decision(extra: list[bytes]) -> None:
    lines = [*SHOP, *extra]
    events = [decode_event(line) for line in lines]
    (merged,) = fold_all(events, _settings())
    members = frozenset().union(*_edges(lines))
    found = split_graph("acme", merged.customer_id, members, _edges(lines), _refused)
    assert found is not None
    assert SWITCHBOARD in {decided_form(key) for key in found.dropped}
    pieces = split(merged, found.parts, "GB")
    offline = fold_all([*events, decode_event(BLOCK)], _settings())
    assert pieces == tuple(offline)


def test_nothing_to_split_when_no_key_is_refused_or_edges_are_missing() -> None:
    members = frozenset().union(*_edges(SHOP))
    (merged,) = fold_all([decode_event(line) for line in SHOP], _settings())
    assert split_graph("acme", merged.customer_id, members, _edges(SHOP), lambda _: False) is None
    assert split_graph("acme", merged.customer_id, members, [], _refused) is None


def test_the_split_customer_withdraws_the_flags_no_part_has_with_the_reason() -> None:
    events = [decode_event(line) for line in SHOP]
    (merged,) = fold_all(events, _settings())
    now = datetime.fromisoformat("2024-03-10T00:00:00+00:00")
    rules = _settings().rules
    before = detect(merged.events, now, rules)
    assert [f.rule for f in before] == ["DUPLICATE_ORDER"]
    members = frozenset().union(*_edges(SHOP))
    found = split_graph("acme", merged.customer_id, members, _edges(SHOP), _refused)
    assert found is not None
    pieces = split(merged, found.parts, "GB")
    assert all(detect(p.events, now, rules) == () for p in pieces)
    kept = next((p for p in pieces if p.customer_id == merged.customer_id), None)
    reason = split_reason("blocked by r.khan", merged.customer_id, found.parts)
    previous = {before[0].flag_id: "open"}
    changes = flag_transitions(
        "acme",
        merged.customer_id,
        previous,
        detect(kept.events, now, rules) if kept else (),
        reason,
    )
    assert [(c.change, c.flag_id, c.reason) for c in changes] == [
        ("withdrawn", before[0].flag_id, reason)
    ]
    assert b'"reason":"blocked by r.khan; ' in changes[0].to_bytes()


# --- the stages ---------------------------------------------------------------------------


def _pipeline(root: Path) -> Pipeline:
    pipeline = Pipeline(root)
    pipeline.settings = _settings()
    return pipeline


def _journeys(pipeline: Pipeline) -> dict[str, list[str]]:
    """Customer id -> event ids, decisions (a journey of their own live) left out."""
    return {
        customer: events
        for (_, customer), events in pipeline.stored().items()
        if not any(e.startswith("dec-") for e in events)
    }


def _offline(lines: list[bytes]) -> dict[str, list[str]]:
    report = check_lines(lines, _settings(), NOW)
    return {j.customer_id: [e.event_id for e in j.events] for j in report.journeys}


def _graph(pipeline: Pipeline) -> dict[str, list[str]]:
    """Ingest's customers that hold an identifier (decisions' own customers left out)."""
    found: dict[str, list[str]] = {}
    for partition in range(3):
        for customer, held in stored_members(pipeline.identity, partition, "acme"):
            if not all(m.startswith("event:") for m in held):
                found[customer] = sorted(held)
    return found


def _standing(pipeline: Pipeline) -> dict[str, str]:
    last: dict[tuple[str, str], str] = {}
    for change in pipeline.flags:
        kind = change.change
        if kind in ("handled", "updated") and isinstance(change.flag, FlagSnapshot):
            kind = "opened" if change.flag.status == "open" else "resolved"  # the status stood
        last[(change.customer_id, change.flag_id)] = kind
    return {f"{c}/{f}": s for (c, f), s in last.items() if s != "withdrawn"}


def test_a_block_while_running_splits_the_customer_and_withdraws_the_duplicate_order(
    tmp_path: Path,
) -> None:
    pipeline = _pipeline(tmp_path)
    for line in SHOP:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert sorted(_journeys(pipeline).values()) == [["s-1", "s-2"]]
    (opened,) = [f for f in pipeline.flags if f.change == "opened"]
    assert opened.flag.to_document()["rule"] == "DUPLICATE_ORDER"
    pipeline.append("touchpoints", b"acme", BLOCK)
    pipeline.drain()
    assert _journeys(pipeline) == _offline([*SHOP, BLOCK])
    assert sorted(_journeys(pipeline).values()) == [["s-1"], ["s-2"]]
    (withdrawn,) = [f for f in pipeline.flags if f.change == "withdrawn"]
    assert (withdrawn.flag_id, withdrawn.customer_id) == (opened.flag_id, opened.customer_id)
    assert withdrawn.reason is not None
    assert withdrawn.reason.startswith("blocked by r.khan on 2024-03-09: the shop's switchboard")
    assert _standing(pipeline) == {}
    graph = _graph(pipeline)
    assert sorted(graph.values()) == [["email:carol@example.com"], ["email:dave@example.com"]]
    assert pipeline.dead == []
    # A later event of Carol's joins Carol only: the switchboard links nothing now.
    pipeline.append("touchpoints", b"acme", CAROL_AGAIN)
    pipeline.drain()
    assert _journeys(pipeline) == _offline([*SHOP, BLOCK, CAROL_AGAIN])
    assert sorted(_journeys(pipeline).values()) == [["s-1", "s-3"], ["s-2"]]


def test_a_customer_whose_smallest_key_was_blocked_is_split_away_entirely(tmp_path: Path) -> None:
    """A block of `customer_ref:A` (the smallest key) leaves no part with the old id."""
    ref_a = {"customer_ref": "A-1", "email": "erin@example.com"}
    lines = [
        _line("r-1", "order.placed", "2024-03-09T10:00:00Z", ref_a, order_id="X1", items=["S"]),
        _line(
            "r-2",
            "order.placed",
            "2024-03-09T10:30:00Z",
            {"customer_ref": "A-1", "email": "finn@example.com"},
            order_id="X2",
            items=["S"],
        ),
    ]
    block = orjson.loads(_decision("identity.blocked", "dec-9", "2024-03-09T12:00:00Z"))
    block["customer"] = {"customer_ref": "A-1"}
    pipeline = _pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    (merged,) = _journeys(pipeline)
    assert [f.customer_id for f in pipeline.flags if f.change == "opened"] == [merged]
    pipeline.append("touchpoints", b"acme", orjson.dumps(block))
    pipeline.drain()
    assert merged not in _journeys(pipeline)
    assert _journeys(pipeline) == _offline([*lines, orjson.dumps(block)])
    assert len(_journeys(pipeline)) == 2
    assert _standing(pipeline) == {}
    withdrawn = [f for f in pipeline.flags if f.change == "withdrawn"]
    assert {f.customer_id for f in withdrawn} == {merged}
    assert all(f.reason for f in withdrawn)


SCENARIO = [*SHOP, CAROL_AGAIN, SWITCHBOARD_ONLY, BLOCK]


@pytest.mark.parametrize("seed", range(6))
def test_arrival_order_never_changes_customers_or_flags_with_a_block_in_the_log(
    tmp_path: Path, seed: int
) -> None:
    lines = list(SCENARIO)
    random.Random(seed).shuffle(lines)
    pipeline = _pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert _journeys(pipeline) == _offline(SCENARIO)
    report = check_lines(SCENARIO, _settings(), NOW)
    pure = {f"{j.customer_id}/{f.flag_id}": f.status for j in report.journeys for f in j.flags}
    as_status = {"opened": "open", "reopened": "open", "resolved": "resolved"}
    assert {k: as_status[v] for k, v in _standing(pipeline).items()} == pure
    assert pipeline.dead == []


# --- IDENTITY_CONFLICT live ---------------------------------------------------------------

DAVE_AGAIN = _line(
    "s-5",
    "form.submitted",
    "2024-03-09T11:30:00Z",
    {"email": "dave@example.com", "phone": "0113 496 0000"},
    form="contact",
)


def test_a_held_link_opens_identity_conflict_on_both_live_and_a_decision_resolves_it(
    tmp_path: Path,
) -> None:
    limited = _settings({"limits": {"email": 1}})
    pipeline = Pipeline(tmp_path)
    pipeline.settings = limited
    for line in SHOP:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    report = check_lines(SHOP, limited, NOW)
    pure = {f"{j.customer_id}/{f.flag_id}": f.status for j in report.journeys for f in j.flags}
    assert sorted(pure.values()) == ["open", "open"]
    as_status = {"opened": "open", "reopened": "open", "resolved": "resolved"}
    assert {k: as_status[v] for k, v in _standing(pipeline).items()} == pure
    opened = [f for f in pipeline.flags if f.change == "opened"]
    assert [f.flag.to_document()["rule"] for f in opened] == ["IDENTITY_CONFLICT"] * 2
    # The same link held again by a later event opens nothing again.
    pipeline.append("touchpoints", b"acme", DAVE_AGAIN)
    pipeline.drain()
    conflicts = [f for f in pipeline.flags if f.flag.to_document().get("rule") == IDENTITY_CONFLICT]
    assert conflicts == opened
    pipeline.append("touchpoints", b"acme", BLOCK)
    pipeline.drain()
    resolved = [f for f in pipeline.flags if f.change == "resolved"]
    assert {(f.customer_id, f.flag_id) for f in resolved} == {
        (f.customer_id, f.flag_id) for f in opened
    }
    for change in resolved:
        document = change.flag.to_document()
        assert document["status"] == "resolved"
        assert document["resolution"] == "blocked by r.khan on 2024-03-09: the shop's switchboard"
    assert pipeline.dead == []


def test_a_decision_that_fails_half_way_sends_nothing_and_leaves_the_graph_as_it_was(
    tmp_path: Path,
) -> None:
    """The block resolves the conflicts on the switchboard, then cannot read the edge of the
    customer holding it (a stored record damaged): no flag resolved, no regroup record, the
    graph and its conflicts as before; the decision stays recorded, the stage goes on."""
    pipeline = Pipeline(tmp_path)
    pipeline.settings = _settings({"limits": {"email": 1}})
    for line in SHOP:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    opened = _standing(pipeline)
    assert sorted(opened.values()) == ["opened", "opened"]
    holder = _identity(pipeline)[b"i/acme/phone:+44:1134960000"]
    (edge,) = [k for k in _identity(pipeline) if k.startswith(b"h/acme/" + holder + b"/")]
    pipeline.identity.write(partition_of(b"acme"), {edge: b"\x00 not an edge"})
    before = _identity(pipeline)
    flags, events = len(pipeline.flags), sum(len(log) for log in pipeline.events.values())
    pipeline.append("touchpoints", b"acme", BLOCK)
    pipeline.drain()
    (dead,) = pipeline.dead
    assert str(dead["reason"]).startswith("could not split customers for this record")
    assert pipeline.flags[flags:] == []
    assert _standing(pipeline) == opened
    sent = [r for log in pipeline.events.values() for r in log][events:]
    assert [dict(r.headers)[HEADER_KIND] for r in sent] == [KIND_EVENT]  # the decision only
    after = _identity(pipeline)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    own = after[b"i/acme/event:dec-1"]  # the decision's own customer
    assert {
        k
        for k in changed
        if own not in k and not k.endswith(b"/event:dec-1") and not k.startswith(b"dl/")
    } == {
        b"b/acme/phone:1134960000",  # the decision, recorded
        b"s/acme/dec-1",
    }
    # the dead letter holds the phone number: indexed under it, for erasure to find
    assert [k for k in changed if k.startswith(b"dl/")] == [
        keys.dead_letter_index_key("acme", "phone:1134960000", pipeline.dead_keys[0])
    ]
    # The next event is processed as any.
    pipeline.append("touchpoints", b"acme", ERIN)
    pipeline.drain()
    assert len(pipeline.dead) == 1
    assert ["s-9"] in _journeys(pipeline).values()


ERIN = _line(
    "s-9", "form.submitted", "2024-03-09T12:30:00Z", {"email": "erin@example.com"}, form="a"
)


def _identity(pipeline: Pipeline) -> dict[bytes, bytes]:
    """Ingest's whole state (one tenant: one partition)."""
    return dict(pipeline.identity.items(partition_of(b"acme")))


CONFLICT_THEN_MERGE = [
    *SHOP,
    _line("c-3", "form.submitted", "2024-03-09T11:10:00Z", {"customer_ref": "R-1"}, form="a"),
    _line(
        "c-4",
        "form.submitted",
        "2024-03-09T11:20:00Z",
        {"customer_ref": "R-1", "email": "dave@example.com"},
        form="a",
    ),
]
"""Dave's customer holds a conflict on the switchboard, then merges into customer_ref R-1's."""


def test_a_conflict_follows_the_customer_its_customer_merges_into_as_in_the_pure_fold(
    tmp_path: Path,
) -> None:
    limited = _settings({"limits": {"email": 1}})
    pipeline = Pipeline(tmp_path)
    pipeline.settings = limited
    for line in CONFLICT_THEN_MERGE:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    report = check_lines(CONFLICT_THEN_MERGE, limited, NOW)
    pure = {(j.customer_id, f.rule): f.status for j in report.journeys for f in j.flags}
    held = [f for f in pipeline.flags if f.flag.to_document().get("rule") == IDENTITY_CONFLICT]
    # The merging event is in a component over a limit and comes before the holder of the
    # shared value: it settles (as the pure fold does), renaming the conflict as the pure fold
    # names it, flag ids too.
    assert _standing_status(pipeline) == {
        f"{j.customer_id}/{f.flag_id}": f.status for j in report.journeys for f in j.flags
    }
    first = {f.flag_id for f in held[:2]}
    assert [f.change for f in held[:2]] == ["opened"] * 2  # one held link, named on both
    changes = [(f.change, f.customer_id, f.merged_into) for f in held]
    dave, survivor = changes[0][1], changes[-1][1]
    gone = [f for f in pipeline.flags if f.flag_id in first and f.change == "withdrawn"]
    assert {f.customer_id for f in gone} == {f.customer_id for f in held[:2]}
    assert ("opened", survivor, None) in changes[2:]
    assert (survivor, IDENTITY_CONFLICT) in pure
    assert dave not in {customer for customer, _ in pure}  # Dave's customer merged away
    # The decision resolves it where it now is, on both customers and nowhere else.
    pipeline.append("touchpoints", b"acme", BLOCK)
    pipeline.drain()
    resolved = {f.customer_id for f in pipeline.flags if f.change == "resolved"}
    assert resolved == {changes[1][1], survivor}
    assert pipeline.dead == []


# --- unblock and confirmed merge live -----------------------------------------------------

UNBLOCK = _decision("identity.unblocked", "dec-2", "2024-03-09T13:00:00Z")
SPLIT = _decision("identity.split", "dec-3", "2024-03-09T12:00:00Z")
CONFIRM = _decision("identity.merge_confirmed", "dec-4", "2024-03-09T13:00:00Z")


def _pure_flags(lines: list[bytes]) -> dict[str, str]:
    report = check_lines(lines, _settings(), NOW)
    return {f"{j.customer_id}/{f.flag_id}": f.status for j in report.journeys for f in j.flags}


def _standing_status(pipeline: Pipeline) -> dict[str, str]:
    as_status = {"opened": "open", "reopened": "open", "resolved": "resolved"}
    return {k: as_status[v] for k, v in _standing(pipeline).items()}


@pytest.mark.parametrize(("undo", "lift"), [(BLOCK, UNBLOCK), (SPLIT, CONFIRM)])
def test_blocking_then_unblocking_live_returns_exactly_the_previous_journeys(
    tmp_path: Path, undo: bytes, lift: bytes
) -> None:
    pipeline = _pipeline(tmp_path)
    for line in SHOP:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    before = _journeys(pipeline)
    (first,) = [f for f in pipeline.flags if f.change == "opened"]
    for decision in (undo, lift):
        pipeline.append("touchpoints", b"acme", decision)
        pipeline.drain()
    assert _journeys(pipeline) == before == _offline(SHOP)
    assert _standing_status(pipeline) == _pure_flags(SHOP)
    opened = [f for f in pipeline.flags if f.change == "opened"]
    assert [(f.customer_id, f.flag_id) for f in opened] == [(first.customer_id, first.flag_id)] * 2
    # Opened again after the split withdrew it: a change id of its own, or a consumer dropping
    # repeats by change id would keep it withdrawn.
    assert opened[0].change_id != opened[1].change_id
    assert pipeline.dead == []
    # And blocked once more, it splits again and is withdrawn again, with another change id.
    again = orjson.loads(_decision("identity.blocked", "dec-8", "2024-03-09T14:00:00Z"))
    pipeline.append("touchpoints", b"acme", orjson.dumps(again))
    pipeline.drain()
    assert sorted(_journeys(pipeline).values()) == [["s-1"], ["s-2"]]
    withdrawn = [f for f in pipeline.flags if f.change == "withdrawn"]
    assert len({f.change_id for f in withdrawn}) == len(withdrawn) == 2
    assert _standing_status(pipeline) == {}


LIFTED = [*SHOP, CAROL_AGAIN, SWITCHBOARD_ONLY, BLOCK, UNBLOCK]


@pytest.mark.parametrize("seed", range(8))
def test_arrival_order_never_changes_customers_or_flags_with_a_block_and_an_unblock(
    tmp_path: Path, seed: int
) -> None:
    """The unblock is later in time than the block: whichever arrives first, it wins."""
    lines = list(LIFTED)
    random.Random(seed).shuffle(lines)
    pipeline = _pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert _journeys(pipeline) == _offline(LIFTED)
    assert _standing_status(pipeline) == _pure_flags(LIFTED)
    assert pipeline.dead == []


# --- a moved event and the pointer of the customer it reaches -----------------------------


def _moved_to_dave(
    tmp_path: Path, generation_seen: str | None
) -> tuple[list[str], list[OutRecord]]:
    """Dave's stored events, and the event records passed on, after a moved event reached him."""
    store = LocalStore(tmp_path / "journeys")
    state = BatchState(store, 0)
    dave = ("acme", "cus_dave")
    state.put(keys.forward_key(dave), b"cus_carol")
    if generation_seen is not None:
        state.put(keys.flags_key(dave), orjson.dumps({GENERATION: generation_seen}))
    store.write(0, state.changes)
    event = decode_event(SHOP[1])
    headers = (
        (HEADER_KIND, KIND_MOVED),
        (HEADER_CUSTOMER_ID, b"cus_dave"),
        (HEADER_SPLIT_FROM, b"cus_carol/g1"),
    )
    record = InRecord("events", 0, 0, b"acme/cus_dave", encode_event(event), 0, headers)
    state = BatchState(store, 0)
    outs = process_events(state, JourneyCache(), [record], NOW, _settings())
    store.write(0, state.changes)
    stored = read_journey(lambda key: store.get(0, key), dave)
    store.close()
    held = [] if stored is None else [e.event_id for e in stored.events]
    return held, [o for o in outs if o.destination == "events"]


def test_a_moved_event_ahead_of_ingest_s_word_stays_with_the_customer_it_was_dealt_to(
    tmp_path: Path,
) -> None:
    """Dave still points at Carol (from before the split): the event is his, not passed back."""
    assert _moved_to_dave(tmp_path, None) == (["s-2"], [])


def test_a_moved_event_follows_a_merge_made_after_the_split(tmp_path: Path) -> None:
    """Dave saw the split (its generation) and merged into Carol since: the event follows."""
    held, (passed,) = _moved_to_dave(tmp_path, "g1")
    assert held == []
    assert dict(passed.headers)[HEADER_CUSTOMER_ID] == b"cus_carol"


def test_batch_state_items_overlay_the_batch_s_writes_on_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    state = BatchState(store, 1)
    for name in (b"h/acme/cus_1/a", b"h/acme/cus_1/b", b"h/acme/cus_10/a"):
        state.put(name, name)
    store.write(1, state.changes)
    state = BatchState(store, 1)
    state.delete(b"h/acme/cus_1/a")
    state.put(b"h/acme/cus_1/c", b"new")
    state.put(b"h/acme/cus_10/b", b"other customer")
    assert state.items(b"h/acme/cus_1/") == [
        (b"h/acme/cus_1/b", b"h/acme/cus_1/b"),
        (b"h/acme/cus_1/c", b"new"),
    ]
    assert [k for k, _ in state.items(b"h/acme/cus_1")] == [
        b"h/acme/cus_1/b",
        b"h/acme/cus_1/c",
        b"h/acme/cus_10/a",
        b"h/acme/cus_10/b",
    ]
    store.close()


@pytest.mark.parametrize("seed", range(4))
def test_a_split_and_a_merge_back_survive_workers_dying_after_sending(
    tmp_path: Path, seed: int
) -> None:
    """Journey batches are sent, then their worker dies and reads them again: same result."""
    lines = list(LIFTED)
    random.Random(seed).shuffle(lines)
    pipeline = Pipeline(tmp_path, batch_size=2, crash_rate=0.5, seed=seed)
    pipeline.settings = _settings()
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert pipeline.crashes > 0
    assert _journeys(pipeline) == _offline(LIFTED)
    assert _standing_status(pipeline) == _pure_flags(LIFTED)
    assert pipeline.dead == []


@pytest.mark.parametrize("batch_size", [1, 3, 5])
def test_an_event_still_forwarded_by_a_merge_from_before_the_split_is_dealt_out(
    tmp_path: Path, batch_size: int
) -> None:
    """The switchboard-only customer merged into Carol's just before the block: its event is
    passed on to Carol after her split, and goes where the split would have put it (alone)."""
    lines = [SWITCHBOARD_ONLY, CAROL_AGAIN, SHOP[1], SHOP[0], BLOCK]
    pipeline = _pipeline(tmp_path)
    pipeline.batch_size = batch_size
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert _journeys(pipeline) == _offline(lines)
    assert ["s-4"] in _journeys(pipeline).values()
    assert _standing_status(pipeline) == _pure_flags(lines)


def test_a_regroup_record_that_cannot_be_read_goes_to_dead_letters_and_the_stage_goes_on(
    tmp_path: Path,
) -> None:
    pipeline = _pipeline(tmp_path)
    pipeline.append(
        "events",
        b"acme/cus_x",
        b'{"tenant": "acme", "customer": 5}',
        ((HEADER_KIND, KIND_REGROUP), (HEADER_CUSTOMER_ID, b"cus_x")),
    )
    for line in SHOP:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    (dead,) = pipeline.dead
    assert str(dead["reason"]).startswith("could not fold this record: ValidationError")
    assert sorted(_journeys(pipeline).values()) == [["s-1", "s-2"]]


def test_an_unblock_merges_back_the_events_the_block_left_alone(tmp_path: Path) -> None:
    """The callback form gave only the switchboard: the block left it alone, the unblock
    brings it back to the customer that holds the switchboard again."""
    lines = [*SHOP, SWITCHBOARD_ONLY, CAROL_AGAIN]
    pipeline = _pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    before = _journeys(pipeline)
    pipeline.append("touchpoints", b"acme", BLOCK)
    pipeline.drain()
    assert ["s-4"] in _journeys(pipeline).values()
    pipeline.append("touchpoints", b"acme", UNBLOCK)
    pipeline.drain()
    assert _journeys(pipeline) == before == _offline(lines)
    assert _standing_status(pipeline) == _pure_flags(lines)
    assert pipeline.dead == []
    # the journey lists the merge back with the decision that applied
    decided = {m.decision for merges in merge_histories(pipeline).values() for m in merges}
    assert "unblocked by r.khan on 2024-03-09: the shop's switchboard" in decided
    # through the value as the journey shows it (E.164), not the decision's national number
    backs = {
        m.identifier
        for merges in merge_histories(pipeline).values()
        for m in merges
        if m.decision is not None and m.decision.startswith("unblocked")
    }
    assert backs == {"phone +441134960000"}


def _sent(pipeline: Pipeline, kind: bytes) -> list[InRecord]:
    """The records of one kind on the events topic, every partition."""
    return [r for log in pipeline.events.values() for r in log if r.header(HEADER_KIND) == kind]


def test_the_merges_of_a_rejoin_carry_ingest_s_settle_number(tmp_path: Path) -> None:
    """The events the block left alone merge back as a numbered step, as ingest's merges do:
    the rejoin record, its merge and the events passed on carry the number of the split."""
    lines = [*SHOP, SWITCHBOARD_ONLY, CAROL_AGAIN]
    pipeline = _pipeline(tmp_path)
    for line in [*lines, BLOCK, UNBLOCK]:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    (number,) = {
        RegroupRecord.from_bytes(r.value or b"").sequence for r in _sent(pipeline, KIND_REGROUP)
    }
    assert number is not None
    rejoins = [RejoinRecord.from_bytes(r.value or b"") for r in _sent(pipeline, KIND_REJOIN)]
    assert rejoins
    assert {r.settled for r in rejoins} == {number}
    alone = customer_id_for("acme", ["event:s-4"])
    merges = [MergeRecord.from_bytes(r.value or b"") for r in _sent(pipeline, KIND_MERGE)]
    (back,) = [m for m in merges if m.from_ == alone]
    assert back.settled == number
    (passed,) = [
        r
        for r in _sent(pipeline, KIND_EVENT)
        if r.header(HEADER_FORWARDED) is not None and decode_event(r.value or b"").event_id == "s-4"
    ]
    assert passed.header(HEADER_SETTLED) == str(number).encode()
    assert _journeys(pipeline) == _offline([*lines, BLOCK, UNBLOCK])
    assert pipeline.dead == []


def test_an_event_moved_late_to_a_customer_a_rejoin_merged_follows_the_merge(
    tmp_path: Path,
) -> None:
    """Carol's split (ingest's settle 3) left the switchboard's event alone; the unblock (as of
    settle 5) merged it into Dave. An event moved to the lone customer by settle 3 that arrives
    after that takes the merge as its next step: it goes on to Dave as of settle 5."""
    store = LocalStore(tmp_path / "journeys")
    carol, dave = ("acme", "cus_carol"), "cus_dave"
    alone = customer_id_for("acme", ["event:s-4"])
    phone = "phone:+44:1134960000"
    split = RegroupRecord(
        tenant="acme",
        customer=carol[1],
        parts={carol[1]: ("email:carol@example.com",)},
        reason="blocked",
        decision_id="dec-1",
        dropped=(phone,),
        sequence=3,
    )
    state = BatchState(store, 0)
    state.put(keys.split_key(carol), split_document(split, {alone: [phone]}))
    store.write(0, state.changes)

    def process(*records: OutRecord) -> list[OutRecord]:
        state = BatchState(store, 0)
        ins = [
            InRecord("events", 0, n, r.key, r.value, 0, r.headers) for n, r in enumerate(records)
        ]
        outs = process_events(state, JourneyCache(), ins, NOW, _settings())
        store.write(0, state.changes)
        return [o for o in outs if o.destination == "events"]

    rejoin = RejoinRecord(
        tenant="acme", customer=carol[1], lifted=(decided_form(phone),), into=dave, settled=5
    )
    (merge,) = process(
        OutRecord("events", b"acme/cus_carol", rejoin.to_bytes(), ((HEADER_KIND, KIND_REJOIN),))
    )
    assert MergeRecord.from_bytes(merge.value or b"").settled == 5
    process(merge)
    moved = (
        (HEADER_KIND, KIND_MOVED),
        (HEADER_CUSTOMER_ID, alone.encode()),
        (HEADER_SPLIT_FROM, b"cus_carol/g1"),
        (HEADER_SETTLED, b"3"),
    )
    late = OutRecord("events", f"acme/{alone}".encode(), SWITCHBOARD_EVENT, moved)
    (on,) = process(late)
    assert dict(on.headers)[HEADER_CUSTOMER_ID] == dave.encode()
    assert dict(on.headers)[HEADER_SETTLED] == b"5"  # the merge's word: Dave's steps since apply
    store.close()


SWITCHBOARD_EVENT = encode_event(decode_event(SWITCHBOARD_ONLY))


BLOCKED_AGAIN = _decision("identity.blocked", "dec-7", "2024-03-09T14:00:00Z")
DECIDED = {
    "block, unblock, split, confirm": [
        *SHOP,
        CAROL_AGAIN,
        SWITCHBOARD_ONLY,
        BLOCK,
        UNBLOCK,
        SPLIT,
        CONFIRM,
    ],
    "block, unblock, block again": [
        *SHOP,
        CAROL_AGAIN,
        SWITCHBOARD_ONLY,
        BLOCK,
        UNBLOCK,
        BLOCKED_AGAIN,
    ],
    "split, confirm, block": [*SHOP, SWITCHBOARD_ONLY, SPLIT, CONFIRM, BLOCKED_AGAIN, DAVE_AGAIN],
}


@pytest.mark.parametrize("name", sorted(DECIDED))
@pytest.mark.parametrize("seed", range(6))
def test_any_arrival_order_batch_cut_and_crash_give_the_pure_fold_with_decisions(
    tmp_path: Path, name: str, seed: int
) -> None:
    """Decisions in the log, lines shuffled, batches cut anywhere, workers dying after sending:
    the live customers, ids and flags equal `journeys check` (decisions in time order)."""
    lines = list(DECIDED[name])
    rng = random.Random(seed)
    rng.shuffle(lines)
    pipeline = Pipeline(tmp_path, batch_size=rng.randint(1, 4), crash_rate=0.25, seed=seed)
    pipeline.settings = _settings()
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert _journeys(pipeline) == _offline(DECIDED[name])
    assert _standing_status(pipeline) == _pure_flags(DECIDED[name])
    assert pipeline.dead == []


# --- merges after a split, and merges a person's confirmation let ---------------------------

MERGED_THEN_SPLIT = [
    _line(
        "m-1",
        "form.submitted",
        "2024-03-09T09:00:00Z",
        {"email": "carol@example.com", "phone": "0113 496 0000"},
        form="a",
    ),
    _line("m-2", "form.submitted", "2024-03-09T09:10:00Z", {"plate": "AB12 CDE"}, form="a"),
    _line(
        "m-3",
        "form.submitted",
        "2024-03-09T09:20:00Z",
        {"plate": "AB12 CDE", "email": "carol@example.com"},
        form="a",
    ),
    _line("m-4", "form.submitted", "2024-03-09T09:30:00Z", {"email": "dave@example.com"}, form="a"),
    _line(
        "m-5",
        "form.submitted",
        "2024-03-09T09:40:00Z",
        {"email": "dave@example.com", "phone": "0113 496 0000"},
        form="a",
    ),
]
"""Carol's customer merges in the plate's (m-3), then Dave's through the switchboard (m-5)."""


def _merges(pipeline: Pipeline) -> dict[str, list[tuple[str, str, str, str | None]]]:
    return {
        ref[1]: [(m.event_id, m.identifier, m.from_customer, m.decision) for m in merges]
        for ref, merges in merge_histories(pipeline).items()
        if merges
    }


def _pure_merges(lines: list[bytes]) -> dict[str, list[tuple[str, str, str, str | None]]]:
    report = check_lines(lines, _settings(), NOW)
    return {
        j.customer_id: [(m.event_id, m.identifier, m.from_customer, m.decision) for m in j.merges]
        for j in report.journeys
        if j.merges
    }


def test_a_split_keeps_the_merges_that_still_hold_as_the_pure_fold_lists_them(
    tmp_path: Path,
) -> None:
    pipeline = _pipeline(tmp_path)
    for line in MERGED_THEN_SPLIT:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    (before,) = _merges(pipeline).values()
    assert [m[0] for m in before] == ["m-3", "m-5"]
    pipeline.append("touchpoints", b"acme", BLOCK)
    pipeline.drain()
    after = _merges(pipeline)
    assert after == _pure_merges([*MERGED_THEN_SPLIT, BLOCK])
    assert [m[0] for ms in after.values() for m in ms] == ["m-3"]  # Dave's merge is undone
    assert pipeline.dead == []


CONFIRMED_EARLY = _decision("identity.merge_confirmed", "dec-5", "2024-03-09T09:35:00Z")


def test_a_merge_through_a_value_a_person_confirmed_lists_the_decision_live_and_offline(
    tmp_path: Path,
) -> None:
    lines = [*MERGED_THEN_SPLIT[:4], CONFIRMED_EARLY, MERGED_THEN_SPLIT[4]]
    pipeline = _pipeline(tmp_path)
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    live = _merges(pipeline)
    assert live == _pure_merges(lines)
    (merges,) = live.values()
    assert [(m[0], m[3]) for m in merges] == [
        ("m-3", None),
        ("m-5", "merge confirmed by r.khan on 2024-03-09: the shop's switchboard"),
    ]


def test_a_conflict_follows_its_customer_through_a_merge_back(tmp_path: Path) -> None:
    """Dave's customer, split off by the block, holds a conflict on a plate; the unblock merges
    it back into Carol's, and the conflict goes with it, where the pure fold has it."""
    plates = _settings({"limits": {"plate": 1}})
    after_block = [
        _line(
            "p-3",
            "form.submitted",
            "2024-03-09T12:10:00Z",
            {"email": "dave@example.com", "plate": "AB12 CDE"},
            form="a",
        ),
        _line("p-4", "form.submitted", "2024-03-09T12:20:00Z", {"plate": "XY34 ZZZ"}, form="a"),
        _line(
            "p-5",
            "form.submitted",
            "2024-03-09T12:30:00Z",
            {"email": "dave@example.com", "plate": "XY34 ZZZ"},
            form="a",
        ),
    ]
    pipeline = Pipeline(tmp_path)
    pipeline.settings = plates
    for line in [*SHOP, BLOCK, *after_block]:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    opened = [f for f in pipeline.flags if f.flag.to_document().get("rule") == IDENTITY_CONFLICT]
    dave = {f.customer_id for f in opened}
    pipeline.append("touchpoints", b"acme", UNBLOCK)
    pipeline.drain()
    lines = [*SHOP, BLOCK, *after_block, UNBLOCK]
    report = check_lines(lines, plates, NOW)
    pure = {j.customer_id for j in report.journeys for f in j.flags if f.rule == IDENTITY_CONFLICT}
    held = {f.flag_id for f in opened}
    standing = {key.split("/")[0] for key in _standing(pipeline) if key.split("/")[1] in held}
    assert standing == pure
    assert standing != dave  # one of them merged away and its flag followed
    assert pipeline.dead == []


def test_a_block_is_found_whether_stored_before_the_batch_or_written_in_it(
    tmp_path: Path,
) -> None:
    from streams.stages.identity.regrouping import current_reason

    store = LocalStore(tmp_path / "state")
    state = BatchState(store, 1)
    assert current_reason(state, "acme", "email:a@b.co") is None
    assert not state.stored_any(keys.blocked_prefix("acme"))
    state.put(keys.blocked_value_key("acme", "email:a@b.co"), b"shared inbox")
    assert current_reason(state, "acme", "email:a@b.co") == "shared inbox"  # this batch's write
    assert current_reason(state, "acme", "email:c@d.co") is None
    store.write(1, state.changes)
    state = BatchState(store, 1)
    assert state.stored_any(keys.blocked_prefix("acme"))
    assert not state.stored_any(keys.blocked_prefix("acm"))  # another tenant's prefix
    assert current_reason(state, "acme", "email:a@b.co") == "shared inbox"  # stored before
    assert current_reason(state, "acme", "email:c@d.co") is None
    assert current_reason(BatchState(store, 2), "acme", "email:a@b.co") is None  # partition
    store.close()


def test_batch_state_reads_see_the_batch_s_writes_after_a_read_was_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    state = BatchState(store, 1)
    state.put(b"i/acme/email:a", b"cus_1")
    state.put(b"j/acme/cus_1", b"x" * 10_000)
    store.write(1, state.changes)
    state = BatchState(store, 1)
    assert state.get(b"i/acme/email:a") == b"cus_1"
    assert state.get(b"i/acme/email:b") is None
    assert state.get(b"j/acme/cus_1") == b"x" * 10_000
    state.put(b"i/acme/email:b", b"cus_2")
    state.delete(b"i/acme/email:a")
    assert state.get(b"i/acme/email:a") is None
    assert state.get(b"i/acme/email:b") == b"cus_2"
    store.write(1, state.changes)
    state = BatchState(store, 1)  # a new batch reads the store again
    assert state.get(b"i/acme/email:a") is None
    assert state.get(b"i/acme/email:b") == b"cus_2"
    store.close()


# --- a conflict follows a person's split ----------------------------------------------------

SPLIT_UNDER_CONFLICT = [
    _line(
        "s-1",
        "form.submitted",
        "2024-03-09T10:00:00Z",
        {"customer_ref": "R-1", "order_id": "O-1"},
        form="a",
    ),
    _line(
        "s-2",
        "form.submitted",
        "2024-03-09T10:10:00Z",
        {"email": "carol@example.com", "phone": "+44 7700 900123", "order_id": "O-1"},
        form="a",
    ),
    _line(
        "s-3",
        "form.submitted",
        "2024-03-09T10:20:00Z",
        {"email": "bob@example.com", "phone": "+44 7700 900123"},
        form="a",
    ),
]
"""Carol's order joins her to R-1's customer; Bob's e-mail is held from Carol's phone (one
e-mail a customer): the conflict names R-1's customer. A block of the order splits Carol off."""

BLOCK_ORDER = orjson.dumps(
    {
        "event_id": "dec-o",
        "type": "identity.blocked",
        "occurred_at": "2024-03-09T12:00:00Z",
        "tenant": "acme",
        "source": {"system": "journeys-cli", "actor": "r.khan"},
        "customer": {"order_id": "O-1"},
        "payload": {"reason": "a shared order number", "decided_by": "r.khan"},
    }
)


@pytest.mark.parametrize("each", [True, False])
def test_a_conflict_follows_the_part_holding_its_value_through_a_person_s_split(
    tmp_path: Path, each: bool
) -> None:
    limited = _settings({"limits": {"email": 1}})
    pipeline = Pipeline(tmp_path)
    pipeline.settings = limited
    for line in SPLIT_UNDER_CONFLICT:
        pipeline.append("touchpoints", b"acme", line)
        if each:
            pipeline.drain()
    pipeline.drain()
    opened = {f.customer_id for f in pipeline.flags if f.change == "opened"}
    assert len(opened) == 2  # R-1's customer (with Carol) and Bob's
    pipeline.append("touchpoints", b"acme", BLOCK_ORDER)
    pipeline.drain()
    lines = [*SPLIT_UNDER_CONFLICT, BLOCK_ORDER]
    report = check_lines(lines, limited, NOW)
    pure = {
        f"{j.customer_id}/{f.flag_id}": f.status
        for j in report.journeys
        for f in j.flags
        if f.rule == IDENTITY_CONFLICT
    }
    assert len(pure) == 2  # Carol's customer and Bob's, no longer R-1's
    live = {ref: s for ref, s in _standing_status(pipeline).items() if _is_conflict(pipeline, ref)}
    assert live == pure
    assert pipeline.dead == []


def _is_conflict(pipeline: Pipeline, ref: str) -> bool:
    rules = {f.flag_id: f.flag.to_document().get("rule") for f in pipeline.flags}
    return rules.get(ref.split("/")[1]) == IDENTITY_CONFLICT


def test_a_confirmed_merge_joins_the_customers_a_limit_held_apart_live_as_offline(
    tmp_path: Path,
) -> None:
    """Carol and Dave share the switchboard past an e-mail limit of one: a person confirms it
    is one household, and the live ledger merges them at once, as the pure fold does (before,
    live, only a later event carrying the value merged them)."""
    limited = _settings({"limits": {"email": 1}})
    confirmed = _decision("identity.merge_confirmed", "dec-9", "2024-03-09T12:00:00Z")
    pipeline = Pipeline(tmp_path)
    pipeline.settings = limited
    for line in [*SHOP, confirmed]:
        pipeline.append("touchpoints", b"acme", line)
        pipeline.drain()
    pure = check_lines([*SHOP, confirmed], limited, NOW)
    assert [[e.event_id for e in j.events] for j in pure.journeys] == [["s-1", "s-2"]]
    live = _journeys(pipeline)
    assert live == {j.customer_id: [e.event_id for e in j.events] for j in pure.journeys}
    assert len(_graph(pipeline)) == 1
    assert pipeline.dead == []
