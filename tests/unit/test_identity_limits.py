"""Identity limits on by default, independent of arrival order (pure fold, `fold_all`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys.cli.check import check_lines
from projections.identity import (
    DEFAULT_LIMITS,
    IDENTITY_CONFLICT,
    IdentityPolicy,
    customer_id_for,
    identity_number,
)
from projections.ledger import Ledger, fold, fold_all
from projections.regroup.limits import settle
from projections.settings import FoldSettings
from schemas.codec import decode_event
from schemas.events import Event
from streams.stages.identity.members import stored_members
from tests.unit.test_identity_rules import SHOP, _settings
from tests.unit.test_stages import NOW, PARTITIONS, Pipeline

T0 = datetime(2024, 3, 11, 8, 0, tzinfo=UTC)

REFS = ("ACME-1", "ACME-2", "ACME-3")
EMAILS = ("ann@shop.net", "bea@shop.net", "cat@shop.net", "dee@shop.net", "eve@shop.net")
PHONES = ("+44 113 496 0000", "+44 7700 900123", "+44 7700 900456")
PLATES = ("AB12CDE", "YD19KXR")
POOLS = {"customer_ref": REFS, "email": EMAILS, "phone": PHONES, "plate": PLATES}
DECISIONS = ("identity.blocked", "identity.unblocked", "identity.merge_confirmed", "identity.split")

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def line(event_id: str, type_: str, minutes: int, customer: dict[str, str]) -> bytes:
    """One touchpoint (or decision) of tenant acme as JSON."""
    decision = type_.startswith("identity.")
    payload: dict[str, Any] = (
        {"reason": "checked", "decided_by": "r.khan"} if decision else {"form": "contact"}
    )
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": type_,
            "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            "tenant": "acme",
            "source": {"system": "journeys-cli" if decision else "shop"},
            "customer": customer,
            "payload": payload,
        }
    )


@st.composite
def logs(draw: st.DrawFn, decisions: bool = True) -> list[Event]:
    """Events drawn from small pools, so that customers share values and limits are hit."""
    events = []
    for number in range(draw(st.integers(1, 14))):
        kinds = draw(st.sets(st.sampled_from(sorted(POOLS)), min_size=1, max_size=3))
        customer = {kind: draw(st.sampled_from(POOLS[kind])) for kind in sorted(kinds)}
        minutes = draw(st.integers(0, 600))
        events.append(line(f"e-{number:02d}", "form.submitted", minutes, customer))
    if decisions:
        for number in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(("email", "phone")))
            customer = {kind: draw(st.sampled_from(POOLS[kind]))}
            type_ = draw(st.sampled_from(DECISIONS))
            events.append(line(f"d-{number}", type_, draw(st.integers(0, 600)), customer))
    return [decode_event(raw) for raw in events]


def customers(ledger: Ledger) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]]:
    """Each customer's id, its events, and its open IDENTITY_CONFLICT flags (id, message)."""
    return [
        (
            j.customer_id,
            tuple(e.event_id for e in j.events),
            tuple(
                (f.flag_id, f.message + str(f.event_ids))
                for f in ledger.conflicts_of(j.tenant, j.customer_id)
            ),
        )
        for j in ledger
    ]


@PROPERTY
@given(events=logs(), data=st.data())
def test_with_default_limits_and_decisions_arrival_order_does_not_matter(
    events: list[Event], data: st.DataObject
) -> None:
    expected = customers(fold(events))
    arrival = data.draw(st.permutations(events), label="arrival order")
    assert customers(fold(arrival)) == expected
    shape = [(j.customer_id, tuple(e.event_id for e in j.events)) for j in fold_all(arrival)]
    assert shape == [(c, ids) for c, ids, _ in expected]


@PROPERTY
@given(events=logs(decisions=False))
def test_no_customer_holds_more_than_the_default_limits(events: list[Event]) -> None:
    ledger = fold(events)
    for customer, members in ledger.identities["acme"].member_sets.items():
        assert customer == customer_id_for("acme", members)  # ids from identifiers alone
        for kind, limit in DEFAULT_LIMITS.items():
            numbers = {identity_number(key)[1] for key in members if key.startswith(kind + ":")}
            assert len(numbers) <= limit, (kind, sorted(members))
    for journey in ledger:
        refs = {e.customer.customer_ref for e in journey.events if e.customer.customer_ref}
        assert len(refs) <= 1


def test_the_first_value_in_the_canonical_order_keeps_a_shared_one() -> None:
    carol = frozenset({"email:carol@shop.net", "phone:+44:1134960000"})
    dave = frozenset({"email:dave@shop.net", "phone:+44:1134960000"})
    policy = IdentityPolicy(limits={"email": 1})
    for edges in ([carol, dave], [dave, carol]):
        settled = settle("acme", edges, policy)
        assert sorted(map(sorted, settled.parts.values())) == [
            ["email:carol@shop.net", "phone:+44:1134960000"],
            ["email:dave@shop.net"],
        ]
        (held,) = settled.held
        assert held.key == "phone:+44:1134960000"
        assert held.conflict().customers == tuple(sorted(settled.parts))


def test_default_limits_hold_two_references_apart_and_can_be_switched_off() -> None:
    events = [
        decode_event(
            line("a", "form.submitted", 0, {"customer_ref": "ACME-1", "plate": "AB12CDE"})
        ),
        decode_event(
            line("b", "form.submitted", 5, {"customer_ref": "ACME-2", "plate": "AB12CDE"})
        ),
    ]
    assert DEFAULT_LIMITS["customer_ref"] == 1
    assert len(list(fold(events))) == 2
    unlimited = FoldSettings(default_identity=IdentityPolicy(limits={}))
    assert len(list(fold(events, unlimited))) == 1


# --- live: the stages settle as the pure fold does --------------------------------------------


def _shared_phone_lines() -> list[bytes]:
    """Customers sharing a switchboard phone and cars, past the default limits several ways."""
    people = [
        {"customer_ref": "ACME-3", "email": "zed@shop.net", "phone": "+44 113 496 0000"},
        {"customer_ref": "ACME-1", "phone": "+44 113 496 0000", "plate": "AB12CDE"},
        {"customer_ref": "ACME-2", "plate": "AB12CDE"},
        {"phone": "+44 113 496 0000", "plate": "YD19KXR"},
        {"email": "ann@shop.net", "plate": "YD19KXR"},
        {"email": "bea@shop.net", "phone": "+44 7700 900123"},
        {"email": "cat@shop.net", "phone": "+44 7700 900123"},
        {"email": "dee@shop.net", "phone": "+44 7700 900123"},
        {"email": "eve@shop.net", "phone": "+44 7700 900123"},
        {"customer_ref": "ACME-2", "email": "ann@shop.net"},
    ]
    lines = [line(f"e-{n:02d}", "form.submitted", 10 * n, c) for n, c in enumerate(people)]
    lines.append(line("d-1", "identity.merge_confirmed", 500, {"phone": "+44 7700 900456"}))
    lines.append(
        line("e-10", "form.submitted", 510, {"email": "ann@shop.net", "phone": "+44 7700 900456"})
    )
    lines.append(
        line("e-11", "form.submitted", 520, {"email": "bea@shop.net", "phone": "+44 7700 900456"})
    )
    return lines


def _live(tmp_path: Path, lines: list[bytes], each: bool = False) -> Pipeline:
    """The stages fed the lines (`each`: drained after each line, the journey stage keeping
    up with ingest; else all at once, in batches)."""
    pipeline = Pipeline(tmp_path)
    for raw in lines:
        pipeline.append("touchpoints", b"acme", raw)
        if each:
            pipeline.drain()
    pipeline.drain()
    return pipeline


def _customers(pipeline: Pipeline) -> dict[tuple[str, str], list[str]]:
    """The live journeys, less the decisions' own (a decision shows as a journey live)."""
    stored = pipeline.stored()
    return {ref: ids for ref, ids in stored.items() if not all(i.startswith("d-") for i in ids)}


@pytest.mark.parametrize("seed", range(8))
def test_the_live_stages_settle_limits_as_the_pure_fold_whatever_the_order(
    tmp_path: Path, seed: int
) -> None:
    lines = _shared_phone_lines()
    random.Random(seed).shuffle(lines)
    pipeline = _live(tmp_path, lines, each=True)
    report = check_lines(lines, FoldSettings(), NOW)
    pure = {(j.tenant, j.customer_id): [e.event_id for e in j.events] for j in report.journeys}
    assert len(pure) > 3
    assert _customers(pipeline) == pure
    assert pipeline.dead == []
    # Live, a conflict flag names the customers as they stood when the link was held (they
    # may have been settled again since: see the README), so customers are compared.
    opened = {
        f.customer_id
        for f in pipeline.flags
        if f.flag.to_document().get("rule") == IDENTITY_CONFLICT
    }
    held = {j.customer_id for j in report.journeys for f in j.flags if f.rule == IDENTITY_CONFLICT}
    assert held
    assert held <= opened


def test_a_confirmed_value_merges_past_the_limits_live(tmp_path: Path) -> None:
    confirm = line("d-1", "identity.merge_confirmed", 0, {"phone": "+44 7700 900456"})
    lines = [confirm] + [
        line(f"e-{n}", "form.submitted", 10 + n, {"email": email, "phone": "+44 7700 900456"})
        for n, email in enumerate(EMAILS)
    ]
    pipeline = _live(tmp_path, lines)
    assert list(_customers(pipeline).values()) == [[f"e-{n}" for n in range(len(EMAILS))]]
    assert _customers(pipeline) == {
        (j.tenant, j.customer_id): [e.event_id for e in j.events]
        for j in check_lines(lines, FoldSettings(), NOW).journeys
    }


def _ingest_graph(pipeline: Pipeline) -> dict[str, frozenset[str]]:
    """Ingest's customers (id -> keys), less the decisions standing alone."""
    graph = {}
    for partition in range(PARTITIONS):
        for customer, held in stored_members(pipeline.identity, partition, "acme"):
            if not any(m.startswith("event:") for m in held):
                graph[customer] = held
    return graph


@pytest.mark.parametrize("seed", range(12))
def test_ingest_settles_its_graph_as_the_pure_fold_whatever_the_order_and_batches(
    tmp_path: Path, seed: int
) -> None:
    lines = _shared_phone_lines()
    random.Random(seed).shuffle(lines)
    pipeline = _live(tmp_path, lines)  # all at once: settles follow each other in a batch
    pure = fold([decode_event(raw) for raw in lines]).identities["acme"].member_sets
    assert _ingest_graph(pipeline) == pure


def test_a_tenant_s_limits_override_the_defaults_kind_by_kind() -> None:
    policy = _settings({"limits": {"email": 0, "plate": 2}}).identity_for("acme")
    assert dict(policy.limits) == {"customer_ref": 1, "membership_id": 1, "phone": 3, "plate": 2}
    assert dict(_settings().identity_for("acme").limits) == dict(DEFAULT_LIMITS)


def test_the_reproductions_hold_with_the_default_limits() -> None:
    assert [j.names for j in check_lines(SHOP, _settings()).journeys] == [("Carol", "Dave")]
    limited = check_lines(SHOP, _settings({"limits": {"email": 1}}))
    assert sorted(j.names for j in limited.journeys) == [("Carol",), ("Dave",)]
    assert {f.rule for j in limited.journeys for f in j.flags} == {IDENTITY_CONFLICT}
    placeholder = [
        line("p-1", "form.submitted", 0, {"email": "alice@example.com", "phone": "00000000000"}),
        line("p-2", "form.submitted", 9, {"email": "bob@example.com", "phone": "00000000000"}),
    ]
    assert len(check_lines(placeholder, FoldSettings()).journeys) == 2


# --- the one-edge settle: equal to settling the whole component on each event ------------------

WIDE = {
    "email": tuple(f"p{n:02d}@shop.net" for n in range(24)),
    "phone": ("+44 113 496 0000", "0113 496 0000", "+44 7700 900123"),
    "customer_ref": REFS,
    "plate": PLATES,
    "order_id": tuple(f"ORD-{n:02d}" for n in range(30)),
}
"""Many e-mails and orders, few phones (one of them in two spellings): most events bring a new
customer that shares a switchboard number, as the quadratic case did, or a new order."""


@st.composite
def wide_logs(draw: st.DrawFn) -> list[Event]:
    """Events with a new or known e-mail and mostly a shared phone, and maybe a decision."""
    events = []
    for number in range(draw(st.integers(6, 30))):
        customer = {"email": draw(st.sampled_from(WIDE["email"]))}
        if draw(st.integers(0, 4)):
            customer["phone"] = draw(st.sampled_from(WIDE["phone"]))
        extra = ("customer_ref", "plate", "order_id")
        for kind in draw(st.sets(st.sampled_from(extra), max_size=2)):
            customer[kind] = draw(st.sampled_from(WIDE[kind]))
        if not draw(st.integers(0, 5)):
            customer.pop("email")  # an event carrying only values others carry too
            customer.setdefault("phone", WIDE["phone"][0])
        minutes = draw(st.integers(0, 600))
        events.append(line(f"w-{number:02d}", "form.submitted", minutes, customer))
    if draw(st.booleans()):
        value = draw(st.sampled_from(WIDE["phone"]))
        events.append(line("d-1", "identity.merge_confirmed", 0, {"phone": value}))
    return [decode_event(raw) for raw in events]


def _state(ledger: Ledger) -> Any:
    """Everything a settle decides: customers, their events, conflict flags, merges, counts."""
    return (
        {key: [e.event_id for e in j.events] for key, j in sorted(ledger.journeys.items())},
        {
            key: sorted((k, f.message, f.event_ids, f.opened_at) for k, f in flags.items())
            for key, flags in sorted(ledger.conflicts.items())
            if flags
        },
        {key: list(merges) for key, merges in sorted(ledger.merges.items()) if merges},
        dict(ledger.identities["acme"].member_sets) if "acme" in ledger.identities else {},
        ledger.refused,
    )


@PROPERTY
@given(
    events=st.one_of(logs(), wide_logs(), wide_logs()), limits=st.sampled_from([None, {"email": 1}])
)
def test_settling_one_edge_at_a_time_equals_settling_the_whole_component_each_event(
    events: list[Event], limits: dict[str, int] | None
) -> None:
    settings = (_settings() if limits is None else _settings({"limits": limits})).with_decisions(
        events
    )
    one_edge, whole = Ledger(settings), Ledger(settings, settle_whole=True)
    for event in events:
        assert one_edge.add(event) == whole.add(event)
        assert one_edge.moved == whole.moved
        assert _state(one_edge) == _state(whole)


def _switchboard(customers: int) -> list[Event]:
    """Customers each with their own e-mail, all giving the shop's switchboard number."""
    return [
        decode_event(
            line(
                f"s-{n:04d}",
                "form.submitted",
                n,
                {"email": f"c{n:04d}@shop.net", "phone": PHONES[0]},
            )
        )
        for n in range(customers)
    ]


@pytest.mark.parametrize("limits", [None, {"email": 1}])
def test_a_value_shared_very_widely_is_settled_one_edge_at_a_time(
    limits: dict[str, int] | None,
) -> None:
    settings = _settings() if limits is None else _settings({"limits": limits})
    events = _switchboard(300)
    ledger = Ledger(settings)
    ledger.add_all(events[:10])
    (component,) = ledger.components["acme"].values()
    ledger.add_all(events[10:])
    # the component was not settled again from its edges: each event was settled alone
    assert list(ledger.components["acme"].values()) == [component]
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    whole = Ledger(settings, settle_whole=True)
    whole.add_all(shuffled)
    assert customers(ledger) == customers(whole)
    assert len(list(ledger)) == 300 - (2 if limits is None else 0)


# --- what a settle moves: merges and journeys ----------------------------------------------------

VIN = "WVWZZZ1KZAW000120"


def _moved_lines() -> list[bytes]:
    """Zoe's enquiry (her e-mail and the car's plate), a reply to the car's VIN, an event
    joining VIN and plate (Zoe's customer takes the VIN's in: a merge), then Ann's event with
    the plate: with one e-mail a customer, the plate goes to Ann (her e-mail sorts first), and
    with it the VIN's events; Zoe keeps her enquiry alone."""
    return [
        line("m-1", "form.submitted", 0, {"email": "zoe@shop.net", "plate": PLATES[0]}),
        line("m-2", "form.submitted", 60, {"vin": VIN}),
        line("m-3", "form.submitted", 120, {"vin": VIN, "plate": PLATES[0]}),
        line("m-4", "form.submitted", 180, {"email": "ann@shop.net", "plate": PLATES[0]}),
    ]


def test_a_settle_deals_the_merges_of_the_customers_whose_events_it_moved() -> None:
    settings = _settings({"limits": {"email": 1}})
    events = [decode_event(raw) for raw in _moved_lines()]
    ledger = fold(events[:3], settings)
    (zoe,) = ledger
    (merge,) = ledger.why(zoe)[1]
    assert (merge.event_id, merge.identifier) == ("m-3", f"vin {VIN}")
    ledger.add(events[3])
    assert ledger.moved == (("acme", zoe.customer_id),)
    by_events = {tuple(e.event_id for e in j.events): j for j in ledger}
    assert sorted(by_events) == [("m-1",), ("m-2", "m-3", "m-4")]
    ann = by_events[("m-2", "m-3", "m-4")]
    # the merge went through the VIN: it stays with the customer holding the VIN now (as live)
    assert ledger.why(ann)[1] == (merge,)
    assert ledger.why(by_events[("m-1",)])[1] == ()
    # the same through `journeys check`
    report = check_lines(_moved_lines(), settings)
    listed = {tuple(e.event_id for e in j.events): j.merges for j in report.journeys}
    assert [m.event_id for m in listed[("m-2", "m-3", "m-4")] or ()] == ["m-3"]
