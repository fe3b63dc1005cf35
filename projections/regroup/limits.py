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

from bisect import bisect_left
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


Moment = tuple[int, tuple[tuple[int, str], ...]]
"""Where an edge comes in the canonical order: `(0, its keys' (rank, key)s)` for an event's
edge, `(1, ((n, ""),))` for the n-th join of a phone's spellings (those come last)."""


def _ordered(edges: Iterable[Edge], rank: Callable[[str], int]) -> list[tuple[Moment, list[str]]]:
    unique = {tuple(sorted(edge, key=lambda k: (rank(k), k))) for edge in edges if edge}
    ordered = sorted((tuple((rank(k), k) for k in edge), edge) for edge in unique)
    spellings: dict[str, set[str]] = {}
    for _, edge in ordered:
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
    return [((0, order), list(edge)) for order, edge in ordered] + [
        ((1, ((n, ""),)), join) for n, join in enumerate(joins)
    ]


def canonical(edges: Iterable[Edge], rank: Callable[[str], int]) -> list[list[str]]:
    """The edges in the order they are settled: each as its keys in priority order, then value.

    Phones written nationally join their international spellings when these agree on the
    country (as `stitch_keys` links them): those joins come last, as edges of their own.
    """
    return [edge for _, edge in _ordered(edges, rank)]


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
    return Settlement(tenant, edges, policy, refused, exempt).settled()


@dataclass(frozen=True, slots=True)
class Added:
    """What one more edge did to a settled component: a customer of its own, new keys for the
    customer of its first key, or nothing."""

    customer: str | None
    """The customer the edge made of its new keys (its other links held), or None."""
    held: tuple[Held, ...] = ()
    """The links that customer's keys were held from."""
    joined: frozenset[str] = frozenset()
    """New keys the edge gave the customer of its first key."""


class Settlement:
    """A component settled edge by edge in the canonical order (`settle`), remembering when
    each key came and how each customer grew, so that one more edge is often settled without
    going over the others again (`add`): the cost of a value shared very widely stays linear.
    """

    def __init__(
        self,
        tenant: str,
        edges: Iterable[Edge],
        policy: IdentityPolicy,
        refused: Callable[[str], bool] | None = None,
        exempt: Callable[[str], bool] | None = None,
    ) -> None:
        self.tenant = tenant
        self.policy = policy
        self.refused = refused or _never
        self.exempt = exempt or (lambda key: _decided(key) in policy.confirmed)
        self.limits = {kind: n for kind, n in policy.limits.items() if n > 0}
        self.kinds = tuple(kind for kind in policy.priority if kind in self.limits)
        """The limited kinds in priority order: the first one a join pushes is named."""
        self.edges: set[tuple[str, ...]] = set()
        self.came: dict[str, Moment] = {}
        """Key -> the moment of the first edge keeping it."""
        self.link: dict[str, tuple[str, Moment]] = {}
        """Key -> the key it was joined under and when (roots have none); never compressed,
        so where a key stood at an earlier moment can be found again."""
        self.size: dict[str, int] = {}
        self.numbers: dict[str, dict[str, set[str]]] = {}
        """Root -> limited kind -> the numbers its customer holds."""
        self.grown: dict[str, list[tuple[Moment, tuple[int, ...]]]] = {}
        """Root -> (moment, how many numbers of each of `kinds`) each time its part grew."""
        self.known: set[tuple[str, str]] = set()
        self.anchors: list[str] = []
        self.links: list[tuple[str, str, str]] = []
        """The links held: (key, the anchor of the edge carrying it, the kind pushed)."""
        for moment, edge in _ordered(edges, self.rank):
            if moment[0] == 0:
                self.edges.add(tuple(edge))
                self.known.update(map(identity_number, edge))
            self._take(moment, edge)
        grouped: dict[str, set[str]] = {}
        for key in self.came:
            grouped.setdefault(self.find(key), set()).add(key)
        # Keys that only ever came held, with an event that followed another identifier, make
        # no customer: no event is theirs (an event of their own makes one).
        self.anchored = {self.find(key) for key in self.anchors}
        self.ids = {
            root: customer_id_for(tenant, keys)
            for root, keys in grouped.items()
            if root in self.anchored
        }
        self.parts = {self.ids[root]: frozenset(grouped[root]) for root in self.ids}
        self.least: dict[str, str] = {}
        self.found: dict[tuple[str, str, str], Held] = {}
        """(decided form of the key, holder, owner) -> the held link (one per number)."""
        self._hold(self.links)

    def rank(self, key: str) -> int:
        """A key's kind's place in the tenant's priority order."""
        return self.policy.rank(key.partition(":")[0])

    def find(self, key: str) -> str:
        """The root of the part holding a key once every edge is settled."""
        while key in self.link:
            key = self.link[key][0]
        return key

    def customer_of(self, key: str) -> str | None:
        """The customer holding a key, or None."""
        return self.ids.get(self.find(key)) if key in self.came else None

    def settled(self) -> Settled:
        """The component's customers and held links, as `settle` gives them."""
        return Settled(
            {customer: self.parts[customer] for customer in sorted(self.parts)},
            tuple(self.found[k] for k in sorted(self.found)),
        )

    def add(self, edge: Edge) -> Added | None:
        """Settle one more edge, when that leaves every other decision as it was; else None
        (settle the component again from its edges).

        An edge already known changes nothing; so does one whose keys were all one part
        already where it comes in the canonical order. One whose first key is new and whose
        other keys a limit would have held from its new keys there makes a customer of its
        own of those keys: no later edge holds them, so no later decision changes.
        """
        ordered = tuple(sorted(edge, key=lambda k: (self.rank(k), k)))
        if not ordered or ordered in self.edges:
            return Added(None)
        moment: Moment = (0, tuple((self.rank(k), k) for k in ordered))
        fresh = [key for key in ordered if key not in self.came]
        numbers = [identity_number(key) for key in fresh]
        if (
            any(map(self.refused, ordered))
            or any(self.came[key] > moment for key in ordered if key in self.came)
            or len(set(numbers)) < len(numbers)
            or any(number in self.known for number in numbers)  # a phone's other spelling
        ):
            return None
        if not fresh or ordered[0] != fresh[0]:
            return self._join(ordered, fresh, moment)
        mine = tuple(sum(1 for kind, _ in numbers if kind == limited) for limited in self.kinds)
        links = []
        for key in ordered:
            if key in fresh:
                continue
            if self.exempt(key):
                return None
            history = self.grown[self._find_before(key, moment)]
            grew = bisect_left(history, moment, key=lambda entry: entry[0])
            pushed = self._pushed(mine, history[grew - 1][1]) if grew else None
            if pushed is None:
                return None
            links.append((key, ordered[0], pushed))
        self.edges.add(ordered)
        self._take(moment, fresh)  # new keys only: one part (anchored), held from the rest
        self.links.extend(links)
        root = self.find(ordered[0])
        self.anchored.add(root)
        customer = self.ids[root] = customer_id_for(self.tenant, fresh)
        self.parts[customer] = frozenset(fresh)
        return Added(customer, tuple(self._hold(links)))

    def _join(self, ordered: tuple[str, ...], fresh: list[str], moment: Moment) -> Added | None:
        """An edge whose first key a customer holds: it changes nothing else when its known
        keys were one part already where it comes, and its new keys are of no limited kind
        (they join that part, whose counts stay) and do not change the customer's id."""
        known = [key for key in ordered if key not in fresh]
        if len(parts := {self._find_before(key, moment) for key in known}) > 1:
            return None
        root = self.find(ordered[0])
        if root not in self.anchored:
            return None
        customer = self.ids[root]
        if fresh and (
            any(identity_number(key)[0] in self.kinds for key in fresh)
            or min(fresh) < self._least(customer)
        ):
            return None
        (part,) = parts
        for key in fresh:  # joined under the part as it stood then: where it stands later follows
            self.came[key] = moment
            self.link[key] = (part, moment)
            self.known.add(identity_number(key))
        self.edges.add(ordered)
        self.anchors.append(ordered[0])
        if fresh:
            self.parts[customer] = self.parts[customer] | frozenset(fresh)
        return Added(None, joined=frozenset(fresh))

    def _least(self, customer: str) -> str:
        """The smallest key of a customer (its id comes from it)."""
        if customer not in self.least:
            self.least[customer] = min(self.parts[customer])
        return self.least[customer]

    def _pushed(self, mine: tuple[int, ...], theirs: tuple[int, ...]) -> str | None:
        """The kind joining two parts holding distinct numbers would push past its limit."""
        for kind, a, b in zip(self.kinds, mine, theirs, strict=True):
            if a + b > self.limits[kind] and a + b > max(a, b):
                return kind
        return None

    def _find_before(self, key: str, moment: Moment) -> str:
        while key in self.link and self.link[key][1] < moment:
            key = self.link[key][0]
        return key

    def _take(self, moment: Moment, edge: list[str]) -> None:
        kept = [key for key in edge if not self.refused(key)]
        if not kept:
            return
        self.anchors.append(kept[0])
        fresh = [key for key in kept if key not in self.came]
        for key in fresh:
            self.came[key] = moment
            self.size[key] = 1
            kind, number = identity_number(key)
            self.known.add((kind, number))
            self.numbers[key] = {kind: {number}} if kind in self.kinds else {}
            self.grown[key] = [(moment, self._sizes(key))]
        for key in fresh[1:]:  # an event's own new keys are one part, whatever the limits
            root, other = self.find(fresh[0]), self.find(key)
            if other != root:
                self._union(root, other, moment)
        anchor = kept[0]
        for key in kept[1:]:
            mine, theirs = self.find(anchor), self.find(key)
            if mine == theirs:
                continue
            pushed = None if self.exempt(key) else self._pushes(mine, theirs)
            if pushed is None:
                self._union(mine, theirs, moment)
            else:
                self.links.append((key, anchor, pushed))

    def _sizes(self, root: str) -> tuple[int, ...]:
        return tuple(len(self.numbers[root].get(kind, ())) for kind in self.kinds)

    def _union(self, a: str, b: str, moment: Moment) -> None:
        small, large = sorted((a, b), key=self.size.__getitem__)
        self.link[small] = (large, moment)
        self.size[large] += self.size[small]
        for kind, numbers in self.numbers.pop(small).items():
            self.numbers[large].setdefault(kind, set()).update(numbers)
        self.grown[large].append((moment, self._sizes(large)))

    def _pushes(self, a: str, b: str) -> str | None:
        for kind in self.kinds:
            mine, theirs = self.numbers[a].get(kind, set()), self.numbers[b].get(kind, set())
            total = len(mine | theirs)
            if total > self.limits[kind] and total > max(len(mine), len(theirs)):
                return kind
        return None

    def _hold(self, links: Iterable[tuple[str, str, str]]) -> list[Held]:
        added = []
        for key, anchor, kind in sorted(links):  # one per number: spellings of a phone are one
            holder, owner = self.ids[self.find(anchor)], self.ids.get(self.find(key), "")
            found = (_decided(key), holder, owner)
            if holder != owner and found not in self.found:
                self.found[found] = Held(key, holder, owner, kind, self.limits[kind])
                added.append(self.found[found])
        return added


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
        self.gone: list[str] = []
        """Roots of components over a limit that merged into another, until the ledger forgets
        what it kept of them."""

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
        grown = False  # a new key or a union: only then can the component's counts change
        for key in keys:
            if key not in self.parent:
                grown = True
                self.parent[key] = key
                self.edges[key] = set()
                kind, number = identity_number(key)
                self.counts[key] = {kind: {number}} if kind in self.policy.limits else {}
        root = self.find(keys[0])
        for key in keys[1:]:
            other = self.find(key)
            if other == root:
                continue
            grown = True
            small, large = sorted((root, other), key=lambda r: len(self.edges[r]))
            self.parent[small] = large
            self.edges[large] |= self.edges.pop(small)
            for kind, numbers in self.counts.pop(small).items():
                self.counts[large].setdefault(kind, set()).update(numbers)
            if small in self.over:
                self.over.discard(small)
                self.over.add(large)
                self.gone.append(small)
            root = large
        if edge:
            self.edges[root].add(edge)
        limits = self.policy.limits
        if grown and any(len(n) > limits[kind] > 0 for kind, n in self.counts[root].items()):
            self.over.add(root)
        return root

    def keys(self, root: str) -> frozenset[str]:
        """The keys of a component (walks the component: only for one being settled)."""
        return frozenset(key for edge in self.edges[root] for key in edge)
