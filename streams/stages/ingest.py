"""Stage 1, ingest and identity: stitch validated events, dedupe, emit keyed events.

The validate stage (`streams.stages.validate`) has already decoded, masked and canonically
encoded every touchpoint, on any worker; it writes them to the validated topic keyed by
tenant, so one partition (and one worker) owns each tenant's identity graph: merges are
decided by a single writer. Ingest reads those bytes with the trusted reader; a record keyed
otherwise is re-sent under its tenant key.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, MutableMapping
from dataclasses import replace

import orjson
from pydantic import ValidationError

from projections.identifiers import (
    GraphHasher,
    NormalisedId,
    customer_ids,
    identity_ids,
    normalise,
)
from projections.identity import (
    IdentityChange,
    IdentityPolicy,
    blocked_key,
    decision_writes,
    explain,
    link,
    stitch_keys,
)
from projections.privacy.retention import activity_day
from projections.settings import FoldSettings
from schemas.codec import decode_event, decode_trusted, encode_event
from schemas.errors import InvalidEventError
from schemas.events import DECISION_TYPES, ERASURE_TYPE, Event
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_DEAD_LETTER,
    KIND_EVENT,
    KIND_MERGE,
    MergeRecord,
)
from streams.crypto.keys import WrongMasterKeyError
from streams.crypto.links import linking_paths, merge_tags, tagged_regroups
from streams.crypto.sealing import Sealer
from streams.crypto.suppression import Suppression, count_suppressed
from streams.kafka.records import (
    InRecord,
    OutRecord,
    customer_key,
    dead_letter,
    failure_reason,
    with_notices,
)
from streams.stages.identity.activity import note_activity
from streams.stages.identity.dead_letters import index_dead_letter
from streams.stages.identity.erasure import erase_customer
from streams.stages.identity.members import (
    add_members,
    delete_members,
    read_members,
    write_members,
)
from streams.stages.identity.regrouping import (
    carry_over_limit,
    confirmed_text,
    current_decision,
    edge_of,
    keep_edges,
    keep_held,
    merge_back,
    move_conflicts,
    open_conflicts,
    record_decisions,
    resolve_conflicts,
    settle_number,
    split_on_decision,
)
from streams.stages.identity.settle import over_limit, settle_live, settles_again
from streams.stages.recent import RecentEvents
from streams.stages.validate import MAX_EVENT_BYTES, refusal
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
        return read_members(self.state, self.tenant, customer_id, self.parsed)

    def phone_countries(self, nsn: str) -> frozenset[int]:
        """Country codes of international phone keys registered with this national number."""
        value = self.state.get(keys.phone_countries_key(self.tenant, nsn))
        return frozenset() if value is None else frozenset(orjson.loads(value))

    def apply(self, change: IdentityChange) -> None:
        """Write a change into the batch."""
        if not change.changed:
            return
        customer, members = change.customer_id, change.members
        held = frozenset() if change.absorbed else self.members(customer)
        added = members - held
        if held and len(held) + len(added) == len(members):
            # Keys added to the same customer (most changes): only theirs are written.
            if added:
                self.parsed[add_members(self.state, self.tenant, customer, held, added)] = members
        else:  # a new customer, a merge or a rename: its set is written whole
            for old in change.absorbed:
                delete_members(self.state, self.tenant, old)
            self.parsed[write_members(self.state, self.tenant, customer, members)] = members
            added = members
        owner = customer.encode()
        for key in sorted(added):
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
        self.confirmed: set[str] = set()
        """The values asked about that a person confirmed as one person's."""

    def __call__(self, ident: NormalisedId, /) -> str | None:
        """Why the identifier must not link, or None."""
        if not self.any_decided:
            return self.policy(ident)
        reason, confirmed = current_decision(self.state, self.tenant, blocked_key(ident))
        if reason is not None:
            self.decided.add(ident.key)
            return reason
        if confirmed:
            self.confirmed.add(blocked_key(ident))
        return self.policy(ident)

    def lifted(self) -> IdentityPolicy:
        """The policy with the values asked about that a person confirmed: past the limits."""
        if not self.confirmed:
            return self.policy
        return replace(self.policy, confirmed=self.policy.confirmed | self.confirmed)


def content_digest(event: Event, body: bytes) -> bytes:
    """What makes two arrivals of an event id the same event: its canonical bytes, `redacted`
    aside. A masked event re-keyed by tenant is sent on in its canonical (masked) bytes, which
    the door reads back unmarked (only the door's own masking marks an event), so the marker
    must not make the copy a different event."""
    if event.redacted:
        body = encode_event(event.model_copy(update={"redacted": False}))
    return hashlib.blake2b(body, digest_size=16).digest()


def read_validated(raw: bytes, validated: RecentEvents | None = None) -> tuple[Event, bytes]:
    """The event of a validated record and its canonical bytes.

    The validate stage wrote them with `encode_event`, so they are read with the trusted
    reader (or taken from `validated`, where that stage in this process kept the event). Bytes
    the trusted reader refuses are not the validate stage's: they go through the door again,
    which names the fields wrong (`InvalidEventError`) or accepts them, masked and upcast.
    """
    try:
        event = decode_trusted(raw) if validated is None else validated.decode(raw)
    except ValidationError:
        event = decode_event(raw)
        return event, encode_event(event)
    return event, raw


def ingest(
    state: BatchState,
    records: Iterable[InRecord],
    settings: FoldSettings,
    max_bytes: int = MAX_EVENT_BYTES,
    recent: RecentEvents | None = None,
    refused: MutableMapping[str, int] | None = None,
    sealer: Sealer | None = None,
    validated: RecentEvents | None = None,
    suppression: Suppression | None = None,
    suppressed: MutableMapping[tuple[str, str], int] | None = None,
) -> list[OutRecord]:
    """Process one partition's batch of validated touchpoints; return what to produce.

    With `recent`, each event emitted is kept under its bytes for a journey stage in this
    process to reuse; with `validated`, the events a validate stage in this process kept are
    taken instead of decoded. With `refused`, identifiers refused for linking are counted there
    (`junk`, `blocked`, and `limit`: links a tenant's limit held), for metrics. With `sealer`,
    each event's personal fields are encrypted with its customer's data key before it is
    emitted (`streams.crypto.sealing`), and an `identity.erased` event destroys the customer's
    keys. With `suppression`, an event of a tenant that suppresses erased customers' identifiers
    and carries one is dropped before stitching, counted in `suppressed` by tenant and field.
    Each customer's last-event day is kept for the retention timer
    (`streams.stages.identity.activity`). A record that cannot be processed, whatever the
    exception, goes to dead letters with the reason and the exception type; the batch goes on.
    A dead letter's notice (its customer's identifiers) is indexed for erasure
    (`streams.stages.identity.dead_letters`), and each dead letter made here gets one.
    """
    out: list[OutRecord] = []
    marked: set[str] = set()  # tenants whose marker this batch has checked
    deciding: set[str] = set()  # tenants whose values a person decided about in this batch
    parsed: dict[bytes, frozenset[str]] = {}  # member lists by their bytes, for the batch
    for record in records:
        if record.headers and record.header(HEADER_KIND) == KIND_DEAD_LETTER:
            # A notice the ledger wrote wrong names no one: nothing to index, nothing to report.
            with contextlib.suppress(Exception):
                out.extend(index_dead_letter(state, record, settings, sealer, suppression))
            continue
        # The validate stage refused these already: checked again, cheaply, for any record
        # that reached this topic another way.
        reason = refusal(record, max_bytes)
        if reason is not None:
            out.append(dead_letter(record, reason))
            continue
        assert record.value is not None  # refusal() turned empty records away
        try:
            event, body = read_validated(record.value, validated)
            tenant = event.tenant
        except InvalidEventError as exc:
            out.append(dead_letter(record, "; ".join(str(p) for p in exc.problems)))
            continue
        except Exception as exc:  # one record must never stop the stage: it goes aside
            out.append(dead_letter(record, failure_reason("decode", exc), exc))
            continue
        if record.key != tenant.encode():
            out.append(OutRecord("validated", tenant.encode(), body))
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
        if event.type == ERASURE_TYPE:
            try:
                out.extend(erase_customer(state, event, sealer, suppression))
            except Exception as exc:  # one record must never stop the stage: it goes aside
                out.append(dead_letter(record, failure_reason("erase", exc), exc))
                continue
            state.put(seen_key, digest)
            continue
        view = StateIdentityView(state, tenant, parsed)
        region = settings.region_for(tenant)
        hasher = settings.hasher_for(tenant)  # sealing on: graph keys are keyed hashes
        try:
            # Only reads until the seal, which comes last and writes no more than the ring of
            # the event's customer: a record that fails here leaves no other trace in the state.
            policy = settings.identity_for(tenant)
            any_decided = tenant in deciding or state.stored_any(keys.blocked_prefix(tenant))
            refuse = DecidedBlocks(state, tenant, policy, any_decided)
            blocks = any_decided or policy.blocked or policy.blocked_patterns or policy.decided
            # Nothing blocked in the tenant: nothing to ask about each identifier.
            ids = identity_ids(event, region, refuse if blocks else None, refused, hasher)
            if suppression is not None and suppression.covers(tenant):
                field = suppression.field_of(state, tenant, ids)
                if field is not None:  # an erased customer's identifier: never stitched again
                    count_suppressed(suppressed, tenant, field)
                    continue
            policy = refuse.lifted()
            change = link(view, tenant, ids, policy)
            # which identifier reached each customer merged (read before the change is applied)
            reached = dict(explain(view, ids, change, policy).merged) if change.absorbed else {}
            # a merge that went through a value a person confirmed says so
            confirmed = next(
                (
                    text
                    for identifier in sorted(reached.values())
                    for kind, _, value in [identifier.partition(" ")]
                    if (
                        text := confirmed_text(
                            state, tenant, blocked_key(normalise(kind, value, region, hasher))
                        )
                    )
                ),
                None,
            )
            if refused is not None and change.conflicts:
                refused["limit"] += len(change.conflicts)
            blocked = frozenset(refuse.decided)
            edge = edge_of(stitch_keys(view, ids), change, blocked)
            decided = decision_writes(event, region, hasher)
            emitted = body
            links = None
            if sealer is not None and sealer.tags_links:  # what a split deals the event by
                plain = not blocks and event.type not in DECISION_TYPES  # then `ids` are all
                ided = ids if plain else customer_ids(event.customer, region, hasher)
                links = linking_paths(ided)
            if sealer is not None:  # after stitching: only now is the customer known
                emitted = sealer.seal(
                    state, tenant, change.customer_id, body, change.absorbed, links
                )
        except WrongMasterKeyError:
            raise  # the deployment's master key is wrong: no record can be processed
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
        settled = None
        over = change.limited
        try:  # reads only: is the event in a component over a limit
            over = over or over_limit(state, view, tenant, change, ids, policy)
        except Exception as exc:  # linked as found instead; reported
            out.append(dead_letter(record, failure_reason("settle the limits of", exc), exc))
        if over:
            # A limit is reached, or the event is in a component over one (then it settles
            # when the pure fold would): settle the customers reached, in order.
            try:  # its records are sent only when it is written whole
                with state.all_or_nothing(out) as produced:
                    reach = None
                    if not change.limited:
                        reach = settles_again(state, view, event, ids, policy, blocked)
                    if change.limited or reach is not None:
                        settled = settle_live(state, view, event, ids, policy, blocked, reach)
                    if settled is not None:
                        produced.extend(_tagged(settled[1], sealer))
            except Exception as exc:  # held as found instead; reported
                settled = None
                out.append(dead_letter(record, failure_reason("settle the limits of", exc), exc))
        if settled is not None:
            change = settled[0]
            if sealer is not None:  # sealed again for the customer the settle gave the event
                try:
                    emitted = sealer.seal(
                        state, tenant, change.customer_id, body, change.absorbed, links
                    )
                except Exception as exc:  # the graph stands; the event goes aside to be re-sent
                    out.append(dead_letter(record, failure_reason("seal", exc), exc))
                    continue
        view.apply(change)
        if event.type in DECISION_TYPES:  # it stands alone: graph health leaves it out
            state.put(keys.decision_customer_key(tenant, change.customer_id), b"")
        day = activity_day(event.occurred_at, record.timestamp_ms)
        note_activity(state, tenant, change.customer_id, day, change.absorbed)
        try:
            if settled is None:
                keep_edges(state, tenant, change, edge, blocked)
                if over:  # linked as it was: the marker follows the customer
                    carry_over_limit(state, tenant, change.absorbed, [change.customer_id], True)
            out.extend(move_conflicts(state, tenant, change.customer_id, change.absorbed))
            keep_held(state, tenant, change, ids)
            out.extend(open_conflicts(state, tenant, change, event, region, hasher))
        except Exception as exc:  # the event stands; without its edge its customer is not split
            out.append(dead_letter(record, failure_reason("keep the identity edge of", exc), exc))
        for old in change.absorbed:
            identifier = reached.get(old)
            merge_links = None
            if sealer is not None and identifier is not None:  # an identifier: personal
                if sealer.tags_links:  # what a split finds the part holding it by
                    merge_links = merge_tags(sealer, tenant, identifier, region, hasher)
                ring = sealer.ring_for(state, tenant, change.customer_id)
                identifier = sealer.seal_note(ring, tenant, event.event_id, identifier)
            merge = _merge_record(event, old, change.customer_id, identifier, confirmed)
            merge = merge.model_copy(update={"settled": settle_number(state, tenant)})
            if merge_links:
                merge = merge.model_copy(update={"links": merge_links})
            out.append(
                OutRecord(
                    "events",
                    customer_key(tenant, old),
                    merge.to_bytes(),
                    ((HEADER_KIND, KIND_MERGE),),
                )
            )
        out.append(
            OutRecord(
                "events",
                customer_key(tenant, change.customer_id),
                emitted,
                ((HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, change.customer_id.encode())),
            )
        )
        if decided:
            try:
                # no half-written split, and no flag or regroup record for one
                with state.all_or_nothing(out) as produced:
                    named: dict[str, set[str]] = {}
                    produced.extend(resolve_conflicts(state, tenant, event, decided, named))
                    splits = split_on_decision(state, view, tenant, event, region, decided, hasher)
                    produced.extend(_tagged(splits, sealer))
                    lifted = [k for k, why in decided if not why]
                    # a confirmed merge joins the customers a limit held apart on the value
                    joined = named if event.type == "identity.merge_confirmed" else {}
                    conflicted = {k: named_ for k, named_ in joined.items() if k in lifted}
                    backs = merge_back(state, view, tenant, lifted, event, policy, conflicted)
                    produced.extend(_tagged(backs, sealer, region, hasher))
            except Exception as exc:  # the decision stays recorded; the split is reported
                out.append(dead_letter(record, failure_reason("split customers for", exc), exc))
        if recent is not None and emitted is body:  # a sealed event is read back from its bytes
            recent.remember(body, event)
    return with_notices(out)


def _tagged(
    records: list[OutRecord],
    sealer: Sealer | None,
    region: str | None = None,
    hasher: GraphHasher | None = None,
) -> list[OutRecord]:
    """Regroup and rejoin records with their keys' link tags when sealed events carry them."""
    if sealer is None or not sealer.tags_links or not records:
        return records
    return tagged_regroups(records, sealer.link_tag, region, hasher)


def _merge_record(
    event: Event, old: str, into: str, identifier: str | None, confirmed: str | None
) -> MergeRecord:
    """The merge of `old` into `into` by `event` (`confirmed`: the confirmed merge of a value
    it went through, if one); a rename (no identifier reached `old`) says no more than that."""
    if identifier is None:
        return MergeRecord(tenant=event.tenant, from_=old, into=into)
    return MergeRecord(
        tenant=event.tenant,
        from_=old,
        into=into,
        at=event.occurred_at,
        event_id=event.event_id,
        identifier=identifier,
        decision=confirmed,
    )
