"""A customer's identity graph recomputed from its edges, without the links people refused.

Why edges and not the events: ingest, the single writer of the graph, holds no events. For
each customer it keeps the distinct sets of identifier keys that one event linked together
(an *edge*), deduplicated by content, so the record grows with the distinct combinations a
customer was seen with, not with its event count. Splitting a customer is then a union-find
over its edges with the refused keys left out; each component's id is `customer_id_for` its
keys, the same id the offline fold gives the same events (ids come from identifiers alone),
so the result does not depend on the order events or decisions arrived in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from projections.identity import customer_id_for, identity_number
from projections.regroup.disjoint import DisjointSets

Edge = frozenset[str]
"""The identifier keys one event linked together (its own keys and those it stitched to)."""


def decided_form(key: str) -> str:
    """The key a person's decision about a graph key is stored under (phones by number)."""
    kind, number = identity_number(key)
    return f"{kind}:{number}"


def edge_digest(edge: Iterable[str]) -> str:
    """A short, stable name of an edge's content, so an edge seen again is stored once."""
    text = "\x00".join(sorted(edge))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def components(
    tenant: str, edges: Iterable[Edge], refused: Callable[[str], bool]
) -> Mapping[str, frozenset[str]]:
    """Customer id -> keys of each component the edges make once refused keys are left out.

    `refused` takes a graph key. An edge left with no key (every key refused) makes no
    component: its events stand alone, which is the journey stage's business, not the graph's.
    """
    sets: DisjointSets[str] = DisjointSets()
    for edge in edges:
        kept = sorted(key for key in edge if not refused(key))
        for key in kept:
            sets.union(key, kept[0])
    # A phone written nationally joins its international spellings when they agree on the
    # country, as `stitch_keys` links it (and `fold_all` groups it).
    spellings: dict[str, list[str]] = {}
    for key in sets.items():
        kind, number = identity_number(key)
        if kind == "phone":
            spellings.setdefault(number, []).append(key)
    for same in spellings.values():
        countries = {key.split(":")[1] for key in same if key.count(":") == 2}
        if len(countries) == 1 and len(same) > len([k for k in same if k.count(":") == 2]):
            for key in same:
                sets.union(key, same[0])
    grouped = sets.groups().values()
    return {customer_id_for(tenant, keys): frozenset(keys) for keys in sorted(grouped, key=min)}


@dataclass(frozen=True, slots=True)
class GraphSplit:
    """What splitting one customer does to ingest's graph: the customers and edges it leaves."""

    customer: str
    parts: Mapping[str, frozenset[str]]
    """Customer id -> keys, for every customer the split leaves (`customer` among them or not)."""
    dropped: frozenset[str]
    """Keys of the customer that no customer holds any more (refused now)."""
    edges: Mapping[str, tuple[Edge, ...]]
    """Customer id -> its edges; an edge left with no linking key belongs to none."""


def split_graph(
    tenant: str,
    customer: str,
    members: frozenset[str],
    edges: Iterable[Edge],
    refused: Callable[[str], bool],
) -> GraphSplit | None:
    """The split of `customer` once refused keys no longer link, or None if nothing changes.

    None as well when the edges do not cover the customer's linking keys: a customer merged
    before edges were kept cannot be recomputed here (a rebuild from the log splits it).
    """
    edges = list(edges)
    linking = frozenset(key for key in members if not refused(key))
    if not linking <= frozenset().union(*edges):
        return None
    parts = components(tenant, edges, refused)
    if dict(parts) == {customer: members}:
        return None
    owner = {key: part for part, keys in parts.items() for key in keys}
    dealt: dict[str, list[Edge]] = {part: [] for part in parts}
    for edge in sorted(edges, key=sorted):
        kept = sorted(key for key in edge if not refused(key))
        if kept:
            dealt[owner[kept[0]]].append(edge)
    held = frozenset().union(*parts.values())
    return GraphSplit(
        customer,
        parts,
        members - held,
        {part: tuple(found) for part, found in dealt.items()},
    )
