"""Identity stitching: events that share a normalised identifier belong to one customer.

The graph is kept as an index (key -> customer id) and member sets (customer id -> keys).
`link` is pure: it reads through an `IdentityView` and returns an `IdentityChange` that the
driver (an in-memory dict here, RocksDB in the worker) writes back. A customer's id is derived
from the smallest key it holds, so the id that survives a merge does not depend on the order
the events arrived in.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

from projections.flags import Flag, Severity, flag_id
from projections.identifiers import GraphHasher, NormalisedId, normalise
from schemas.events import DECISION_TYPES, Event

PRIORITY: tuple[str, ...] = (
    "customer_ref",
    "membership_id",
    "email",
    "phone",
    "vin",
    "plate",
    "order_id",
    "card_token",
    "anonymous_id",
)
"""Which identifier an event follows when a merge is held: the first kind it carries."""

NO_DECISIONS: Mapping[str, str] = MappingProxyType({})
"""No value blocked by a person's decision."""

NO_LIMITS: Mapping[str, int] = MappingProxyType({})
"""No limit on any kind (a tenant switches one off with `0`)."""

DEFAULT_LIMITS: Mapping[str, int] = MappingProxyType(
    {"customer_ref": 1, "membership_id": 1, "email": 3, "phone": 3}
)
"""Distinct identifiers of a kind one customer may hold where a tenant sets none: one
reference and one membership, a few e-mails and phones; plates, VINs, orders, card tokens and
sessions are unlimited (a household shares cars, a customer orders often)."""


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """A tenant's identity rules: values blocked from linking, limits per customer, priority."""

    blocked: frozenset[str] = frozenset()
    """Identifier keys that never link (phones as `phone:<national significant number>`)."""
    blocked_patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    limits: Mapping[str, int] = field(default_factory=lambda: DEFAULT_LIMITS)
    priority: tuple[str, ...] = PRIORITY
    decided: Mapping[str, str] = field(default_factory=lambda: NO_DECISIONS)
    """Blocked key -> the decision that blocked it (who, when, why), for blocks by a person."""
    confirmed: frozenset[str] = frozenset()
    """Blocked keys a person confirmed as one person's: they merge past the limits."""
    confirmed_by: Mapping[str, str] = field(default_factory=lambda: NO_DECISIONS)
    """Blocked key -> the confirmed merge in words (`decision_text`), listed with its merges."""

    def __call__(self, ident: NormalisedId, /) -> str | None:
        """Why this tenant never links on the identifier, or None."""
        if not (self.decided or self.blocked or self.blocked_patterns):
            return None  # most tenants block nothing: no key to spell for each identifier
        key = blocked_key(ident)
        if key in self.decided:
            return self.decided[key]
        if key in self.blocked or ident.key in self.blocked:
            return "blocked for this tenant"
        for kind, pattern in self.blocked_patterns:
            if kind == ident.kind and pattern.search(ident.value):
                return f"blocked for this tenant (matches {pattern.pattern})"
        return None

    def rank(self, kind: str) -> int:
        """The position of a kind in the priority order (unknown kinds last)."""
        return self.priority.index(kind) if kind in self.priority else len(self.priority)


def blocked_key(ident: NormalisedId) -> str:
    """The key a blocked value is stored under (phones by national number, whatever the form)."""
    return f"phone:{ident.phone.number}" if ident.phone is not None else ident.key


def identity_number(key: str) -> tuple[str, str]:
    """The kind of an identifier key and the value counted against limits (phones by number)."""
    kind, _, rest = key.partition(":")
    if kind == "phone":
        return kind, rest.rpartition(":")[2]
    return kind, rest


def _counts(keys: Iterable[str]) -> dict[str, int]:
    seen: dict[str, set[str]] = {}
    for key in keys:
        kind, number = identity_number(key)
        seen.setdefault(kind, set()).add(number)
    return {kind: len(numbers) for kind, numbers in seen.items()}


def breached(policy: IdentityPolicy, parts: Iterable[frozenset[str]]) -> str | None:
    """The first kind whose limit joining these key sets would push past, or None."""
    if not policy.limits:
        return None
    parts = [part for part in parts if part]
    if len(parts) < 2:
        return None  # one customer, nothing new: most events; no counting
    if len(parts) == 2 and not any(identity_number(k)[0] in policy.limits for k in parts[1]):
        return None  # one customer and new keys of no limited kind: no limit can be pushed
    total = _counts(k for part in parts for k in part)
    each = [_counts(part) for part in parts]
    for kind in policy.priority:
        limit = policy.limits.get(kind)
        count = total.get(kind, 0)
        if limit is not None and count > limit and count > max(c.get(kind, 0) for c in each):
            return kind
    return None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A link held back: the identifier and the customers it would have joined."""

    kind: str
    value: str
    customers: tuple[str, ...]
    limit: str
    """The kind whose limit the merge would have broken."""
    allowed: int = 0
    """That kind's limit."""


class IdentityView(Protocol):
    """Read access to one tenant's identity graph."""

    def customer_of(self, key: str) -> str | None:
        """The customer that holds this identifier key, if any."""

    def members(self, customer_id: str) -> frozenset[str]:
        """The identifier keys a customer holds."""

    def phone_countries(self, nsn: str) -> frozenset[int]:
        """Country codes of international phone keys registered with this national number."""


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """What linking one event's identifiers does to the graph."""

    customer_id: str
    members: frozenset[str]
    absorbed: tuple[str, ...] = ()
    """Customer ids that are now `customer_id` (merged or renamed), sorted."""
    new_phone_countries: tuple[tuple[str, int], ...] = ()
    changed: bool = True
    conflicts: tuple[Conflict, ...] = ()
    """Links held back by the tenant's limits (the graph does not record them)."""
    limited: bool = False
    """The link pushed a limit (held, or let through by a person's confirmation): the live
    ingest settles the customers it reaches (`projections.regroup.limits`)."""


def customer_id_for(tenant: str, keys: Iterable[str]) -> str:
    """The deterministic id of a customer holding these keys."""
    return _id_of_smallest(tenant, min(keys))


def _id_of_smallest(tenant: str, smallest: str) -> str:
    digest = hashlib.blake2b(f"{tenant}\x00{smallest}".encode(), digest_size=8).hexdigest()
    return f"cus_{digest}"


@functools.lru_cache(maxsize=256)
def _smallest(keys: frozenset[str]) -> str:
    # a customer's key set is held as one frozenset: its smallest key is found once, not by a
    # walk over its keys (which grow with the customer) on each of its events
    return min(keys)


def _customer_id_of(tenant: str, keys: frozenset[str]) -> str:
    return _id_of_smallest(tenant, _smallest(keys))


def stitch_keys(view: IdentityView, ids: Iterable[NormalisedId]) -> set[str]:
    """The keys whose owners this event's identifiers stitch to (phones cross formats)."""
    keys: set[str] = set()
    for ident in ids:
        keys.add(ident.key)
        phone = ident.phone
        if phone is None or phone.national_key is None:
            continue
        countries = view.phone_countries(phone.number)
        # A national number joins international ones only when they agree on the country.
        if phone.country_code is None:
            if len(countries) == 1:
                keys.update(f"phone:+{cc}:{phone.number}" for cc in countries)
        elif countries <= {phone.country_code}:
            keys.add(phone.national_key)
    return keys


def new_phone_countries(
    view: IdentityView, ids: Iterable[NormalisedId]
) -> tuple[tuple[str, int], ...]:
    """The (national number, country code) pairs of the nationally keyed phones among `ids`
    whose country the graph has not yet seen with that number, sorted."""
    return tuple(
        sorted(
            (ident.phone.number, ident.phone.country_code)
            for ident in ids
            if ident.phone is not None
            and ident.phone.country_code is not None
            and ident.phone.national_key is not None
            and ident.phone.country_code not in view.phone_countries(ident.phone.number)
        )
    )


def _owners(
    view: IdentityView, ids: Iterable[NormalisedId], stitched: Iterable[str] | None = None
) -> list[str]:
    keys = stitch_keys(view, ids) if stitched is None else stitched
    return sorted({owner for key in keys if (owner := view.customer_of(key)) is not None})


def link(
    view: IdentityView,
    tenant: str,
    ids: Iterable[NormalisedId],
    policy: IdentityPolicy | None = None,
    stitched: Iterable[str] | None = None,
) -> IdentityChange:
    """Attach an event's identifiers to the graph, merging the customers they join.

    With a `policy`, a merge that would give a customer more identifiers of a kind than its
    limit is held: the event follows its highest-priority identifier and each link left out
    is returned as a `Conflict`. `stitched` is `stitch_keys(view, ids)` when the caller has
    worked it out already (read from the same graph).
    """
    ids = list(ids)
    owners = _owners(view, ids, stitched)
    member_sets = [view.members(owner) for owner in owners]
    own_keys = {ident.key for ident in ids}
    if len(owners) == 1 and own_keys <= member_sets[0]:
        # Nothing new for one customer (most events): what the general path below gives,
        # without copying the customer's key set, which grows with its history.
        held = member_sets[0]
        customer_id = _customer_id_of(tenant, held)
        countries = new_phone_countries(view, ids)
        if owners[0] == customer_id:
            return IdentityChange(
                customer_id, held, changed=bool(countries), new_phone_countries=countries
            )
        return IdentityChange(customer_id, held, (owners[0],), countries)
    fresh = frozenset(own_keys.difference(*member_sets))
    if policy is not None and breached(policy, [*member_sets, fresh]) is not None:
        return _held_link(view, tenant, ids, policy)
    frozen = frozenset(own_keys).union(*member_sets)
    # the smallest of the held sets' smallest keys and the event's own: no walk over the sets
    customer_id = _id_of_smallest(
        tenant, min([*own_keys, *(_smallest(m) for m in member_sets if m)])
    )
    new_countries = new_phone_countries(view, ids)
    if len(owners) == 1 and owners[0] == customer_id and own_keys <= view.members(customer_id):
        return IdentityChange(
            customer_id, frozen, changed=bool(new_countries), new_phone_countries=new_countries
        )
    absorbed = tuple(owner for owner in owners if owner != customer_id)
    return IdentityChange(customer_id, frozen, absorbed, new_countries)


def _held_link(
    view: IdentityView, tenant: str, ids: list[NormalisedId], policy: IdentityPolicy
) -> IdentityChange:
    """Link identifier by identifier in priority order, holding each one past a limit."""
    members: set[str] = set()
    accepted: set[str] = set()
    held: list[tuple[NormalisedId, tuple[str, ...], str]] = []
    for ident in sorted(ids, key=lambda i: (policy.rank(i.kind), i.key)):
        owners = [o for o in _owners(view, [ident]) if o not in accepted]
        part = frozenset({ident.key}.union(*(view.members(o) for o in owners))) - members
        exempt = blocked_key(ident) in policy.confirmed
        joining = [frozenset(members), part]
        kind = breached(policy, joining) if members and part and not exempt else None
        if kind is not None:
            held.append((ident, tuple(owners), kind))
            continue
        members |= part
        accepted.update(owners)
    frozen = frozenset(members)
    customer_id = customer_id_for(tenant, frozen)
    conflicts = tuple(
        Conflict(
            ident.kind,
            ident.named,
            tuple(sorted({customer_id, *owners})),
            kind,
            policy.limits.get(kind, 0),
        )
        for ident, owners, kind in held
    )
    new_countries = new_phone_countries(view, (i for i in ids if i.key in frozen))
    if accepted == {customer_id} and frozen == view.members(customer_id):
        return IdentityChange(
            customer_id,
            frozen,
            changed=bool(new_countries),
            new_phone_countries=new_countries,
            conflicts=conflicts,
            limited=True,
        )
    absorbed = tuple(sorted(owner for owner in accepted if owner != customer_id))
    return IdentityChange(
        customer_id, frozen, absorbed, new_countries, conflicts=conflicts, limited=True
    )


@dataclass(slots=True)
class MemoryIdentity:
    """An in-memory identity graph for one tenant: the driver used offline and in tests."""

    index: dict[str, str] = field(default_factory=dict)
    member_sets: dict[str, frozenset[str]] = field(default_factory=dict)
    countries: dict[str, frozenset[int]] = field(default_factory=dict)

    def customer_of(self, key: str) -> str | None:
        """The customer that holds this identifier key, if any."""
        return self.index.get(key)

    def members(self, customer_id: str) -> frozenset[str]:
        """The identifier keys a customer holds."""
        return self.member_sets.get(customer_id, frozenset())

    def phone_countries(self, nsn: str) -> frozenset[int]:
        """Country codes of international phone keys registered with this national number."""
        return self.countries.get(nsn, frozenset())

    def apply(self, change: IdentityChange) -> None:
        """Write a change back."""
        if not change.changed:
            return
        held = self.member_sets.get(change.customer_id, frozenset())
        for old in change.absorbed:
            self.member_sets.pop(old, None)
        self.member_sets[change.customer_id] = change.members
        # the keys the customer did not hold (new, or its absorbed customers'): the index of a
        # customer's held keys is not written again each time it gains one
        self.index.update(dict.fromkeys(change.members - held, change.customer_id))
        for nsn, country in change.new_phone_countries:
            self.countries[nsn] = self.countries.get(nsn, frozenset()) | {country}

    def as_mapping(self) -> Mapping[str, frozenset[str]]:
        """Customer id -> keys, for inspection."""
        return dict(self.member_sets)


IDENTITY_CONFLICT = "IDENTITY_CONFLICT"
"""The flag a held link opens on every customer it would have joined."""


def conflict_flag(conflict: Conflict, event: Event) -> Flag:
    """The `IDENTITY_CONFLICT` flag of a held link, opened by the event that carried it."""
    customers = " and ".join(conflict.customers)
    plural = "" if conflict.allowed == 1 else "s"
    return Flag(
        flag_id=flag_id(IDENTITY_CONFLICT, f"{conflict.kind}:{conflict.value}\x00{customers}"),
        rule=IDENTITY_CONFLICT,
        severity=Severity.MEDIUM,
        message=(
            f"{conflict.kind} {conflict.value} ({event.source.system}) would have joined "
            f"{customers}: one customer would hold more than {conflict.allowed} "
            f"{conflict.limit}{plural}; not merged until a person decides"
        ),
        event_ids=(event.event_id,),
        opened_at=event.occurred_at,
        systems=(event.source.system,),
        sites=(event.source.site,) if event.source.site else (),
    )


@dataclass(frozen=True, slots=True)
class Why:
    """Why an event joined its customer: the identifier that linked it, the customers it merged."""

    linked_by: str | None
    """`kind value` of the identifier the customer already held, or None: the event was first."""
    merged: tuple[tuple[str, str], ...] = ()
    """(customer id before the merge, `kind value` that reached it), when the event merged."""


def explain(
    view: IdentityView,
    ids: Iterable[NormalisedId],
    change: IdentityChange,
    policy: IdentityPolicy | None = None,
) -> Why:
    """Why `change` puts the event where it does; read the graph before the change is applied."""
    joined = {*change.absorbed, change.customer_id}
    policy = policy or IdentityPolicy()
    reached: dict[str, str] = {}
    for ident in sorted(ids, key=lambda i: (policy.rank(i.kind), i.key)):
        for owner in _owners(view, [ident]):
            if owner in joined:
                reached.setdefault(owner, f"{ident.kind} {ident.value}")
    first = next(iter(reached.values()), None)
    merged = tuple(sorted(reached.items())) if len(reached) > 1 else ()
    return Why(first, merged)


def decide(
    policy: IdentityPolicy,
    decisions: Iterable[Event],
    region: str | None,
    hasher: GraphHasher | None = None,
) -> IdentityPolicy:
    """The policy after a tenant's identity decisions, taken in time order (then event id).

    `identity.blocked` and `identity.split` stop the identifiers its customer carries from
    linking; `identity.unblocked` lifts that (a block from the settings too);
    `identity.merge_confirmed` lifts it and lets the identifier merge past the limits. The
    order the decisions arrived in does not matter.
    """
    blocked = set(policy.blocked)
    decided = dict(policy.decided)
    confirmed = set(policy.confirmed)
    confirmed_by = dict(policy.confirmed_by)
    for event in sorted(decisions, key=lambda e: (e.occurred_at, e.event_id)):
        for kind, raw in event.customer.identifiers():
            key = blocked_key(normalise(kind, raw, region, hasher))
            who = getattr(event.payload, "decided_by", "?")
            why = getattr(event.payload, "reason", "")
            day = event.occurred_at.date().isoformat()
            if event.type in ("identity.blocked", "identity.split"):
                verb = "blocked" if event.type == "identity.blocked" else "split"
                decided[key] = f"{verb} by {who} on {day}: {why}"
                confirmed.discard(key)
                confirmed_by.pop(key, None)
            else:
                blocked.discard(key)
                decided.pop(key, None)
                if event.type == "identity.merge_confirmed":
                    confirmed.add(key)
                    confirmed_by[key] = decision_text(event)
    return replace(
        policy,
        blocked=frozenset(blocked),
        decided=MappingProxyType(decided),
        confirmed=frozenset(confirmed),
        confirmed_by=MappingProxyType(confirmed_by),
    )


def decision_text(decision: Event) -> str:
    """A person's decision in words: `merge confirmed by r.khan on 2026-12-02: same person`."""
    verb = decision.type.removeprefix("identity.").replace("_", " ")
    who = getattr(decision.payload, "decided_by", "?")
    why = getattr(decision.payload, "reason", "")
    day = decision.occurred_at.date().isoformat()
    return f"{verb} by {who} on {day}: {why}" if why else f"{verb} by {who} on {day}"


def confirmed_through(
    policy: IdentityPolicy, identifier: str, region: str | None, hasher: GraphHasher | None = None
) -> str | None:
    """The confirmed merge (in words) of the value a merge went through (`kind value`), or None."""
    if not policy.confirmed_by:
        return None
    kind, _, value = identifier.partition(" ")
    return policy.confirmed_by.get(blocked_key(normalise(kind, value, region, hasher)))


def decision_writes(
    event: Event, region: str | None, hasher: GraphHasher | None = None
) -> list[tuple[str, str | None]]:
    """What a decision event does to a live graph's blocks: (blocked key, reason or None).

    None lifts a block. Other events give nothing. The live stage applies these in arrival
    order and only to later events (it does not split customers already merged).
    """
    if event.type not in DECISION_TYPES:
        return []
    single = IdentityPolicy()
    after = decide(single, [event], region, hasher)
    return [
        (key, after.decided.get(key))
        for key in sorted(
            blocked_key(normalise(kind, raw, region, hasher))
            for kind, raw in event.customer.identifiers()
        )
    ]
