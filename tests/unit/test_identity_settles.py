"""Settles that follow each other quickly, live: the journeys still equal the pure fold's.

Ingest settles customers past a limit and the journey stage deals their events out as `moved`
records. When ingest runs ahead (it processes every batch of a dense log before the journey
stage reads any of its records), a customer that events were moved to may have been settled
again before they arrive: they must still end with the customer the pure fold gives them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from journeys.cli.check import check_lines
from projections.identity import IDENTITY_CONFLICT, customer_id_for
from projections.ledger import fold
from projections.regroup.steps import MAX_STEPS, Step, follow, stepped
from projections.settings import FoldSettings
from schemas.codec import decode_event
from schemas.events import Event
from tests.unit.test_identity_limits import _customers, _ingest_graph, _live, line
from tests.unit.test_stages import NOW, Pipeline

REFS = tuple(f"ACME-{n}" for n in range(1, 7))
EMAILS = tuple(f"u{n}@shop.net" for n in range(10))
PHONES = tuple(f"+44 7700 900{n:03d}" for n in range(100, 108))


def dense_lines(seed: int = 0, count: int = 40) -> list[bytes]:
    """Customers sharing references, e-mails and phones past the default limits many ways."""
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        customer: dict[str, str] = {}
        for kind, pool, share in (
            ("customer_ref", REFS, 0.4),
            ("email", EMAILS, 0.8),
            ("phone", PHONES, 0.7),
        ):
            if rng.random() < share:
                customer[kind] = rng.choice(pool)
        if len(customer) < 2:
            customer.update(email=rng.choice(EMAILS), phone=rng.choice(PHONES))
        lines.append(line(f"e-{n:02d}", "form.submitted", 5 * n, customer))
    return lines


def _conflicts(pipeline: Pipeline) -> set[tuple[str, str]]:
    """The live IDENTITY_CONFLICT flags standing (customer, flag id): last change not a
    withdrawal."""
    rules = {c.flag_id: c.flag.to_document().get("rule") for c in pipeline.flags}
    last = {(c.customer_id, c.flag_id): c.change for c in pipeline.flags}
    return {
        ref
        for ref, change in last.items()
        if change != "withdrawn" and rules[ref[1]] == IDENTITY_CONFLICT
    }


def _pure_conflicts(lines: list[bytes]) -> set[tuple[str, str]]:
    report = check_lines(lines, FoldSettings(), NOW)
    return {
        (j.customer_id, f.flag_id)
        for j in report.journeys
        for f in j.flags
        if f.rule == IDENTITY_CONFLICT
    }


def _pure(lines: list[bytes]) -> dict[tuple[str, str], list[str]]:
    report = check_lines(lines, FoldSettings(), NOW)
    return {(j.tenant, j.customer_id): [e.event_id for e in j.events] for j in report.journeys}


@pytest.mark.parametrize("seed", range(30))
def test_settles_ahead_of_the_journey_stage_still_give_the_pure_fold_s_journeys(
    tmp_path: Path, seed: int
) -> None:
    lines = dense_lines()
    random.Random(seed).shuffle(lines)
    pipeline = _live(tmp_path, lines)  # ingest processes every batch before any journey batch
    pure = _pure(lines)
    assert len(pure) > 3
    assert _customers(pipeline) == pure
    assert pipeline.dead == []


@pytest.mark.parametrize("seed", [*range(10), 18, 28])
def test_a_settle_renames_the_conflicts_of_the_customers_it_settles_as_the_pure_fold(
    tmp_path: Path, seed: int
) -> None:
    """A settle that moves a shared value withdraws the conflicts its customers held that it no
    longer holds, and opens those it does: the customers the pure fold names. (Shuffles 18 and
    28: a link held from one customer only, later given to another by an ordinary event, which
    settles because its key is kept, held, in the first one's edge.)"""
    lines = dense_lines()
    random.Random(seed).shuffle(lines)
    pipeline = _live(tmp_path, lines)
    held = _pure_conflicts(lines)
    assert held
    assert _conflicts(pipeline) == held


@pytest.mark.parametrize(("log", "seed"), [(1, 8), (1, 19), (2, 1), (2, 15), (2, 26), (4, 11)])
def test_events_passed_on_by_merges_follow_the_settles_since(
    tmp_path: Path, log: int, seed: int
) -> None:
    """Orders where an event reached a customer by a chain of merges and settles (its first
    customer merged, the one it merged into was settled, and so on) before any arrived."""
    lines = dense_lines(log)
    random.Random(seed).shuffle(lines)
    pipeline = _live(tmp_path, lines)
    graph = fold([decode_event(raw) for raw in lines]).identities["acme"].member_sets
    assert _ingest_graph(pipeline) == graph
    assert _customers(pipeline) == _pure(lines)
    assert _conflicts(pipeline) == _pure_conflicts(lines)
    assert pipeline.dead == []


EMAIL = "email:u8@shop.net"
PHONE = "phone:+44:7700900101"


def _event() -> Event:
    return decode_event(
        line("e-1", "form.submitted", 0, {"email": "u8@shop.net", "phone": "+44 7700 900101"})
    )


def test_a_late_event_takes_the_first_step_after_the_word_it_came_by() -> None:
    event = _event()
    split = Step(3, {"P": frozenset({EMAIL}), "X": frozenset({PHONE})})
    assert follow("acme", event, "X", [split], 2, "GB") == ("P", 3)  # by its e-mail, not phone
    assert follow("acme", event, "X", [split], 3, "GB") is None  # dealt by that settle already
    merge = Step(4, into="Y")
    assert follow("acme", event, "X", [merge], 4, "GB") == ("Y", 4)  # merged after settle 4
    assert follow("acme", event, "X", [merge], 5, "GB") is None
    # It stays through a split that keeps it here, then follows the merge after it.
    kept = Step(3, {"X": frozenset({EMAIL, PHONE})})
    assert follow("acme", event, "X", [kept, merge], 2, "GB") == ("Y", 4)
    # A split that dropped every key it has leaves it alone, as a split of its journey does.
    dropped = Step(3, {"P": frozenset({"email:zz@shop.net"})}, frozenset({EMAIL, PHONE}))
    alone = customer_id_for("acme", ["event:e-1"])
    assert follow("acme", event, "X", [dropped], 1, "GB") == (alone, 3)


def test_a_customer_keeps_its_latest_steps_only() -> None:
    steps: list[Step] = []
    for number in range(1, MAX_STEPS + 5):
        steps = stepped(steps, Step(number, into="Y"))
    assert len(steps) == MAX_STEPS
    assert steps[0].number == 5
    assert [Step.from_document(s.to_document()) for s in steps] == steps


@pytest.mark.parametrize("log", range(6))
@pytest.mark.parametrize("seed", range(10))
def test_a_settle_reaches_the_customers_keeping_a_held_value_s_edge(
    tmp_path: Path, log: int, seed: int
) -> None:
    """A held link's value stays in the edge of the customer whose event carried it: a later
    settle of the customer holding the value reaches that customer too (`he/` markers), so
    ingest's graph, and the journeys, equal the pure fold's. An event linking within the
    limits in a component over one settles when the pure fold does (`Settlement.add` cannot
    take its edge alone): 60 shuffles of six dense logs (3 differed when live settled only
    on an event whose own link pushed a limit)."""
    lines = dense_lines(log)
    random.Random(seed).shuffle(lines)
    pipeline = _live(tmp_path, lines)
    graph = fold([decode_event(raw) for raw in lines]).identities["acme"].member_sets
    assert _ingest_graph(pipeline) == graph
    assert _customers(pipeline) == _pure(lines)
    assert _conflicts(pipeline) == _pure_conflicts(lines)
    assert pipeline.dead == []
