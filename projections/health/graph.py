"""Graph health figures from a graph's customers and edges, in one pass and bounded memory.

The live worker reads its state customer by customer (members, then the edges: identifier sets
one event linked) and keeps only the top entries, so a scan of a large tenant holds one
customer's edges and `top` rows at a time.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from projections.ledger import STRONG_KINDS

MAX_TOP = 100
"""The most rows a top list keeps."""


def kind_of(key: str) -> str:
    """The kind of an identity-graph key (`email:a@b.example` -> `email`)."""
    return key.partition(":")[0]


def distinct_values(edge: Collection[str]) -> set[str]:
    """An edge's keys, one per value: a national phone key stitched beside its international
    form (`phone:7123…` with `phone:+44:7123…`) is the same number, counted once."""
    international = {k.rpartition(":")[2] for k in edge if k.startswith("phone:+")}
    return {
        k
        for k in edge
        if not (k.startswith("phone:") and k.count(":") == 1 and k[6:] in international)
    }


def strong_counts(edges: Iterable[Collection[str]]) -> dict[str, int]:
    """Per identifier key of these edges: how many distinct strong identifiers (other than
    itself) were seen with it on one event."""
    seen_with: dict[str, set[str]] = {}
    for edge in map(distinct_values, edges):
        strong = {key for key in edge if kind_of(key) in STRONG_KINDS}
        for key in edge:
            seen_with.setdefault(key, set()).update(strong - {key})
    return {key: len(strong) for key, strong in seen_with.items()}


def _ranked(rows: Iterable[tuple[str, int]], top: int) -> list[tuple[str, int]]:
    # nsmallest keeps `top` rows however long the input: the memory bound of a scan.
    return heapq.nsmallest(top, rows, key=lambda row: (-row[1], row[0]))


@dataclass
class GraphHealth:
    """One tenant's figures: customers, the largest ones, the suspected shared values."""

    customers: int = 0
    largest: list[tuple[str, int]] = field(default_factory=list)
    """(customer id, identifier count), largest first."""
    shared: list[tuple[str, int]] = field(default_factory=list)
    """(identifier key, distinct strong identifiers), most first; only counts above one."""
    shared_values: int = 0
    """How many identifiers were seen with more than one strong identifier."""
    truncated: bool = False
    """True when the scan stopped at its cap: the figures cover part of the graph."""

    def to_dict(self, show_values: bool) -> dict[str, object]:
        """The figures as JSON; identifier values and customer ids only when `show_values`."""
        return {
            "customers": self.customers,
            "largest_customer_identifiers": self.largest[0][1] if self.largest else 0,
            "largest_customers": [
                {"customer_id": c, "identifiers": n} if show_values else {"identifiers": n}
                for c, n in self.largest
            ],
            "suspected_shared_identifiers": self.shared_values,
            "suspected_shared": [
                {"identifier": k, "strong_identifiers": n}
                if show_values
                else {"kind": kind_of(k), "strong_identifiers": n}
                for k, n in self.shared
            ],
            "truncated": self.truncated,
        }


def graph_health(
    customers: Iterable[tuple[str, int, Iterable[Collection[str]]]], top: int = 10
) -> GraphHealth:
    """The figures from each customer's (id, identifier count, edges), read once in order."""
    top = max(0, min(top, MAX_TOP))
    health = GraphHealth()
    shared: list[tuple[str, int]] = []
    sizes: list[tuple[str, int]] = []
    for customer, size, edges in customers:
        health.customers += 1
        sizes = _ranked([*sizes, (customer, size)], top)
        counts = [(key, n) for key, n in strong_counts(edges).items() if n > 1]
        health.shared_values += len(counts)
        shared = _ranked([*shared, *counts], top)
    health.largest = sizes
    health.shared = shared
    return health
