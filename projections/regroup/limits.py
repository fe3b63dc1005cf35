"""Limits that do not depend on arrival order: a component's customers from its edges alone.

A limit holds a link when joining two customers would give one more distinct identifiers of a
kind than the tenant allows. Which link is held must not depend on which event came first, so
the customers of a component are a function of its edges (the identifier sets single events
linked) and the tenant's policy: the edges are taken in a canonical order (by their
identifiers in priority order, then value), and within an edge the identifiers in priority
order; the first identifier of an edge anchors it, and each further one joins the anchor's
customer unless that would push a limit (a value a person confirmed always joins). The keys an
edge brings that no earlier edge had join together first, so a customer holding more than a
limit through its own events is never split. Customer ids come from their keys, as always.

The offline fold settles a whole component this way whenever it is over a limit; the live
ingest settles the customers an event reaches when its link would push a limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from projections.identity import (
    Conflict,
    IdentityPolicy,
    customer_id_for,
    identity_number,
)

Edge = frozenset[str]
"""The identifier keys one event linked together."""


@dataclass(frozen=True, slots=True)
class Held:
    """A link a limit held: the key, the customer whose event carried it, the one holding it."""

    key: str
    holder: str
    owner: str
    """"" when no event's customer holds the key (it came only with events held from it)."""
    limit: str
    """The kind whose limit the link would have pushed past."""
    allowed: int

    def conflict(self) -> Conflict:
        """The held link as the `Conflict` its `IDENTITY_CONFLICT` flag names."""
        kind, _ = identity_number(self.key)
        customers = tuple(sorted({self.holder, self.owner} - {""}))
        return Conflict(kind, shown(self.key), customers, self.limit, self.allowed)


@dataclass(frozen=True, slots=True)
class Settled:
    """A component's customers (id -> keys) and the links its limits held."""

    parts: Mapping[str, frozenset[str]]
    held: tuple[Held, ...]


def shown(key: str) -> str:
    """The value of a graph key as events show it (phones in E.164 when the country is known)."""
    kind, _, rest = key.partition(":")
    if kind == "phone" and rest.startswith("+"):
        country, _, nsn = rest[1:].partition(":")
        return f"+{country}{nsn}"
    return rest


def over_limits(policy: IdentityPolicy, keys: Iterable[str]) -> bool:
    """Whether these keys hold more of some kind than its limit (a component worth settling)."""
    if not policy.limits:
        return False
    seen: dict[str, set[str]] = {}
    for key in keys:
        kind, number = identity_number(key)
        if kind in policy.limits:
            seen.setdefault(kind, set()).add(number)
    return any(len(numbers) > policy.limits[kind] for kind, numbers in seen.items())


def canonical(edges: Iterable[Edge], rank: Callable[[str], int]) -> list[list[str]]:
    """The edges in the order they are settled: each as its keys in priority order, then value.

    Phones written nationally join their international spellings when these agree on the
    country (as `stitch_keys` links them): those joins come last, as edges of their own.
    """
    unique = {tuple(sorted(edge, key=lambda k: (rank(k), k))) for edge in edges if edge}
    ordered = sorted(unique, key=lambda edge: [(rank(k), k) for k in edge])
    spellings: dict[str, set[str]] = {}
    for edge in ordered:
        for key in edge:
            kind, number = identity_number(key)
            if kind == "phone":
                spellings.setdefault(number, set()).add(key)
    joins = []
    for _, same in sorted(spellings.items()):
        international = [k for k in same if k.count(":") == 2]
        countries = {k.split(":")[1] for k in international}
        if len(countries) == 1 and len(same) > len(international):
            joins.append(sorted(same))
    return [list(edge) for edge in ordered] + joins


def settle(
    tenant: str,
    edges: Iterable[Edge],
    policy: IdentityPolicy,
    refused: Callable[[str], bool] | None = None,
    exempt: Callable[[str], bool] | None = None,
) -> Settled:
    """The customers these edges make under the tenant's limits, and the links held.

    `refused` keys do not link (a person's block); `exempt` keys join past the limits (by
    default those a person confirmed, `policy.confirmed`, by their decided form).
    """
    refused = refused or _never
    if exempt is None:
        exempt = lambda key: _decided(key) in policy.confirmed  # noqa: E731
    limited = {kind: n for kind, n in policy.limits.items() if n > 0}

    def rank(key: str) -> int:
        return policy.rank(key.partition(":")[0])

    parent: dict[str, str] = {}
    counts: dict[str, dict[str, set[str]]] = {}

    def find(key: str) -> str:
        root = key
        while parent[root] != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    def union(a: str, b: str) -> str:
        small, large = sorted((a, b), key=lambda r: sum(map(len, counts[r].values())))
        parent[small] = large
        for kind, numbers in counts.pop(small).items():
            counts[large].setdefault(kind, set()).update(numbers)
        return large

    def pushes(a: str, b: str) -> str | None:
        for kind in policy.priority:
            if kind not in limited:
                continue
            mine, theirs = counts[a].get(kind, set()), counts[b].get(kind, set())
            total = len(mine | theirs)
            if total > limited[kind] and total > max(len(mine), len(theirs)):
                return kind
        return None

    held: list[tuple[str, str, str]] = []
    anchors: list[str] = []
    for edge in canonical(edges, rank):
        kept = [key for key in edge if not refused(key)]
        if not kept:
            continue
        anchors.append(kept[0])
        fresh = [key for key in kept if key not in parent]
        for key in fresh:
            parent[key] = key
            kind, number = identity_number(key)
            counts[key] = {kind: {number}} if kind in limited else {}
        for key in fresh[1:]:  # an event's own new keys are one part, whatever the limits
            root = find(fresh[0])
            if find(key) != root:
                union(root, find(key))
        anchor = kept[0]
        for key in kept[1:]:
            mine, theirs = find(anchor), find(key)
            if mine == theirs:
                continue
            pushed = None if exempt(key) else pushes(mine, theirs)
            if pushed is None:
                union(mine, theirs)
            else:
                held.append((key, anchor, pushed))
    grouped: dict[str, set[str]] = {}
    for key in parent:
        grouped.setdefault(find(key), set()).add(key)
    # Keys that only ever came held, with an event that followed another identifier, make
    # no customer: no event is theirs (an event of their own makes one).
    anchored = {find(key) for key in anchors}
    grouped = {root: keys for root, keys in grouped.items() if root in anchored}
    ids = {root: customer_id_for(tenant, keys) for root, keys in grouped.items()}
    found: dict[tuple[str, str, str], Held] = {}
    for key, anchor, kind in sorted(held):  # one per number: spellings of a phone are one
        holder, owner = ids[find(anchor)], ids.get(find(key), "")
        if holder != owner:
            number = _decided(key)
            found.setdefault((number, holder, owner), Held(key, holder, owner, kind, limited[kind]))
    return Settled(
        {
            ids[root]: frozenset(keys)
            for root, keys in sorted(grouped.items(), key=lambda i: ids[i[0]])
        },
        tuple(found[k] for k in sorted(found)),
    )


def owners(parts: Mapping[str, frozenset[str]]) -> dict[str, str]:
    """Key -> the customer holding it, for `home`."""
    return {key: part for part, keys in parts.items() for key in keys}


def home(own: Iterable[str], owner: Mapping[str, str], policy: IdentityPolicy) -> str | None:
    """The customer of an event's highest-priority key that a customer holds, or None: an
    event whose link a limit held follows its highest-priority identifier."""
    for key in sorted(own, key=lambda k: (policy.rank(k.partition(":")[0]), k)):
        if key in owner:
            return owner[key]
    return None


def _never(_key: str) -> bool:
    return False


def _decided(key: str) -> str:
    kind, number = identity_number(key)
    return f"{kind}:{number}"


class Reach:
    """The components of a tenant's identity graph with no limit applied, grown edge by edge:
    which edges each holds and whether it is over a limit (then it is settled, not merged)."""

    def __init__(self, policy: IdentityPolicy) -> None:
        self.policy = policy
        self.parent: dict[str, str] = {}
        self.edges: dict[str, set[Edge]] = {}
        self.counts: dict[str, dict[str, set[str]]] = {}
        self.over: set[str] = set()

    def find(self, key: str) -> str:
        """The root of a key's component."""
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def add(self, edge: Edge, joins: Iterable[str] = ()) -> str | None:
        """Add an edge (and keys it stitches to, `joins`); the root of its component, or None."""
        keys = sorted({*edge, *joins})
        if not keys:
            return None
        for key in keys:
            if key not in self.parent:
                self.parent[key] = key
                self.edges[key] = set()
                kind, number = identity_number(key)
                self.counts[key] = {kind: {number}} if kind in self.policy.limits else {}
        root = self.find(keys[0])
        for key in keys[1:]:
            other = self.find(key)
            if other == root:
                continue
            small, large = sorted((root, other), key=lambda r: len(self.edges[r]))
            self.parent[small] = large
            self.edges[large] |= self.edges.pop(small)
            for kind, numbers in self.counts.pop(small).items():
                self.counts[large].setdefault(kind, set()).update(numbers)
            if small in self.over:
                self.over.discard(small)
                self.over.add(large)
            root = large
        if edge:
            self.edges[root].add(edge)
        limits = self.policy.limits
        if any(len(n) > limits[kind] > 0 for kind, n in self.counts[root].items()):
            self.over.add(root)
        return root

    def keys(self, root: str) -> frozenset[str]:
        """The keys of a component (walks the component: only for one being settled)."""
        return frozenset(key for edge in self.edges[root] for key in edge)
