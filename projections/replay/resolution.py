"""Which journey a replay query names as identity stood at a moment, and why, when not plainly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from projections.formatting import format_moment
from projections.identifiers import NormalisedId, identity_ids
from projections.identity import customer_id_for
from projections.journey import Journey
from projections.ledger import Ledger
from projections.replay.query import CUSTOMER_ID, Query
from projections.settings import FoldSettings
from schemas.errors import AmbiguousCustomerError, CustomerNotFoundError
from schemas.events import Event


@dataclass(frozen=True, slots=True)
class Resolution:
    """How the query was resolved to one journey as identity stood at `as_of`."""

    query: Query
    tenant: str
    customer_id: str
    """The journey replayed, under its id as of `as_of`."""
    matched_key: str | None
    """The identity key the journey was found by (None when found through its fragments)."""
    requested_id: str | None = None
    """The customer id asked for, when the query was one."""
    note: str | None = None
    """Why `customer_id` is not the id asked for (a merge, or an id formed later)."""

    @property
    def superseded(self) -> bool:
        """Whether the customer id asked for was not the journey's id at `as_of`."""
        return self.requested_id is not None and self.requested_id != self.customer_id


def resolve(
    query: Query, ledger: Ledger, events: Sequence[Event], as_of: datetime, settings: FoldSettings
) -> Resolution:
    if query.kind == CUSTOMER_ID:
        return _resolve_customer(query, ledger, events, as_of, settings)
    found: list[Resolution] = []
    for tenant in sorted(ledger.identities):
        ident = query.normalised(settings.region_for(tenant), settings.hasher_for(tenant))
        journey = ledger.find(tenant, query.kind, query.value)
        if journey is not None:
            found.append(Resolution(query, tenant, journey.customer_id, ident.key))
    if len(found) > 1:
        tenants = ", ".join(r.tenant for r in found)
        raise AmbiguousCustomerError(
            f"{query} belongs to customers of several tenants ({tenants})",
            tuple(r.customer_id for r in found),
            hint="name the tenant to replay",
        )
    if found:
        return found[0]
    raise CustomerNotFoundError(
        f"no event up to {as_of.isoformat()} carries {query}" + _later_hint(query, events, settings)
    )


def _matches(query: NormalisedId, event: Event, settings: FoldSettings) -> bool:
    region = settings.region_for(event.tenant)
    for ident in identity_ids(event, region):
        if ident.key == query.key:
            return True
        a, b = ident.phone, query.phone
        # A national spelling matches an international one with the same digits.
        if (
            a is not None
            and b is not None
            and a.national_key
            and a.nsn == b.nsn
            and (a.country_code is None or b.country_code is None)
        ):
            return True
    return False


def _later_hint(query: Query, events: Sequence[Event], settings: FoldSettings) -> str:
    for event in events:  # in journey order: the first match is the earliest
        if _matches(query.normalised(settings.region_for(event.tenant)), event, settings):
            return f"; it first appears at {event.occurred_at.isoformat()}"
    return "; no event in the log carries it"


def _key_of_id(ledger: Ledger, customer_id: str) -> tuple[str, str] | None:
    """The (tenant, key) a customer id was derived from: its smallest key when it was formed."""
    for tenant, graph in sorted(ledger.identities.items()):
        for key in sorted(graph.index):
            if customer_id_for(tenant, [key]) == customer_id:
                return tenant, key
    return None


def _merge_note(requested: str, journey: Journey, key: str, settings: FoldSettings) -> str:
    """When and by which event the requested id's key joined a smaller key (in time order)."""
    graph = Ledger(settings)
    for event in journey.events:
        graph.add(event)
        owner = graph.identities[journey.tenant].customer_of(key)
        if owner is not None and owner != requested:
            return (
                f"{requested} was merged into {journey.customer_id}: on "
                f"{format_moment(event.occurred_at)} event {event.event_id} "
                f"({event.source.system}) linked it to the customer's other identifiers"
            )
    return f"{requested} is part of {journey.customer_id} as of this moment"


def _resolve_customer(
    query: Query, ledger: Ledger, events: Sequence[Event], as_of: datetime, settings: FoldSettings
) -> Resolution:
    requested = query.value
    held = _key_of_id(ledger, requested)
    if held is not None:
        tenant, key = held
        owner = ledger.identities[tenant].customer_of(key)
        assert owner is not None
        journey = ledger.journeys[(tenant, owner)]
        note = None if owner == requested else _merge_note(requested, journey, key, settings)
        return Resolution(query, tenant, owner, key, requested, note)
    # The id was formed from an identifier that appears only after as_of: find the customer in
    # the whole log, then the journeys its identifiers were split between at as_of.
    everything = Ledger(settings)
    everything.add_all(events)
    later = _key_of_id(everything, requested)
    if later is None:
        raise CustomerNotFoundError(f"no customer {requested} in the events read")
    tenant, key = later
    owner = everything.identities[tenant].customer_of(key)
    assert owner is not None
    keys = everything.identities[tenant].members(owner)
    graph = ledger.identities.get(tenant)
    parts = sorted({o for k in keys if graph and (o := graph.customer_of(k)) is not None})
    if not parts:
        first = min(e.occurred_at for e in everything.journeys[(tenant, owner)].events)
        raise CustomerNotFoundError(
            f"{requested} has no events up to {as_of.isoformat()}; "
            f"its first event is at {first.isoformat()}"
        )
    if len(parts) > 1:
        raise AmbiguousCustomerError(
            f"{requested} did not exist yet at {as_of.isoformat()}: its events were then split "
            f"between {len(parts)} customers: {', '.join(parts)}",
            tuple(parts),
            hint="replay one of the customer ids listed, or query an identifier",
        )
    note = (
        f"{requested} was formed after this moment; as of it the customer's events were "
        f"under {parts[0]}"
    )
    return Resolution(query, tenant, parts[0], None, requested, note)
