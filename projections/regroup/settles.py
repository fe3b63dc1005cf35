"""The pure fold's components over a limit: one edge settled alone, or the whole settled again.

`Ledger.add` hands here an event of a component over a limit. The component's `Settlement`
(`projections.regroup.limits`) takes the event's edge alone when that leaves every other
decision as it was (most events of a value shared very widely: a new customer whose link is
held, or one more event of a customer): only the event's customer changes, in time
independent of the component's size. Otherwise the component is settled again from its edges
and its events dealt out to the customers that gives, with the merges of the customers whose
events moved (as the live journey stage deals them on a split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from projections import journey as journey_fold
from projections.identifiers import NormalisedId, held_spellings
from projections.identity import IdentityChange, conflict_flag, customer_id_for
from projections.journey import Journey, Merge, event_order
from projections.regroup.components import decided_form
from projections.regroup.limits import Added, Held, Settlement, home, owners
from schemas.events import Event

if TYPE_CHECKING:
    from projections.ledger import Ledger

Found = tuple[str, str, str]
"""A held link as `Settlement.found` keys it: (decided form of the key, holder, owner)."""


@dataclass(slots=True)
class Component:
    """What the ledger keeps of a component over a limit: its settlement, and the event that
    opens each held link's flag (whether it carries the held value: such an event comes first)."""

    settlement: Settlement
    openers: dict[Found, tuple[Event, bool]] = field(default_factory=dict)
    by_holder: dict[str, list[Found]] = field(default_factory=dict)

    def open(self, found: Found, opener: Event, carries: bool) -> None:
        """Note the event opening a held link's flag."""
        if found not in self.openers:
            self.by_holder.setdefault(found[1], []).append(found)
        self.openers[found] = (opener, carries)


def settle_event(
    ledger: Ledger, event: Event, ids: list[NormalisedId], root: str
) -> IdentityChange:
    """Fold an event into a component over a limit (`root` in the tenant's `Reach`)."""
    tenant = event.tenant
    graph = ledger.identities[tenant]
    for ident in ids:
        phone = ident.phone
        if phone is not None and phone.country_code is not None and phone.national_key:
            graph.countries[phone.number] = graph.countries.get(phone.number, frozenset()) | {
                phone.country_code
            }
    components = ledger.components.setdefault(tenant, {})
    reach = ledger.reach[tenant]
    for gone in reach.gone:  # merged into this one: what was kept of them no longer holds
        components.pop(gone, None)
        _count(ledger, tenant, gone, None)
    reach.gone.clear()
    known = components.get(root)
    if ledger.settle_whole or known is None:
        return _again(ledger, event, root)
    edge = ledger.own_keys[(tenant, event.event_id)]
    settlement = known.settlement
    seen = _canonical(settlement, edge) in settlement.edges
    if len(reach.edges[root]) != len(settlement.edges) + (not seen):
        return _again(ledger, event, root)  # the event joined this component to another
    added = settlement.add(edge)
    if added is None:
        return _again(ledger, event, root)
    if added.customer is not None:
        return _new_customer(ledger, known, event, root, added)
    customer = _home(settlement, edge) or customer_id_for(tenant, [f"event:{event.event_id}"])
    if added.joined:
        graph.member_sets[customer] = settlement.parts[customer]
        for key in added.joined:
            graph.index[key] = customer
    if not _reopen(ledger, known, event, customer, edge):
        return _again(ledger, event, root)
    current = ledger.journeys.get((tenant, customer))
    ledger.journeys[(tenant, customer)] = (
        journey_fold.fold(tenant, customer, [event])
        if current is None
        else journey_fold.add_new(current, event)
    )
    return IdentityChange(customer, settlement.parts.get(customer, frozenset()))


def _canonical(settlement: Settlement, edge: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(edge, key=lambda k: (settlement.rank(k), k)))


def _home(settlement: Settlement, edge: frozenset[str]) -> str | None:
    """The customer of the edge's highest-priority key a customer holds (as `home`)."""
    for key in _canonical(settlement, edge):
        if (customer := settlement.customer_of(key)) is not None:
            return customer
    return None


def _new_customer(
    ledger: Ledger, known: Component, event: Event, root: str, added: Added
) -> IdentityChange:
    """The event's new keys made a customer of their own, its other links held."""
    tenant, customer = event.tenant, added.customer
    assert customer is not None
    graph = ledger.identities[tenant]
    members = known.settlement.parts[customer]
    graph.member_sets[customer] = members
    for key in members:
        graph.index[key] = customer
    ledger.journeys[(tenant, customer)] = journey_fold.fold(tenant, customer, [event])
    for link in added.held:
        known.open(_found(link), event, True)
        _flag(ledger, tenant, link, event)
    _count(ledger, tenant, root, len(known.settlement.found))
    return IdentityChange(customer, members)


def _reopen(
    ledger: Ledger, known: Component, event: Event, customer: str, edge: frozenset[str]
) -> bool:
    """The event joined `customer`: the flags of links it holds may be opened by it now (the
    earliest event carrying the value opens one). False when another flag shares one's id."""
    found = known.settlement.found
    for key in known.by_holder.get(customer, ()):
        link = found[key]
        opener, carried = known.openers[key]
        carries = link.key in edge
        if carries and not carried:
            better = event
        elif carries == carried:
            better = min(opener, event, key=event_order)
        else:
            continue
        if better is opener:
            continue
        if (key[0], key[2], key[1]) in found:  # the same flag from the other side: settle
            return False
        known.open(key, better, carries or carried)
        _flag(ledger, event.tenant, link, better)
    return True


def _found(link: Held) -> Found:
    return (decided_form(link.key), link.holder, link.owner)


def _flag(ledger: Ledger, tenant: str, link: Held, opener: Event) -> None:
    conflict = link.conflict()
    flag = conflict_flag(conflict, opener)
    for customer in conflict.customers:
        kept = ledger.conflicts.setdefault((tenant, customer), {})
        kept[(f"{conflict.kind}:{conflict.value}", flag.flag_id)] = flag


def _count(ledger: Ledger, tenant: str, root: str, held: int | None) -> None:
    """Links held in a component (None: it merged into another); `refused` counts them all."""
    counts = ledger.held.setdefault(tenant, {})
    before = counts.pop(root, 0)
    if held is not None:
        counts[root] = held
    ledger.refused[tenant]["limit"] += (held or 0) - before


def _again(ledger: Ledger, event: Event, root: str) -> IdentityChange:
    """Settle the whole component again from its edges, whatever order the events came in."""
    tenant = event.tenant
    graph = ledger.identities[tenant]
    policy = ledger.settings.identity_for(tenant)
    reach = ledger.reach[tenant]
    standing = graph.member_sets  # the index may still name a customer a settle undid
    old = sorted({c for k in reach.keys(root) if (c := graph.customer_of(k)) in standing})
    settlement = Settlement(tenant, reach.edges[root], policy)
    settled = settlement.settled()
    events = [event]
    previous: dict[str, Journey] = {}
    for customer in old:
        journey = ledger.journeys.pop((tenant, customer), None)
        if journey is not None:
            previous[customer] = journey
            events.extend(journey.events)
        graph.member_sets.pop(customer, None)
        ledger.conflicts.pop((tenant, customer), None)
    for customer, members in settled.parts.items():
        graph.member_sets[customer] = members
        for key in members:
            graph.index[key] = customer
    owner = owners(settled.parts)
    dealt: dict[str, list[Event]] = {}
    for one in events:
        own = ledger.own_keys[(tenant, one.event_id)]
        found = home(own, owner, policy) or customer_id_for(tenant, [f"event:{one.event_id}"])
        dealt.setdefault(found, []).append(one)
    moved = []
    for customer, grouped in dealt.items():
        journey, kept = _dealt(tenant, customer, grouped, previous)
        ledger.journeys[(tenant, customer)] = journey
        if not kept:
            moved.append((tenant, customer))
    _deal_merges(ledger, tenant, previous, owner)
    known = Component(settlement)
    for held in settled.held:
        carrying = [
            e
            for e in dealt.get(held.holder, ())
            if held.key in ledger.own_keys[(tenant, e.event_id)]
        ]
        opener = min(carrying or dealt[held.holder], key=event_order)
        known.open(_found(held), opener, bool(carrying))
        _flag(ledger, tenant, held, opener)
    ledger.components[tenant][root] = known
    _count(ledger, tenant, root, len(settled.held))
    mine = home(ledger.own_keys[(tenant, event.event_id)], owner, policy)
    customer = mine or customer_id_for(tenant, [f"event:{event.event_id}"])
    moved.extend((tenant, gone) for gone in previous)  # left with fewer events, or none
    ledger.moved = tuple(sorted(set(moved) - {(tenant, customer)}))
    absorbed = tuple(c for c in old if c not in settled.parts)
    return IdentityChange(customer, settled.parts.get(customer, frozenset()), absorbed)


def _dealt(
    tenant: str, customer: str, events: list[Event], previous: dict[str, Journey]
) -> tuple[Journey, bool]:
    """A settled customer's journey, and whether it kept its events: then it is as it was
    (plus the new event), so a settle folds again only the journeys whose events moved."""
    before = previous.get(customer)
    ids = {one.event_id for one in events}
    if before is not None and before.event_ids <= ids and len(ids - before.event_ids) <= 1:
        del previous[customer]  # kept: its merges still hold
        added = [one for one in events if one.event_id not in before.event_ids]
        return (journey_fold.add_new(before, added[0]) if added else before), True
    return journey_fold.fold(tenant, customer, sorted(events, key=event_order)), False


def _deal_merges(
    ledger: Ledger, tenant: str, previous: dict[str, Journey], owner: dict[str, str]
) -> None:
    """The merges of the customers whose events moved, dealt out as the live journey stage
    deals a split customer's: each to the customer holding the identifier that reached the
    customer merged in; dropped when none holds it or that customer stands again."""
    region, hasher = ledger.settings.region_for(tenant), ledger.settings.hasher_for(tenant)
    dealt: dict[str, list[Merge]] = {}
    for customer in previous:
        for merge in ledger.merges.pop((tenant, customer), []):
            spellings = held_spellings(merge.identifier, region, hasher)
            part = next((owner[k] for k in spellings if k in owner), None)
            if part is not None and part != merge.from_customer:
                dealt.setdefault(part, []).append(merge)
    for part, merges in dealt.items():
        history = [*ledger.merges.get((tenant, part), []), *merges]
        history.sort(key=lambda m: (m.at, m.event_id, m.from_customer))
        ledger.merges[(tenant, part)] = history
