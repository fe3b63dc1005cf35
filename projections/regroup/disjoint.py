"""Disjoint sets (union-find): which items a set of links joins into one group.

The identity graph is recomputed this way wherever it is not kept incrementally: from a
customer's edges on a split (`projections.regroup`) and from a whole file at once
(`projections.ledger.fold_all`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class DisjointSets(Generic[T]):
    """Items joined into groups by `union`; path compression keeps `find` near constant."""

    def __init__(self) -> None:
        self._parent: dict[T, T] = {}

    def find(self, item: T) -> T:
        """The representative of the item's group (an item not seen before is its own)."""
        parent = self._parent
        root = item
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[item] != root:
            parent[item], item = root, parent[item]
        return root

    def union(self, a: T, b: T) -> None:
        """Join the groups of `a` and `b`."""
        self._parent[self.find(a)] = self.find(b)

    def items(self) -> list[T]:
        """Every item seen, in the order first seen."""
        return list(self._parent)

    def groups(self) -> dict[T, set[T]]:
        """Representative -> the items of its group."""
        grouped: dict[T, set[T]] = {}
        for item in self.items():
            grouped.setdefault(self.find(item), set()).add(item)
        return grouped
