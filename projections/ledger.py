"""The whole ledger folded in memory: identity per tenant and a journey per customer.

This is the driver used offline (`journeys check`), by replay and by tests; the stream
worker drives the same pure functions (`identity.link`, `journey.apply`, `journey.merge`)
against RocksDB instead of dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from projections import journey as journey_fold
from projections.flags import Flag
from projections.identifiers import identity_ids, normalise
from projections.identity import (
    IdentityChange,
    IdentityPolicy,
    MemoryIdentity,
    Why,
    confirmed_through,
    conflict_flag,
    customer_id_for,
    explain,
    link,
    stitch_keys,
)
from projections.journey import Journey, Merge, same_content
from projections.regroup.disjoint import DisjointSets
from projections.regroup.limits import Reach, home, over_limits, owners, settle
from projections.regroup.settles import Component, settle_event
from projections.settings import FoldSettings
from projections.why import linked_by
from schemas.errors import EventConflictError
from schemas.events import DECISION_TYPES, ERASURE_TYPE, Event


@dataclass(slots=True)
class Ledger:
    """Events in, journeys out; duplicates are ignored, conflicting ids rejected."""

    settings: FoldSettings = field(default_factory=FoldSettings)
    identities: dict[str, MemoryIdentity] = field(default_factory=dict)
    journeys: dict[tuple[str, str], Journey] = field(default_factory=dict)
    seen: dict[tuple[str, str], Event] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], dict[tuple[str, str], Flag]] = field(default_factory=dict)
    """(tenant, customer id) -> the IDENTITY_CONFLICT flag of each held link, by `kind:value`
    and flag id."""
    merges: dict[tuple[str, str], list[Merge]] = field(default_factory=dict)
    """(tenant, customer id) -> the merges that made the customer, in the order they happened."""
    refused: dict[str, dict[str, int]] = field(default_factory=dict)
    """Tenant -> identifiers refused for linking: `junk`, `blocked`, and links a `limit` held."""
    reach: dict[str, Reach] = field(default_factory=dict)
    """Tenant -> its graph's components with no limit applied (settled when over a limit)."""
    own_keys: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    """(tenant, event id) -> the keys the event links (its edge)."""
    held: dict[str, dict[str, int]] = field(default_factory=dict)
    """Tenant -> links held per component over a limit (by its root in `reach`)."""
    components: dict[str, dict[str, Component]] = field(default_factory=dict)
    """Tenant -> the settled state of each component over a limit (by its root in `reach`)."""
    moved: tuple[tuple[str, str], ...] = ()
    """(tenant, customer id) of the journeys the last `add` dealt again besides the event's
    own: a settle moved events between them."""
    settle_whole: bool = False
    """Settle a component over a limit again from all its edges on each of its events (the
    reference the one-edge settle is tested against), not one edge at a time when it can."""

    def add(self, event: Event) -> IdentityChange | None:
        """Fold one event in; None when it was a duplicate.

        Raises `EventConflictError` when the id was seen with other content; the first stays.
        """
        self.moved = ()
        known = self.seen.get((event.tenant, event.event_id))
        if known is not None:
            if same_content(known, event):
                return None
            raise EventConflictError(
                f"event_id {event.event_id!r} was already used for a different event"
            )
        self.seen[(event.tenant, event.event_id)] = event
        if event.type in DECISION_TYPES or event.type == ERASURE_TYPE:
            return None  # a person's decision joins no journey; `fold` applies it to the settings
        tenant = event.tenant
        policy = self.settings.identity_for(tenant)
        graph, reach, counts = self._tenant(tenant, policy)
        region, hasher = self.settings.region_for(tenant), self.settings.hasher_for(tenant)
        ids = identity_ids(event, region, policy, counts, hasher)
        edge = frozenset(ident.key for ident in ids if ident.kind != "event")
        self.own_keys[(tenant, event.event_id)] = edge
        # worked out once, for the components and for the link (the graph is the same)
        stitched = stitch_keys(graph, ids)
        root = reach.add(edge, stitched if edge else ())
        if root in reach.over:
            return settle_event(self, event, ids, root)
        change = link(graph, tenant, ids, policy, stitched)
        # only a merge has a why worth keeping (`Why.merged` needs two customers joined)
        why = explain(graph, ids, change, policy) if change.absorbed else None
        graph.apply(change)
        if change.conflicts:
            counts["limit"] += len(change.conflicts)
        if change.absorbed or change.conflicts:
            self._note_conflicts(event, change)
        if why is not None:
            self._note_why(event, change, why)
        elif history := self.merges.get((tenant, change.customer_id)):
            history.sort(key=_merge_order)  # as `_note_why` leaves it: sorted before adding
        key = (event.tenant, change.customer_id)
        current = self.journeys.pop(key, None)
        if change.absorbed:
            parts = [self.journeys.pop((event.tenant, old)) for old in change.absorbed]
            if current is not None:
                parts.append(current)
            current = journey_fold.merge(change.customer_id, parts)
        elif current is None:
            current = Journey(event.tenant, change.customer_id)
        # `seen` holds every event id of the tenant, so the journey cannot hold this one
        self.journeys[key] = journey_fold.add_new(current, event)
        return change

    def _tenant(
        self, tenant: str, policy: IdentityPolicy
    ) -> tuple[MemoryIdentity, Reach, dict[str, int]]:
        """The tenant's identity graph, its components and its refused counts (made once)."""
        graph = self.identities.get(tenant)
        if graph is None:
            graph = self.identities[tenant] = MemoryIdentity()
        reach = self.reach.get(tenant)
        if reach is None:
            reach = self.reach[tenant] = Reach(policy)
        counts = self.refused.get(tenant)
        if counts is None:
            counts = self.refused[tenant] = {"junk": 0, "blocked": 0, "limit": 0}
        return graph, reach, counts

    def _note_why(self, event: Event, change: IdentityChange, why: Why) -> None:
        tenant = event.tenant
        history: list[Merge] = []
        for old in (*change.absorbed, change.customer_id):
            history.extend(self.merges.pop((tenant, old), []))
        history.sort(key=_merge_order)
        # the customers merged away (the one keeping its id is the journey itself), as live
        policy, region = self.settings.identity_for(tenant), self.settings.region_for(tenant)
        hasher = self.settings.hasher_for(tenant)
        # a merge that went through a value a person confirmed says so, as live
        confirmed = next(
            (
                text
                for identifier in sorted(identifier for _, identifier in why.merged)
                if (text := confirmed_through(policy, identifier, region, hasher))
            ),
            None,
        )
        history.extend(
            Merge(event.occurred_at, event.event_id, identifier, old, change.customer_id, confirmed)
            for old, identifier in why.merged
            if old != change.customer_id
        )
        if history:
            self.merges[(tenant, change.customer_id)] = history

    def why(self, journey: Journey) -> tuple[dict[str, str], tuple[Merge, ...]]:
        """The identifier that linked each of the journey's events, and the journey's merges.

        Which identifier linked an event is worked out from the journey (`why.linked_by`), as
        the live API does, so it does not depend on the order the events arrived in.
        """
        tenant = journey.tenant
        policy = self.settings.identity_for(tenant)
        links = linked_by(
            journey, policy, self.settings.region_for(tenant), self.settings.hasher_for(tenant)
        )
        return links, tuple(self.merges.get((journey.tenant, journey.customer_id), ()))

    def _note_conflicts(self, event: Event, change: IdentityChange) -> None:
        tenant = event.tenant
        merged: dict[tuple[str, str], Flag] = {}
        for old in (*change.absorbed, change.customer_id):
            merged.update(self.conflicts.pop((tenant, old), {}))
        for conflict in change.conflicts:
            for customer in conflict.customers:
                held = merged if customer == change.customer_id else None
                if held is None:
                    held = self.conflicts.setdefault((tenant, customer), {})
                flag = conflict_flag(conflict, event)
                held.setdefault((f"{conflict.kind}:{conflict.value}", flag.flag_id), flag)
        if merged:
            self.conflicts[(tenant, change.customer_id)] = merged

    def conflicts_of(self, tenant: str, customer_id: str) -> tuple[Flag, ...]:
        """The IDENTITY_CONFLICT flags of links held back by a limit that name this customer."""
        held = self.conflicts.get((tenant, customer_id), {})
        return tuple(held[k] for k in sorted(held))

    def add_all(self, events: Iterable[Event]) -> None:
        """Fold many events in (conflicts are raised as in `add`)."""
        for event in events:
            self.add(event)

    def __iter__(self) -> Iterator[Journey]:
        """Journeys by tenant, then customer id."""
        return iter(sorted(self.journeys.values(), key=lambda j: (j.tenant, j.customer_id)))

    def find(self, tenant: str, kind: str, value: str) -> Journey | None:
        """The journey holding an identifier, after normalisation."""
        graph = self.identities.get(tenant)
        if graph is None:
            return None
        ident = normalise(
            kind, value, self.settings.region_for(tenant), self.settings.hasher_for(tenant)
        )
        for key in sorted(stitch_keys(graph, [ident])):
            if (owner := graph.customer_of(key)) is not None:
                return self.journeys.get((tenant, owner))
        return None


def _merge_order(merge: Merge) -> tuple[datetime, str, str]:
    return (merge.at, merge.event_id, merge.from_customer)


def fold(events: Iterable[Event], settings: FoldSettings | None = None) -> Ledger:
    """Fold events one at a time, people's identity decisions first applied to the settings.

    A block decided later still splits the customers its value had joined: the graph is
    computed again from the events without that link, whatever order they arrived in.
    """
    events = list(events)
    ledger = Ledger((settings or FoldSettings()).with_decisions(events))
    ledger.add_all(events)
    return ledger


def fold_all(events: Iterable[Event], settings: FoldSettings | None = None) -> list[Journey]:
    """Fold a whole batch at once: stitch identities over all events first, then group.

    An independent route to the same answer as `Ledger.add` one event at a time; the
    property tests hold the two equal.
    """
    settings = settings or FoldSettings()
    events = list(events)
    settings = settings.with_decisions(events)
    unique: dict[tuple[str, str], Event] = {}
    for event in events:
        if event.type not in DECISION_TYPES and event.type != ERASURE_TYPE:
            unique.setdefault((event.tenant, event.event_id), event)
    sets: DisjointSets[tuple[str, str]] = DisjointSets()
    find, union = sets.find, sets.union

    national: dict[tuple[str, str], list[str]] = {}
    international: dict[tuple[str, str], list[str]] = {}
    keys_of: dict[tuple[str, str], list[str]] = {}
    for (tenant, event_id), event in unique.items():
        ids = identity_ids(
            event,
            settings.region_for(tenant),
            settings.identity_for(tenant),
            hasher=settings.hasher_for(tenant),
        )
        keys_of[(tenant, event_id)] = [ident.key for ident in ids]
        for ident in ids:
            union((tenant, ident.key), (tenant, ids[0].key))
            phone = ident.phone
            if phone is not None and phone.national_key is not None:
                bucket = national if phone.country_code is None else international
                bucket.setdefault((tenant, phone.number), []).append(ident.key)
    for (tenant, nsn), locals_ in national.items():
        spellings = international.get((tenant, nsn), [])
        if len({key.split(":")[1] for key in spellings}) == 1:  # countries agree
            for key in spellings:
                union((tenant, key), (tenant, locals_[0]))
    groups: dict[tuple[str, str], list[Event]] = {}
    members: dict[tuple[str, str], set[str]] = {}
    for (tenant, event_id), event in unique.items():
        root = find((tenant, keys_of[(tenant, event_id)][0]))
        groups.setdefault(root, []).append(event)
        members.setdefault(root, set()).update(keys_of[(tenant, event_id)])
    result = []
    for root, grouped in groups.items():
        tenant = root[0]
        policy = settings.identity_for(tenant)
        if not over_limits(policy, members[root]):
            result.append(
                journey_fold.fold(tenant, customer_id_for(tenant, members[root]), grouped)
            )
            continue
        # Over a limit: the component's customers are settled from its edges.
        edges = [frozenset(keys_of[(tenant, e.event_id)]) for e in grouped]
        owner = owners(settle(tenant, edges, policy).parts)
        dealt: dict[str, list[Event]] = {}
        for event in grouped:
            found = home(keys_of[(tenant, event.event_id)], owner, policy)
            dealt.setdefault(found or customer_id_for(tenant, [event.event_id]), []).append(event)
        result.extend(journey_fold.fold(tenant, c, part) for c, part in dealt.items())
    return sorted(result, key=lambda j: (j.tenant, j.customer_id))


STRONG_KINDS = frozenset({"customer_ref", "membership_id", "email"})
"""Identifiers that name one person: a value seen with many of them is probably shared."""


def identity_stats(ledger: Ledger, tenant: str, top: int = 10) -> dict[str, Any]:
    """The health of a tenant's identity graph: its largest customers, the identifiers seen
    with the most distinct strong identifiers (suspected shared values), links refused."""
    graph = ledger.identities.get(tenant, MemoryIdentity())
    largest = sorted(graph.member_sets.items(), key=lambda item: (-len(item[1]), item[0]))[:top]
    policy = ledger.settings.identity_for(tenant)
    region, hasher = ledger.settings.region_for(tenant), ledger.settings.hasher_for(tenant)
    strong_with: dict[str, set[str]] = {}
    for (event_tenant, _), event in ledger.seen.items():
        if event_tenant != tenant:
            continue
        ids = identity_ids(event, region, policy, hasher=hasher)
        strong = {i.key for i in ids if i.kind in STRONG_KINDS}
        for ident in ids:
            strong_with.setdefault(f"{ident.kind} {ident.value}", set()).update(
                strong - {ident.key}
            )
    shared = sorted(
        ((name, len(keys)) for name, keys in strong_with.items() if len(keys) > 1),
        key=lambda item: (-item[1], item[0]),
    )[:top]
    return {
        "tenant": tenant,
        "customers": len(graph.member_sets),
        "largest_customers": [
            {"customer_id": customer, "identifiers": len(keys)} for customer, keys in largest
        ],
        "suspected_shared": [
            {"identifier": name, "strong_identifiers": count} for name, count in shared
        ],
        "refused": dict(ledger.refused.get(tenant, {"junk": 0, "blocked": 0, "limit": 0})),
    }
