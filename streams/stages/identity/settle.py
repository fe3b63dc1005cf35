"""Ingest's side of a limit: an event whose link would push one settles the customers it
reaches from their edges, as the pure fold settles their component, whatever came first.

`projections.identity.link` says when an event's link would push a tenant's limit; then,
instead of holding the link greedily (the first customer keeping the shared value), ingest
reads the edges of the customers the event reaches, and of those holding a value in those
edges, and settles them with the pure `projections.regroup.limits.settle`. It writes the
customers that gives and sends a `regroup` record to each customer it changes: the journey
stage deals their events out (each to the customer of its highest-priority identifier) exactly
as on a person's split. An ordinary event costs nothing more; only an event reaching a limit
reads edges, those of a few customers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from projections.identifiers import NormalisedId
from projections.identity import (
    IdentityChange,
    IdentityPolicy,
    IdentityView,
    conflict_flag,
    new_phone_countries,
    stitch_keys,
)
from projections.regroup import Edge, decided_form
from projections.regroup.limits import Settled, Settlement, home, over_limits, owners, settle
from schemas.events import Event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_REGROUP, RegroupRecord
from streams.kafka.records import OutRecord, customer_key
from streams.stages.identity.members import delete_members, write_members
from streams.stages.identity.regrouping import (
    _put_edge,
    carry_over_limit,
    current_decision,
    edges,
    next_settle,
    withdraw_conflicts,
)
from streams.store import keys
from streams.store.state import BatchState

MAX_SETTLED = 64
"""The most customers one event settles; past it the link is held as the event found it (a
value shared that widely wants a person's block), so an event's cost stays bounded."""


Reached = tuple[Edge, list[str], list[Edge]]
"""An event's edge, the customers its settle reaches and their edges."""


def reach_event(
    state: BatchState,
    view: IdentityView,
    event: Event,
    ids: list[NormalisedId],
    blocked: frozenset[str],
) -> Reached | None:
    """The event's edge and the customers (and their edges) a settle of it reaches; None when
    they cannot be settled here (a customer without edges, or too many)."""
    tenant = event.tenant
    stitched = stitch_keys(view, ids)
    # Its own keys, as the pure fold's edge (a spelling it stitched to is joined by `settle`).
    edge = frozenset(i.key for i in ids if not i.key.startswith("event:")) | blocked
    reached = _reach(state, view, tenant, stitched)
    if reached is None:
        return None
    return edge, *reached


def settles_again(
    state: BatchState,
    view: IdentityView,
    event: Event,
    ids: list[NormalisedId],
    policy: IdentityPolicy,
    blocked: frozenset[str],
) -> Reached | None:
    """What a settle of an event that links within the limits reaches, when the pure fold's
    criterion settles it (`Settlement.add` cannot take its edge alone: it comes before the
    holder of a shared value, joins customers, ...); None when the link stands as linked."""
    reached = reach_event(state, view, event, ids, blocked)
    if reached is None:
        return None
    edge, _, found = reached
    refused, exempt = _decisions(state, event.tenant)
    settlement = Settlement(event.tenant, found, policy, refused, exempt)
    added = settlement.add(edge)
    return reached if added is None or added.customer is not None else None


def _decisions(
    state: BatchState, tenant: str
) -> tuple[Callable[[str], bool], Callable[[str], bool]]:
    """Which keys a person's block refuses, and which a person confirmed (past the limits)."""

    def refused(key: str) -> bool:
        return current_decision(state, tenant, decided_form(key))[0] is not None

    def exempt(key: str) -> bool:
        return current_decision(state, tenant, decided_form(key))[1]

    return refused, exempt


def settle_live(
    state: BatchState,
    view: IdentityView,
    event: Event,
    ids: list[NormalisedId],
    policy: IdentityPolicy,
    blocked: frozenset[str],
    reached: Reached | None = None,
) -> tuple[IdentityChange, list[OutRecord]] | None:
    """Settle the customers an event whose link pushes a limit reaches; the event's customer
    (with the links held as conflicts) and the records to send before the event, or None when
    they cannot be settled here (a customer without edges, or too many): hold as found.

    `blocked`: the event's keys a person's block refuses (kept in its edge, as always);
    `reached`: what `settles_again` read already.
    """
    tenant = event.tenant
    if reached is None:
        reached = reach_event(state, view, event, ids, blocked)
    if reached is None:
        return None
    edge, gathered, found = reached
    refused, exempt = _decisions(state, tenant)
    settled = settle(tenant, [*found, edge], policy, refused, exempt)
    owner = owners(settled.parts)
    mine = home(edge, owner, policy)
    if mine is None:
        return None
    before = {customer: view.members(customer) for customer in gathered}
    _write(state, tenant, before, settled, [*found, edge], policy, refused)
    reason = _reason(settled, policy)
    out: list[OutRecord] = []
    number: int | None = None  # one number for the settle: its records are one word
    for customer in sorted(before):
        if before[customer] <= settled.parts.get(customer, frozenset()):
            continue  # it lost nothing: its events stay (others' come as they are dealt)
        number = number or next_settle(state, tenant)
        out.extend(_regroup(tenant, customer, before, settled, reason, event.event_id, number))
    # Every link the settle holds (a flag already open for it is not opened again); the
    # conflicts its customers held that it no longer holds are withdrawn.
    conflicts = tuple(held.conflict() for held in settled.held)
    kept = frozenset(
        (customer, conflict_flag(conflict, event).flag_id)
        for conflict in conflicts
        for customer in conflict.customers
    )
    out.extend(withdraw_conflicts(state, tenant, sorted(before), kept, reason))
    countries = new_phone_countries(view, ids)
    # Applied as any change (its members again, and the countries of its phones).
    change = IdentityChange(mine, settled.parts[mine], (), countries, conflicts=conflicts)
    return change, out


def _reach(
    state: BatchState, view: IdentityView, tenant: str, start: Iterable[str]
) -> tuple[list[str], list[Edge]] | None:
    """The customers reached (those holding the keys, then those holding a key of their
    edges) and their edges; None when one has no edges for all its keys, or too many."""
    todo = sorted({c for key in start if (c := view.customer_of(key)) is not None})
    seen: list[str] = []
    found: list[Edge] = []
    while todo:
        customer = todo.pop()
        if customer in seen:
            continue
        seen.append(customer)
        if len(seen) > MAX_SETTLED:
            return None
        mine = edges(state, tenant, customer)
        members = view.members(customer)
        if not members <= frozenset().union(*mine):
            return None  # merged before edges were kept: cannot be recomputed
        found.extend(mine)
        for key in sorted({k for edge in mine for k in edge} - members):
            other = view.customer_of(key)
            if other is not None and other not in seen:
                todo.append(other)
        # Customers keeping an edge with one of its keys that a limit held from them.
        for key in sorted(members):
            prefix = keys.held_at_prefix(tenant, key)
            for marker, _ in state.items(prefix):
                other = marker[len(prefix) :].decode()
                if other not in seen and other not in todo and view.members(other):
                    todo.append(other)
    return seen, found


def _write(
    state: BatchState,
    tenant: str,
    before: dict[str, frozenset[str]],
    settled: Settled,
    found: list[Edge],
    policy: IdentityPolicy,
    refused: Callable[[str], bool],
) -> None:
    """Ingest's graph as settled: members, owners of keys, and each edge with its customer."""
    for customer in before:
        for stored, _ in state.items(keys.edges_prefix(tenant, customer)):
            state.delete(stored)
        delete_members(state, tenant, customer)
    held = frozenset().union(*settled.parts.values())
    for key in sorted(frozenset().union(*before.values()) - held):
        state.delete(keys.identifier_key(tenant, key))
    for part, members in settled.parts.items():
        write_members(state, tenant, part, members)
        for key in members:
            state.put(keys.identifier_key(tenant, key), part.encode())
    carry_over_limit(state, tenant, before, settled.parts, over=True)
    owner = owners(settled.parts)
    for edge in set(found):
        linking = [key for key in edge if not refused(key)]
        target = home(linking, owner, policy)
        if target is not None:
            unheld = [k for k in linking if k not in settled.parts[target]]
            _put_edge(state, tenant, target, edge, [k for k in edge if refused(k)], held=unheld)


def _reason(settled: Settled, policy: IdentityPolicy) -> str:
    """Why customers were settled again, in words (a flag they lose says it)."""
    kinds = sorted({held.limit for held in settled.held}, key=policy.rank)
    limits = ", ".join(f"{policy.limits[kind]} {kind}" for kind in kinds)
    return f"identity limits ({limits or 'none pushed'}) settled again from its identifiers"


def _regroup(
    tenant: str,
    customer: str,
    before: dict[str, frozenset[str]],
    settled: Settled,
    reason: str,
    event_id: str,
    sequence: int,
) -> list[OutRecord]:
    """The regroup records of one customer settled again: to it, then to each new customer
    (it may have merged into one of those settled: it stands again)."""
    parts = {part: tuple(sorted(held)) for part, held in settled.parts.items()}
    held = frozenset().union(*settled.parts.values())
    dropped = tuple(sorted(before[customer] - held))
    record = RegroupRecord(
        tenant=tenant,
        customer=customer,
        parts=parts,
        reason=reason,
        decision_id=event_id,
        dropped=dropped,
        sequence=sequence,
    )
    value = record.to_bytes()
    return [
        OutRecord(
            "events",
            customer_key(tenant, target),
            value,
            ((HEADER_KIND, KIND_REGROUP), (HEADER_CUSTOMER_ID, target.encode())),
        )
        for target in [customer, *(part for part in parts if part not in before)]
    ]


def over_limit(
    state: BatchState,
    view: IdentityView,
    tenant: str,
    change: IdentityChange,
    ids: list[NormalisedId],
    policy: IdentityPolicy,
) -> bool:
    """Whether an event linking within the limits (`change`, not applied yet) touches a
    component over a limit: a customer it reaches is marked so (`ov/`, written by settles), its
    customer now holds more than a limit (through one event's own keys), or a key it brings
    that no customer holds is kept, held, in another customer's edge (`he/`).

    An ordinary event pays a point read per customer it reaches, and one read per key only
    for keys new to the graph."""
    if not policy.limits:
        return False
    if any(
        state.get(keys.over_limit_key(tenant, customer)) is not None
        for customer in (change.customer_id, *change.absorbed)
    ):
        return True
    if not change.changed:
        return False  # keys all its customer's already: none new, nothing held from it
    if over_limits(policy, change.members):
        return True
    return any(
        state.any_under(keys.held_at_prefix(tenant, ident.key))
        for ident in ids
        if ident.kind != "event" and view.customer_of(ident.key) is None
    )
