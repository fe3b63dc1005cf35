"""Graph health figures from a graph's customers and edges, in one pass and bounded memory.

The live worker reads its state customer by customer (members, then the edges: identifier sets
one event linked) and keeps only the top entries, so a scan of a large tenant holds one
customer's edges and `top` rows at a time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping
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


def strong_sets(
    edges: Iterable[Collection[str]], refused: Callable[[str], bool] = lambda _key: False
) -> dict[str, set[str]]:
    """Per identifier key of these edges: the distinct strong identifiers (other than itself)
    seen with it on one event. Keys `refused` (a person blocked them) count for nothing, as
    in the pure fold, where they never link."""
    seen_with: dict[str, set[str]] = {}
    for edge in map(distinct_values, edges):
        edge = {key for key in edge if not refused(key)}
        strong = {key for key in edge if kind_of(key) in STRONG_KINDS}
        for key in edge:
            seen_with.setdefault(key, set()).update(strong - {key})
    return seen_with


def strong_counts(edges: Iterable[Collection[str]]) -> dict[str, int]:
    """Per identifier key of these edges: how many distinct strong identifiers (other than
    itself) were seen with it on one event."""
    return {key: len(strong) for key, strong in strong_sets(edges).items()}


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
    customers: Iterable[tuple[str, int, Iterable[Collection[str]]]],
    top: int = 10,
    held: Mapping[str, Collection[str]] | None = None,
    refused: Callable[[str], bool] = lambda _key: False,
) -> GraphHealth:
    """The figures from each customer's (id, identifier count, edges), read once in order.

    `held`: per value whose link a limit held, the strong identifiers seen with it on the
    events that carried it (they are in no customer's edges); its count joins those with the
    strong identifiers its own customer's edges show, across customers, as the pure fold
    counts it. `refused`: keys a person blocked, counted for nothing.
    """
    top = max(0, min(top, MAX_TOP))
    health = GraphHealth()
    shared: list[tuple[str, int]] = []
    sizes: list[tuple[str, int]] = []
    across = {key: set(strong) for key, strong in (held or {}).items() if not refused(key)}
    for customer, size, edges in customers:
        health.customers += 1
        sizes = _ranked([*sizes, (customer, size)], top)
        counts = []
        for key, strong in strong_sets(edges, refused).items():
            if key in across:
                across[key] |= strong  # counted once all customers are read
            elif len(strong) > 1:
                counts.append((key, len(strong)))
        health.shared_values += len(counts)
        shared = _ranked([*shared, *counts], top)
    counts = [(key, n) for key, strong in across.items() if (n := len(strong - {key})) > 1]
    health.shared_values += len(counts)
    health.largest = sizes
    health.shared = _ranked([*shared, *counts], top)
    return health
