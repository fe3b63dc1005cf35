"""Stage 1, ingest and identity: validate, mask, dead-letter, stitch, emit keyed events.

Raw touchpoints are keyed by tenant, so one partition (and one worker) owns each tenant's
identity graph: merges are decided by a single writer. A record keyed otherwise is re-sent
under its tenant key once it is valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, MutableMapping

import orjson

from projections.identifiers import NormalisedId, identity_ids
from projections.identity import (
    IdentityChange,
    IdentityPolicy,
    blocked_key,
    decision_writes,
    explain,
    link,
    stitch_keys,
)
from projections.settings import FoldSettings
from schemas.codec import decode_event, encode_event
from schemas.errors import InvalidEventError
from schemas.events import Event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_EVENT, KIND_MERGE, MergeRecord
from streams.kafka.records import InRecord, OutRecord, customer_key, dead_letter, failure_reason
from streams.stages.recent import RecentEvents
from streams.stages.regrouping import (
    current_reason,
    edge_of,
    keep_edges,
    merge_back,
    open_conflicts,
    record_decisions,
    resolve_conflicts,
    split_on_decision,
)
from streams.store import keys
from streams.store.state import BatchState


class StateIdentityView:
    """One tenant's identity graph read through a batch's state."""

    def __init__(
        self, state: BatchState, tenant: str, parsed: dict[bytes, frozenset[str]] | None = None
    ) -> None:
        self.state = state
        self.tenant = tenant
        self.parsed = {} if parsed is None else parsed
        """Member lists already parsed in this batch, by their stored bytes (linking one event
        reads its customer's members more than once, and the customer's next event again)."""

    def customer_of(self, key: str) -> str | None:
        """The customer that holds this identifier key, if any."""
        value = self.state.get(keys.identifier_key(self.tenant, key))
        return None if value is None else value.decode()

    def members(self, customer_id: str) -> frozenset[str]:
        """The identifier keys a customer holds."""
        value = self.state.get(keys.members_key(self.tenant, customer_id))
        if value is None:
            return frozenset()
        members = self.parsed.get(value)
        if members is None:
            members = self.parsed[value] = frozenset(orjson.loads(value))
        return members

    def phone_countries(self, nsn: str) -> frozenset[int]:
        """Country codes of international phone keys registered with this national number."""
        value = self.state.get(keys.phone_countries_key(self.tenant, nsn))
        return frozenset() if value is None else frozenset(orjson.loads(value))

    def apply(self, change: IdentityChange) -> None:
        """Write a change into the batch."""
        if not change.changed:
            return
        for old in change.absorbed:
            self.state.delete(keys.members_key(self.tenant, old))
        members = sorted(change.members)
        self.state.put(keys.members_key(self.tenant, change.customer_id), orjson.dumps(members))
        owner = change.customer_id.encode()
        for key in members:
            self.state.put(keys.identifier_key(self.tenant, key), owner)
        for nsn, country in change.new_phone_countries:
            countries = sorted(self.phone_countries(nsn) | {country})
            self.state.put(keys.phone_countries_key(self.tenant, nsn), orjson.dumps(countries))


class DecidedBlocks:
    """A tenant's refusals: its settings, then the values people blocked (kept in the state)."""

    def __init__(
        self, state: BatchState, tenant: str, policy: IdentityPolicy, any_decided: bool = True
    ) -> None:
        self.state = state
        self.tenant = tenant
        self.policy = policy
        self.any_decided = any_decided
        """False when no person decided about any value of the tenant: nothing to look up."""
        self.decided: set[str] = set()
        """The keys asked about that a person's block refused (they go in the event's edge)."""

    def __call__(self, ident: NormalisedId, /) -> str | None:
        """Why the identifier must not link, or None."""
        if not self.any_decided:
            return self.policy(ident)
        reason = current_reason(self.state, self.tenant, blocked_key(ident))
        if reason is not None:
            self.decided.add(ident.key)
            return reason
        return self.policy(ident)


def content_digest(event: Event, body: bytes) -> bytes:
    """What makes two arrivals of an event id the same event: its canonical bytes, `redacted`
    aside. A masked event re-keyed by tenant is sent on in its canonical (masked) bytes, which
    the door reads back unmarked (only the door's own masking marks an event), so the marker
    must not make the copy a different event."""
    if event.redacted:
        body = encode_event(event.model_copy(update={"redacted": False}))
    return hashlib.blake2b(body, digest_size=16).digest()


MAX_EVENT_BYTES = 256 * 1024
"""The largest touchpoint accepted: a journey holds its events in one state record, and Kafka's
default record limit is 1 MiB."""


def ingest(
    state: BatchState,
    records: Iterable[InRecord],
    settings: FoldSettings,
    max_bytes: int = MAX_EVENT_BYTES,
    recent: RecentEvents | None = None,
    refused: MutableMapping[str, int] | None = None,
) -> list[OutRecord]:
    """Process one partition's batch of raw touchpoints; return what to produce.

    With `recent`, each event emitted is kept under its bytes for a journey stage in this
    process to reuse. With `refused`, identifiers refused for linking are counted there (`junk`,
    `blocked`, and `limit`: links a tenant's limit held), for metrics. A record that cannot be processed, whatever the exception, goes to dead
    letters with the reason and the exception type; the batch goes on.
    """
    out: list[OutRecord] = []
    marked: set[str] = set()  # tenants whose marker this batch has checked
    deciding: set[str] = set()  # tenants whose values a person decided about in this batch
    parsed: dict[bytes, frozenset[str]] = {}  # member lists by their bytes, for the batch
    for record in records:
        if not record.value:
            out.append(dead_letter(record, "empty record: a touchpoint is one JSON object"))
            continue
        if len(record.value) > max_bytes:
            reason = (
                f"record too large: {len(record.value):,} bytes, the limit is {max_bytes:,}; "
                "keep documents and attachments out of events (send a reference instead)"
            )
            out.append(dead_letter(record, reason))
            continue
        try:
            event = decode_event(record.value)
            tenant = event.tenant
            body = encode_event(event)
        except InvalidEventError as exc:
            out.append(dead_letter(record, "; ".join(str(p) for p in exc.problems)))
            continue
        except Exception as exc:  # one record must never stop the stage: it goes aside
            out.append(dead_letter(record, failure_reason("decode", exc), exc))
            continue
        if record.key != tenant.encode():
            out.append(OutRecord("touchpoints", tenant.encode(), body))
            continue
        digest = content_digest(event, body)
        seen_key = keys.seen_key(tenant, event.event_id)
        seen = state.get(seen_key)
        if seen == digest:
            continue  # the same event again: producers retry
        if seen is not None:
            reason = (
                f"event_id: {event.event_id!r} was already used for a different event; "
                "the first one stays (give a corrected event a new event_id)"
            )
            out.append(dead_letter(record, reason))
            continue
        view = StateIdentityView(state, tenant, parsed)
        try:
            # Only reads: a record that fails here leaves no trace in the state.
            policy = settings.identity_for(tenant)
            region = settings.region_for(tenant)
            any_decided = tenant in deciding or state.stored_any(keys.blocked_prefix(tenant))
            refuse = DecidedBlocks(state, tenant, policy, any_decided)
            blocks = any_decided or policy.blocked or policy.blocked_patterns or policy.decided
            # Nothing blocked in the tenant: nothing to ask about each identifier.
            ids = identity_ids(event, region, refuse if blocks else None, refused)
            change = link(view, tenant, ids, policy)
            # which identifier reached each customer merged (read before the change is applied)
            reached = dict(explain(view, ids, change, policy).merged) if change.absorbed else {}
            if refused is not None and change.conflicts:
                refused["limit"] += len(change.conflicts)
            blocked = frozenset(refuse.decided)
            edge = edge_of(stitch_keys(view, ids), change, blocked)
            decided = decision_writes(event, region)
        except Exception as exc:  # one record must never stop the stage: it goes aside
            out.append(dead_letter(record, failure_reason("stitch", exc), exc))
            continue
        state.put(seen_key, digest)
        decided = record_decisions(state, tenant, event, decided)
        if decided:
            deciding.add(tenant)
        if tenant not in marked:  # read once a batch, not once an event
            marked.add(tenant)
            tenant_key = keys.tenant_key(tenant)
            if state.get(tenant_key) is None:
                state.put(tenant_key, b"")  # the tenants this partition holds, for the directory
        view.apply(change)
        try:
            keep_edges(state, tenant, change, edge, blocked)
            out.extend(open_conflicts(state, tenant, change, event, region))
        except Exception as exc:  # the event stands; without its edge its customer is not split
            out.append(dead_letter(record, failure_reason("keep the identity edge of", exc), exc))
        for old in change.absorbed:
            out.append(
                OutRecord(
                    "events",
                    customer_key(tenant, old),
                    _merge_record(event, old, change.customer_id, reached.get(old)).to_bytes(),
                    ((HEADER_KIND, KIND_MERGE),),
                )
            )
        out.append(
            OutRecord(
                "events",
                customer_key(tenant, change.customer_id),
                body,
                ((HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, change.customer_id.encode())),
            )
        )
        if decided:
            before = dict(state.changes)
            try:
                out.extend(resolve_conflicts(state, tenant, event, decided))
                out.extend(split_on_decision(state, view, tenant, event, region, decided))
                out.extend(
                    merge_back(state, view, tenant, (k for k, why in decided if not why), event)
                )
            except Exception as exc:  # the decision stays recorded; the split is reported
                state.changes = before  # no half-written split
                out.append(dead_letter(record, failure_reason("split customers for", exc), exc))
        if recent is not None:
            recent.remember(body, event)
    return out


def _merge_record(event: Event, old: str, into: str, identifier: str | None) -> MergeRecord:
    """The merge of `old` into `into` by `event`; a rename (no identifier reached `old`) says
    no more than that."""
    if identifier is None:
        return MergeRecord(tenant=event.tenant, from_=old, into=into)
    return MergeRecord(
        tenant=event.tenant,
        from_=old,
        into=into,
        at=event.occurred_at,
        event_id=event.event_id,
        identifier=identifier,
    )
