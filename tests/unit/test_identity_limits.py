"""Identity limits on by default, independent of arrival order (pure fold, `fold_all`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.identity import DEFAULT_LIMITS, IdentityPolicy, identity_number
from projections.ledger import Ledger, fold, fold_all
from projections.regroup.limits import settle
from projections.settings import FoldSettings
from schemas.codec import decode_event
from schemas.events import Event

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
    for members in ledger.identities["acme"].member_sets.values():
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
