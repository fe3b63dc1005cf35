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
person's decision about the value resolves it (`projections.regroup.conflicts`). Each flag is
kept as a record of its own (value, customer, flag id), numbered in the order opened, so a
value shared by thousands of customers costs an event a few point reads, not a growing list.

An unblock or a confirmed merge of a value merges back the customers whose edges hold it:
an event's edge keeps the values a block refused as well (they do not link while refused),
and a marker per value and customer (`r/`) finds those customers without a scan. Their edges
are recomputed with the value linking again, and each customer that is now part of another
gets an ordinary merge record: the journey stage merges them as it merges any customers.

An event that carried nothing but the blocked value stands alone after the split; ingest keeps
edges, not events, and does not know it, but the customer split does (the journey stage keeps
its last split): on the unblock ingest sends that customer a `rejoin` record (the value, and
the customer now holding it), and the journey stage merges those events back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import orjson

from projections.flag_changes import flag_changed, flag_withdrawn
from projections.identifiers import GraphHasher, NormalisedId, normalise
from projections.identity import (
    IdentityChange,
    IdentityPolicy,
    IdentityView,
    decision_text,
    stitch_keys,
)
from projections.regroup import (
    Edge,
    components,
    conflicts,
    decided_form,
    edge_digest,
    split_graph,
)
from projections.regroup.limits import over_limits, settle, shown
from schemas.events import Event
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_MERGE,
    KIND_REGROUP,
    KIND_REJOIN,
    MergeRecord,
    RegroupRecord,
    RejoinRecord,
)
from streams.kafka.records import OutRecord, customer_key, flag_record
from streams.stages.identity.conflict_records import (
    conflict_number,
    conflicts_under,
    follow_split,
    live_markers,
)
from streams.stages.identity.members import delete_members, write_members
from streams.store import keys
from streams.store.state import BatchState


def edge_of(stitched: Iterable[str], change: IdentityChange, refused: Iterable[str]) -> Edge:
    """The keys an event linked (those it stitched to that its customer now holds), with the
    values a person's block kept from linking (`refused`): they link again on an unblock."""
    linked = {key for key in stitched if key in change.members and _links(key)}
    return frozenset(linked.union(refused))


def _is_refused(state: BatchState, tenant: str, key: str) -> bool:
    return current_reason(state, tenant, decided_form(key)) is not None


def current_reason(state: BatchState, tenant: str, value: str) -> str | None:
    """Why a person's latest decision about a value (its blocked key) blocks it, or None."""
    return current_decision(state, tenant, value)[0]


def current_decision(state: BatchState, tenant: str, value: str) -> tuple[str | None, bool]:
    """Why a person's latest decision about a value blocks it (or None), and whether that
    decision confirmed it as one person's (it then merges past the limits)."""
    key = keys.blocked_value_key(tenant, value)
    if key not in state.changes and not state.stored_any(keys.blocked_prefix(tenant)):
        return None, False  # no person decided about any value of the tenant: no read
    return decision_in(state.get(key))


def reason_in(stored: bytes | None) -> str | None:
    """Why a stored decision (`b/`) blocks its value, or None (none, or it lifts the block)."""
    return decision_in(stored)[0]


def decision_in(stored: bytes | None) -> tuple[str | None, bool]:
    """A stored decision (`b/`): why it blocks its value (or None), and whether it confirmed it."""
    if stored is None:
        return None, False
    if not stored.startswith(b"{"):
        return stored.decode(), False  # written before decisions were kept with their moment
    document = orjson.loads(stored)
    why = document["why"]
    return (None if why is None else str(why)), bool(document.get("confirmed"))


def record_decisions(
    state: BatchState, tenant: str, event: Event, writes: Iterable[tuple[str, str | None]]
) -> list[tuple[str, str | None]]:
    """Keep a decision's writes, each unless a later decision (by time, then event id) about
    the same value is kept already; the writes that took effect.

    A lift is kept too (why None), so that an older block arriving after it stays lifted: the
    pure fold applies decisions in time order, and so does this, whatever order they arrive in.
    """
    moment = (event.occurred_at, event.event_id)
    applied = []
    for value, why in writes:
        key = keys.blocked_value_key(tenant, value)
        stored = state.get(key)
        if stored is not None and stored.startswith(b"{"):
            kept = orjson.loads(stored)
            if (datetime.fromisoformat(kept["at"]), kept["event_id"]) > moment:
                continue
        document: dict[str, object] = {
            "why": why,
            "at": event.occurred_at.isoformat(),
            "event_id": event.event_id,
        }
        if event.type == "identity.merge_confirmed":
            document["confirmed"] = decision_text(event)  # merges through it list it
        state.put(key, orjson.dumps(document))
        applied.append((value, why))
    return applied


def _put_edge(
    state: BatchState,
    tenant: str,
    customer: str,
    edge: Edge,
    refused: Iterable[str] | None = None,
    stored_as: bytes | None = None,
    held: Iterable[str] = (),
) -> None:
    """Keep an edge (under `stored_as` when the caller has its key), a marker for each value
    in it a block refuses (`refused`, when the caller knows them: else each key is looked up),
    and one for each key in it the customer does not hold (`held`: a limit held its link)."""
    if stored_as is None:
        stored_as = keys.edge_key(tenant, customer, edge_digest(edge))
    state.put(stored_as, orjson.dumps(sorted(edge)))
    for key in held:
        state.put(keys.held_at_key(tenant, key, customer), b"")
    if refused is None:
        refused = [key for key in edge if _is_refused(state, tenant, key)]
    for key in refused:
        state.put(keys.refused_key(tenant, decided_form(key), customer), b"")


def _links(key: str) -> bool:
    return not key.startswith("event:")  # an event standing alone is nobody's edge


def edges(state: BatchState, tenant: str, customer: str) -> list[Edge]:
    """A customer's edges."""
    return [
        frozenset(orjson.loads(value))
        for _, value in state.items(keys.edges_prefix(tenant, customer))
    ]


def keep_edges(
    state: BatchState, tenant: str, change: IdentityChange, edge: Edge, refused: Iterable[str]
) -> None:
    """Move absorbed customers' edges to the customer they are now; add the event's edge
    (`refused`: its values a block keeps from linking)."""
    for old in change.absorbed:
        for key, value in state.items(keys.edges_prefix(tenant, old)):
            state.delete(key)
            moved = frozenset(orjson.loads(value))
            held = moved - change.members  # held by a limit (or refused: no one holds those)
            _put_edge(state, tenant, change.customer_id, moved, held=held)
    if not edge:
        return
    key = keys.edge_key(tenant, change.customer_id, edge_digest(edge))
    if state.get(key) is None:
        _put_edge(state, tenant, change.customer_id, edge, refused, key)


def carry_over_limit(
    state: BatchState, tenant: str, before: Iterable[str], after: Iterable[str], over: bool = False
) -> None:
    """Mark the customers `after` as part of a component over a limit (`ov/`) when one of the
    customers `before` was (or `over`), the markers of those `before` gone: their events ask
    whether the pure fold settles them (`streams.stages.identity.settle.over_limit`)."""
    before, after = list(before), list(after)
    for customer in before:
        marker = keys.over_limit_key(tenant, customer)
        if state.get(marker) is not None:
            over = True
            if customer not in after:
                state.delete(marker)
    if over:
        for customer in after:
            marker = keys.over_limit_key(tenant, customer)
            if state.get(marker) is None:  # most events of such a component: marked already
                state.put(marker, b"")


def settle_number(state: BatchState, tenant: str) -> int:
    """The number of the tenant's latest settle or split (0: none yet); a merge record carries
    it, so the journey stage tells a settle since the merge from one before it."""
    stored = state.get(keys.settles_key(tenant))
    return 0 if stored is None else int(stored)


def next_settle(state: BatchState, tenant: str) -> int:
    """The number of a new settle or split of the tenant's graph (one more than the latest):
    its `regroup` records carry it, so the journey stage tells ingest's newer word."""
    number = settle_number(state, tenant) + 1
    state.put(keys.settles_key(tenant), str(number).encode())
    return number


def split_on_decision(
    state: BatchState,
    view: IdentityView,
    tenant: str,
    event: Event,
    region: str | None,
    reasons: Iterable[tuple[str, str | None]],
    hasher: GraphHasher | None = None,
) -> list[OutRecord]:
    """Split every customer holding a value the decision blocked; the records to emit.

    `reasons` are the decision's writes (`decision_writes`), already in the state.
    """
    blocked = {key: why for key, why in reasons if why is not None}
    if not blocked:
        return []

    def is_refused(key: str) -> bool:
        return _is_refused(state, tenant, key)

    idents: list[NormalisedId] = [
        normalise(kind, raw, region, hasher) for kind, raw in event.customer.identifiers()
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
        delete_members(state, tenant, customer)
        for dropped in sorted(found.dropped):
            state.delete(keys.identifier_key(tenant, dropped))
            # The split may leave events alone on the value: an unblock tells this customer.
            state.put(keys.refused_key(tenant, decided_form(dropped), customer), b"")
        parts = {part: tuple(sorted(held)) for part, held in found.parts.items()}
        for part, held in parts.items():
            write_members(state, tenant, part, held)
            for kept in held:
                state.put(keys.identifier_key(tenant, kept), part.encode())
            for edge in found.edges[part]:
                _put_edge(state, tenant, part, edge)
        carry_over_limit(state, tenant, [customer], parts)
        out.extend(follow_split(state, tenant, customer, parts, found.edges, reason))
        record = RegroupRecord(
            tenant=tenant,
            customer=customer,
            parts=parts,
            reason=reason,
            decision_id=event.event_id,
            dropped=tuple(sorted(found.dropped)),
            sequence=next_settle(state, tenant),
        )
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


def open_conflicts(
    state: BatchState,
    tenant: str,
    change: IdentityChange,
    event: Event,
    region: str | None,
    hasher: GraphHasher | None = None,
) -> list[OutRecord]:
    """Open IDENTITY_CONFLICT on each customer a held link names, once per flag and customer."""
    out: list[OutRecord] = []
    for key, customer, flag in conflicts.held(change, event, region, hasher):
        number = conflict_number(state, tenant, key) or 0
        stored = keys.conflict_key(tenant, key, customer, flag.flag_id)
        if state.get(stored) is not None:
            continue
        state.put(stored, orjson.dumps({**conflicts.to_document(customer, flag), "n": number}))
        state.put(keys.conflicts_key(tenant, key), str(number + 1).encode())
        state.put(keys.customer_conflict_key(tenant, customer, key), b"")
        out.append(flag_record(flag_changed(tenant, customer, flag, "opened")))
    return out


def forget_conflicts(state: BatchState, tenant: str, customer: str) -> None:
    """Delete the conflict flags kept for a customer (erasure: their documents quote the
    value), found through its markers (`kc/`), each value's old list split first."""
    markers = keys.customer_conflicts_prefix(tenant, customer)
    for marker, _ in state.items(markers):
        value = marker[len(markers) :].decode()
        conflict_number(state, tenant, value)
        flags = keys.customer_value_conflicts_prefix(tenant, value, customer)
        for entry, _ in state.items(flags, deep=True):
            state.delete(entry)


def keep_held(
    state: BatchState, tenant: str, change: IdentityChange, ids: Iterable[NormalisedId]
) -> None:
    """Keep, for each value whose link a limit held, the keys of the event that carried it
    (once per distinct set): graph health counts the strong identifiers seen with it."""
    if not change.conflicts:
        return
    ids = list(ids)
    held = {(c.kind, c.value) for c in change.conflicts}
    carried = sorted({i.key for i in ids if i.kind != "event"})
    digest = edge_digest(carried)
    for ident in ids:
        if (ident.kind, ident.named) in held:
            state.put(keys.held_edge_key(tenant, ident.key, digest), orjson.dumps(carried))


def move_conflicts(
    state: BatchState, tenant: str, into: str, absorbed: Iterable[str]
) -> list[OutRecord]:
    """The conflict flags open on customers a merge absorbed follow the customer they merged
    into (`into`), as their journeys do: withdrawn on each, opened on it unless it has one on
    the value already (the pure fold keeps one conflict per value and customer)."""
    out: list[OutRecord] = []
    # the last customer absorbed first: where two had a conflict on the value, the pure fold
    # keeps the merged-into customer's own, else the last one's
    for old in reversed(list(absorbed)):
        if old == into:
            continue
        prefix = keys.customer_conflicts_prefix(tenant, old)
        for marker, _ in state.items(prefix):
            state.delete(marker)
            value = marker[len(prefix) :].decode()
            if conflict_number(state, tenant, value) is None:
                continue
            has = state.any_under(keys.customer_value_conflicts_prefix(tenant, value, into))
            mine = keys.customer_value_conflicts_prefix(tenant, value, old)
            for stored, document in conflicts_under(state, mine, 0):
                state.delete(stored)
                _, flag = conflicts.from_document(document)
                out.append(flag_record(flag_withdrawn(tenant, old, flag.flag_id, into)))
                if not has:
                    has = True  # it takes the place (number) of the flag it follows
                    moved = {**conflicts.to_document(into, flag), "n": document["n"]}
                    state.put(
                        keys.conflict_key(tenant, value, into, flag.flag_id), orjson.dumps(moved)
                    )
                    out.append(flag_record(flag_changed(tenant, into, flag, "opened")))
            state.put(keys.customer_conflict_key(tenant, into, value), b"")
    return out


def withdraw_conflicts(
    state: BatchState,
    tenant: str,
    customers: Iterable[str],
    kept: frozenset[tuple[str, str]],
    reason: str,
) -> list[OutRecord]:
    """Withdraw the conflict flags of settled customers that their settle no longer holds
    (`kept`: the (customer, flag id) it holds): the pure fold names the customers of its
    settled state, so a shared value a settle moved renames its conflicts."""
    out: list[OutRecord] = []
    for customer in customers:
        for marker, value in live_markers(state, tenant, customer):
            mine = keys.customer_value_conflicts_prefix(tenant, value, customer)
            held = False
            for stored, document in conflicts_under(state, mine, 0):
                _, flag = conflicts.from_document(document)
                if (customer, flag.flag_id) in kept:
                    held = True
                    continue
                state.delete(stored)
                out.append(
                    flag_record(flag_withdrawn(tenant, customer, flag.flag_id, None, reason))
                )
            if not held:
                state.delete(marker)
    return out


def resolve_conflicts(
    state: BatchState,
    tenant: str,
    decision: Event,
    decided: Iterable[tuple[str, str | None]],
    named: dict[str, set[str]] | None = None,
) -> list[OutRecord]:
    """Resolve the conflict flags opened on the values a person decided about; `named`
    collects, per value, the customers they were open on (a confirmed merge joins them)."""
    out: list[OutRecord] = []
    for key, _ in decided:
        if conflict_number(state, tenant, key) is None:
            continue
        state.delete(keys.conflicts_key(tenant, key))
        opened = conflicts_under(state, keys.value_conflicts_prefix(tenant, key), 1)
        for stored, document in opened:
            state.delete(stored)
            customer, flag = conflicts.from_document(document)
            if named is not None:
                named.setdefault(key, set()).add(customer)
            state.delete(keys.customer_conflict_key(tenant, customer, key))
            (done,) = conflicts.resolved([flag], decision)
            out.append(flag_record(flag_changed(tenant, customer, done, "resolved")))
    return out


def merge_back(
    state: BatchState,
    view: IdentityView,
    tenant: str,
    lifted: Iterable[str],
    decision: Event | None = None,
    policy: IdentityPolicy | None = None,
    conflicted: Mapping[str, Iterable[str]] | None = None,
) -> list[OutRecord]:
    """Merge back the customers whose edges hold values a decision lifted; the merge records.

    `lifted` are the values (blocked keys) an unblock or a confirmed merge let link again,
    already lifted in the state. With the `decision`, each merge record says it applied;
    with the tenant's `policy`, the customers are settled within its limits. `conflicted`:
    per value, the customers a limit's held link on it named (their edges hold the value):
    a confirmed merge joins them as the pure fold does.
    """
    out: list[OutRecord] = []
    conflicted = conflicted or {}
    for value in sorted({*lifted, *conflicted}):
        markers = state.items(keys.refused_prefix(tenant, value))
        for marker, _ in markers:
            state.delete(marker)
        named = {marker.rsplit(b"/", 1)[1].decode() for marker, _ in markers}
        held: dict[str, list[Edge]] = {}
        for customer in sorted(named | set(conflicted.get(value, ()))):
            found = edges(state, tenant, customer)
            members = view.members(customer)
            linking = {k for k in members if _links(k) and not _is_refused(state, tenant, k)}
            if members and found and linking <= frozenset().union(*found):
                held[customer] = found  # a customer without (all) its edges stays as it is
        every = [edge for found in held.values() for edge in found]
        refused = lambda key: _is_refused(state, tenant, key)  # noqa: E731
        if policy is None:
            parts = components(tenant, every, refused)
        else:  # the value links again, within the limits unless a person confirmed it
            exempt = lambda key: current_decision(state, tenant, decided_form(key))[1]  # noqa: E731
            parts = settle(tenant, every, policy, refused, exempt).parts
        owner = {key: part for part, keys_ in parts.items() for key in keys_}
        over = policy is not None and over_limits(policy, (k for e in every for k in e))
        # the value's graph key (a phone's international one sorts first), as merges show it
        spelled = next((k for k in sorted(owner) if decided_form(k) == value), None)
        into = None if spelled is None else owner[spelled]
        if into is not None:
            # Customers split on the value first hear it links again (before they merge).
            back = [marker.rsplit(b"/", 1)[1].decode() for marker, _ in markers]
            number = settle_number(state, tenant)
            out.extend(_rejoin_record(tenant, c, value, into, number) for c in back)
        joined: dict[str, list[str]] = {}
        for customer, found in sorted(held.items()):
            kept = sorted(k for edge in found for k in edge if k in owner)
            if kept:
                joined.setdefault(owner[kept[0]], []).append(customer)
        for part, customers in sorted(joined.items()):
            if customers == [part] and view.members(part) == parts[part]:
                continue
            for customer in customers:
                for stored, _ in state.items(keys.edges_prefix(tenant, customer)):
                    state.delete(stored)
                delete_members(state, tenant, customer)
            write_members(state, tenant, part, parts[part])
            for key in parts[part]:
                state.put(keys.identifier_key(tenant, key), part.encode())
            for customer in customers:
                for edge in held[customer]:
                    _put_edge(state, tenant, part, edge)
            carry_over_limit(state, tenant, customers, [part], over)
            out.extend(
                OutRecord(
                    "events",
                    customer_key(tenant, customer),
                    _merged_back(tenant, customer, part, spelled or value, decision)
                    .model_copy(update={"settled": settle_number(state, tenant)})
                    .to_bytes(),
                    ((HEADER_KIND, KIND_MERGE),),
                )
                for customer in customers
                if customer != part
            )
            out.extend(move_conflicts(state, tenant, part, (c for c in customers if c != part)))
    return out


def _merged_back(
    tenant: str, customer: str, into: str, key: str, decision: Event | None
) -> MergeRecord:
    """The merge back of `customer` into `into` through the graph `key` a decision lifted,
    listed as an event's merge lists its identifier (`kind value`, phones in E.164)."""
    if decision is None:
        return MergeRecord(tenant=tenant, from_=customer, into=into)
    kind = key.partition(":")[0]
    return MergeRecord(
        tenant=tenant,
        from_=customer,
        into=into,
        at=decision.occurred_at,
        event_id=decision.event_id,
        identifier=f"{kind} {shown(key)}",
        decision=decision_text(decision),
    )


def confirmed_text(state: BatchState, tenant: str, value: str) -> str | None:
    """The confirmed merge (in words) a person's latest decision about a value is, or None."""
    stored = state.get(keys.blocked_value_key(tenant, value))
    if stored is None or not stored.startswith(b"{"):
        return None
    text = orjson.loads(stored).get("confirmed")
    return None if text is None else str(text)


def _rejoin_record(tenant: str, customer: str, value: str, into: str, number: int) -> OutRecord:
    """The rejoin of `customer`'s events left alone on `value` into `into`, as of ingest's
    settle `number` (the merges it makes are numbered steps like ingest's own)."""
    record = RejoinRecord(
        tenant=tenant, customer=customer, lifted=(value,), into=into, settled=number
    )
    return OutRecord(
        "events",
        customer_key(tenant, customer),
        record.to_bytes(),
        ((HEADER_KIND, KIND_REJOIN), (HEADER_CUSTOMER_ID, customer.encode())),
    )
