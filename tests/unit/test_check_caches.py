"""The check's shortcuts give what the plain computations give, on a generated load.

`customer_ids` is cached on a customer's identifier values, `linked_by` ranks each set of
identifiers once per journey, a component's limits are counted only when it grew: each is
compared here with the computation it replaces, written out plainly.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest

from journeys.bench.load import skewed_lines
from projections.identifiers import MASK_RUN, identity_ids, normalise
from projections.identifiers import customer_ids as cached_customer_ids
from projections.identity import IdentityPolicy
from projections.journey import Journey
from projections.ledger import Ledger
from projections.settings import FoldSettings
from projections.why import linked_by
from projections.why.linked import link_keys
from schemas.codec import decode_event
from schemas.events import IDENTIFIER_KINDS, Customer, Event
from tests.factories import ev

EVENTS = [decode_event(line) for line in skewed_lines(1_500, 300, 7)]
TENANTS = sorted({event.tenant for event in EVENTS})


def _plain_linked_by(
    journey: Journey, policy: IdentityPolicy, region: str | None
) -> dict[str, str]:
    """`linked_by` before its per-journey ranking cache: every event's identifiers ranked."""
    seen: set[str] = set()
    links: dict[str, str] = {}
    for event in journey.events:
        ids = sorted(
            (i for i in identity_ids(event, region, policy) if i.kind != "event"),
            key=lambda i: (policy.rank(i.kind), i.key),
        )
        shared = next((i for i in ids if any(k in seen for k in link_keys(i))), None)
        if shared is not None:
            links[event.event_id] = f"{shared.kind} {shared.value}"
        seen.update(k for i in ids for k in link_keys(i))
    return links


@pytest.mark.parametrize("region", [None, "GB"])
def test_cached_customer_ids_are_the_identifiers_normalised_one_by_one(
    region: str | None,
) -> None:
    for event in EVENTS:
        plain = tuple(
            normalise(kind, raw, region)
            for kind, raw in event.customer.identifiers()
            if MASK_RUN not in raw
        )
        assert cached_customer_ids(event.customer, region) == plain


def test_identifier_values_are_every_identifier_field_in_catalogue_order() -> None:
    customer = Customer(email="a@example.org", plate="AB12 CDE", name="Sam")
    values = customer.identifier_values()
    assert len(values) == len(IDENTIFIER_KINDS)
    assert [(k, v) for k, v in zip(IDENTIFIER_KINDS, values, strict=True) if v] == (
        customer.identifiers()
    )


def test_a_masked_value_never_comes_out_of_the_cache() -> None:
    customer = Customer(card_token=f"{MASK_RUN}1234", email="a@example.org")
    assert [i.kind for i in cached_customer_ids(customer)] == ["email"]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(FoldSettings(), id="defaults"),
        pytest.param(
            FoldSettings(default_regions=MappingProxyType(dict.fromkeys(TENANTS, "GB"))),
            id="regions",
        ),
    ],
)
def test_linked_by_is_the_plain_walk_on_every_journey_of_a_load(settings: FoldSettings) -> None:
    ledger = Ledger(settings)
    ledger.add_all(EVENTS)
    journeys = list(ledger)
    assert any(len(j.events) > 3 for j in journeys)
    linked = 0
    for journey in journeys:
        policy = settings.identity_for(journey.tenant)
        region = settings.region_for(journey.tenant)
        links = linked_by(journey, policy, region)
        assert links == _plain_linked_by(journey, policy, region)
        linked += len(links)
    assert linked > 0


def test_linked_by_ranks_a_blocked_value_as_the_plain_walk_does() -> None:
    policy = IdentityPolicy(blocked=frozenset({"email:shared@example.org"}))
    events: list[Event] = [
        ev(
            "form.submitted", {"form": "a"}, customer={"email": "shared@example.org"}, event_id="e1"
        ),
        ev(
            "form.submitted",
            {"form": "b"},
            customer={"email": "shared@example.org", "plate": "AB12CDE"},
            event_id="e2",
        ),
        ev("form.submitted", {"form": "c"}, customer={"plate": "AB12CDE"}, event_id="e3"),
        ev(
            "form.submitted", {"form": "d"}, customer={"email": "shared@example.org"}, event_id="e4"
        ),
    ]
    journey = Journey("acme", "cus_x", events)
    assert (
        linked_by(journey, policy)
        == _plain_linked_by(journey, policy, None)
        == {"e3": "plate AB12CDE"}
    )
