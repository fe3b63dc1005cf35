"""Ingest's side of undoing a merge: keep each customer's edges, split on a person's block.

Ingest is the single writer of a tenant's identity graph, so it decides splits as it decides
merges: in the batch that reads the decision, before any later event. For that it keeps, per
customer, the distinct sets of identifier keys one event linked (`projections.regroup`'s
edges; a point write per event, and a set seen again is not written again). A block or split
recomputes the customer from its edges without the refused keys (`split_graph`, pure), writes
the customers it leaves, and emits a `regroup` record to the customer split (the journey stage
deals its events out) and to each other customer it leaves (which stands again: it no longer
forwards to the customer it had merged into). Ingest's graph is right before the records go:
a later event of Carol's is already sent to Carol's customer.

A link held by a tenant's limit opens `IDENTITY_CONFLICT` on each customer it would have
joined, straight onto the flag topic (ingest knows the link, the journey stage does not); a
person's decision about the value resolves it (`projections.regroup.conflicts`).

Limits, kept honest in the README: an unblock or a confirmed merge links later events again
but does not merge back customers a block split (a rebuild from the log does).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from projections.flag_changes import flag_changed
from projections.identifiers import NormalisedId, normalise
from projections.identity import IdentityChange, IdentityView, stitch_keys
from projections.regroup import Edge, conflicts, decided_form, edge_digest, split_graph
from schemas.events import Event
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_REGROUP,
    FlagChange,
    RegroupRecord,
)
from streams.kafka.records import OutRecord, customer_key
from streams.store import keys
from streams.store.state import BatchState


def edge_of(stitched: Iterable[str], change: IdentityChange) -> Edge:
    """The keys an event linked: those it stitched to that its customer now holds."""
    return frozenset(key for key in stitched if key in change.members and _links(key))


def _links(key: str) -> bool:
    return not key.startswith("event:")  # an event standing alone is nobody's edge


def edges(state: BatchState, tenant: str, customer: str) -> list[Edge]:
    """A customer's edges."""
    return [
        frozenset(orjson.loads(value))
        for _, value in state.items(keys.edges_prefix(tenant, customer))
    ]


def keep_edges(state: BatchState, tenant: str, change: IdentityChange, edge: Edge) -> None:
    """Move absorbed customers' edges to the customer they are now; add the event's edge."""
    for old in change.absorbed:
        for key, value in state.items(keys.edges_prefix(tenant, old)):
            state.delete(key)
            digest = key.rsplit(b"/", 1)[1].decode()
            state.put(keys.edge_key(tenant, change.customer_id, digest), value)
    if not edge:
        return
    key = keys.edge_key(tenant, change.customer_id, edge_digest(edge))
    if state.get(key) is None:
        state.put(key, orjson.dumps(sorted(edge)))


def split_on_decision(
    state: BatchState,
    view: IdentityView,
    tenant: str,
    event: Event,
    region: str | None,
    reasons: Iterable[tuple[str, str | None]],
) -> list[OutRecord]:
    """Split every customer holding a value the decision blocked; the records to emit.

    `reasons` are the decision's writes (`decision_writes`), already in the state.
    """
    blocked = {key: why for key, why in reasons if why is not None}
    if not blocked:
        return []

    def is_refused(key: str) -> bool:
        return state.get(keys.blocked_value_key(tenant, decided_form(key))) is not None

    idents: list[NormalisedId] = [
        normalise(kind, raw, region) for kind, raw in event.customer.identifiers()
    ]
    owners = sorted(
        {
            owner
            for key in stitch_keys(view, idents)
            if decided_form(key) in blocked and (owner := view.customer_of(key)) is not None
        }
    )
    reason = next(iter(blocked.values()))
    out: list[OutRecord] = []
    for customer in owners:
        members = view.members(customer)
        found = split_graph(tenant, customer, members, edges(state, tenant, customer), is_refused)
        if found is None:
            continue
        for stored, _ in state.items(keys.edges_prefix(tenant, customer)):
            state.delete(stored)
        state.delete(keys.members_key(tenant, customer))
        for dropped in sorted(found.dropped):
            state.delete(keys.identifier_key(tenant, dropped))
        parts = {part: tuple(sorted(held)) for part, held in found.parts.items()}
        for part, held in parts.items():
            state.put(keys.members_key(tenant, part), orjson.dumps(list(held)))
            for kept in held:
                state.put(keys.identifier_key(tenant, kept), part.encode())
            for edge in found.edges[part]:
                value = orjson.dumps(sorted(edge))
                state.put(keys.edge_key(tenant, part, edge_digest(edge)), value)
        record = RegroupRecord(tenant=tenant, customer=customer, parts=parts, reason=reason)
        value = record.to_bytes()
        # The customer split first, then each other part: they stand again before any later
        # event ingest sends them (same producer, same partition, in order).
        for target in [customer, *(part for part in parts if part != customer)]:
            out.append(
                OutRecord(
                    "events",
                    customer_key(tenant, target),
                    value,
                    ((HEADER_KIND, KIND_REGROUP), (HEADER_CUSTOMER_ID, target.encode())),
                )
            )
    return out


def _flag_record(change: FlagChange) -> OutRecord:
    return OutRecord("flags", customer_key(change.tenant, change.customer_id), change.to_bytes())


def open_conflicts(
    state: BatchState, tenant: str, change: IdentityChange, event: Event, region: str | None
) -> list[OutRecord]:
    """Open IDENTITY_CONFLICT on each customer a held link names, once per flag and customer."""
    out: list[OutRecord] = []
    for key, customer, flag in conflicts.held(change, event, region):
        stored = keys.conflicts_key(tenant, key)
        value = state.get(stored)
        kept: list[dict[str, object]] = orjson.loads(value) if value is not None else []
        if any(d["customer"] == customer and d["flag_id"] == flag.flag_id for d in kept):
            continue
        kept.append(conflicts.to_document(customer, flag))
        state.put(stored, orjson.dumps(kept))
        out.append(_flag_record(flag_changed(tenant, customer, flag, "opened")))
    return out


def resolve_conflicts(
    state: BatchState, tenant: str, decision: Event, decided: Iterable[tuple[str, str | None]]
) -> list[OutRecord]:
    """Resolve the conflict flags opened on the values a person decided about."""
    out: list[OutRecord] = []
    for key, _ in decided:
        stored = keys.conflicts_key(tenant, key)
        value = state.get(stored)
        if value is None:
            continue
        state.delete(stored)
        for document in orjson.loads(value):
            customer, flag = conflicts.from_document(document)
            (done,) = conflicts.resolved([flag], decision)
            out.append(_flag_record(flag_changed(tenant, customer, done, "resolved")))
    return out
