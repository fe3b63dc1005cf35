"""Undoing and redoing merges in the live stream: pure functions, changes returned as values.

`components` recomputes a customer's identity graph from the identifier sets its events were
seen with (kept by ingest, deduplicated); `split` deals a journey's events out to the
customers those components name. The stream stages only decode, apply, store and emit.
`limits` settles a component under the tenant's limits, live and in the pure fold, where
`settles` drives it for `Ledger` (one edge at a time when it can).
"""

from __future__ import annotations

from projections.regroup import conflicts
from projections.regroup.components import (
    Edge,
    GraphSplit,
    components,
    decided_form,
    edge_digest,
    split_graph,
)
from projections.regroup.split import (
    assign,
    assign_keys,
    assign_late,
    assign_late_keys,
    split,
    split_reason,
)

__all__ = [
    "Edge",
    "GraphSplit",
    "assign",
    "assign_keys",
    "assign_late",
    "assign_late_keys",
    "components",
    "conflicts",
    "decided_form",
    "edge_digest",
    "split",
    "split_graph",
    "split_reason",
]
