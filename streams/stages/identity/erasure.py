"""Ingest's side of erasing a customer: destroy its keys, forget its identifiers, tell the journey.

An `identity.erased` event (written by `journeys forget` or the API's erasure route, with no
personal data: the ledger's customer id, who, on what grounds) reaches ingest on the
touchpoint stream like any event. Ingest then, in the same batch:

- deletes the customer's key ring (`Sealer.destroy`): every field sealed under its keys, on
  the events topic, in journey state and in any copy, can no longer be decrypted;
- deletes the customer's part of the identity graph: its identifier keys, its member list,
  its edges, its conflict flags and their markers, the held-link keys kept under its values and the
  country codes kept under its phone numbers (they hold identifiers);
- keeps the customer's identifier keys as keyed hashes when the tenant suppresses erased
  customers' identifiers (`streams.crypto.suppression`), and drops its retention index entry;
- sends a tombstone for each dead letter indexed under the customer's identifier keys
  (`streams.stages.identity.dead_letters`), superseding it on the dead-letter topic;
- sends an `ErasureRecord` (`kind: erased`) to the customer's events partition, so the journey
  stage drops the personal fields of the stored journey.

Each deletion is a tombstone on the compacted identity changelog; the records it supersedes
stay there until the broker's log cleaner compacts the segment (README, "Privacy").
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import orjson

from schemas.events import Event
from schemas.outputs import HEADER_KIND, KIND_ERASED, ErasureRecord
from schemas.people import ErasurePayload
from streams.crypto.sealing import Sealer
from streams.crypto.suppression import Suppression
from streams.kafka.records import OutRecord, customer_key
from streams.stages.identity.activity import drop_activity
from streams.stages.identity.dead_letters import erase_dead_letters
from streams.stages.identity.members import delete_members, read_members
from streams.stages.identity.regrouping import forget_conflicts
from streams.store import keys
from streams.store.state import BatchState


def erase_customer(
    state: BatchState,
    event: Event,
    sealer: Sealer | None,
    suppression: Suppression | None = None,
) -> list[OutRecord]:
    """Carry out an `identity.erased` event in the batch; the erasure record to send."""
    payload = event.payload
    if not isinstance(payload, ErasurePayload):
        raise TypeError(f"{event.type} is not an erasure")
    forgotten = forget_customer(state, event.tenant, payload.customer_id, sealer, suppression)
    return [
        *forgotten.dead_letters,
        erasure_record(
            event.tenant,
            payload.customer_id,
            event_id=event.event_id,
            at=event.occurred_at,
            decided_by=payload.decided_by,
            grounds=payload.grounds,
            keys_destroyed=forgotten.keys_destroyed,
        ),
    ]


class Forgotten(NamedTuple):
    """What forgetting a customer did: data keys destroyed, dead-letter tombstones to send."""

    keys_destroyed: int
    dead_letters: list[OutRecord]


def forget_customer(
    state: BatchState,
    tenant: str,
    customer: str,
    sealer: Sealer | None,
    suppression: Suppression | None,
) -> Forgotten:
    """Delete the customer's ring, its part of the identity graph (keeping its identifiers'
    keyed hashes when `suppression` covers the tenant) and its dead letters' index entries; the
    number of data keys destroyed and the tombstones of its dead letters."""
    members = sorted(read_members(state, tenant, customer))
    dead_letters = erase_dead_letters(state, tenant, members, sealer)
    if suppression is not None:
        suppression.remember(state, tenant, (k for k in members if not k.startswith("event:")))
    owner = customer.encode()
    for key in members:
        if state.get(keys.identifier_key(tenant, key)) == owner:
            state.delete(keys.identifier_key(tenant, key))
        if key.startswith("phone:"):  # `phone:<nsn>` or `phone:+<cc>:<nsn>`
            state.delete(keys.phone_countries_key(tenant, key.rpartition(":")[2]))
    delete_members(state, tenant, customer)
    state.delete(keys.over_limit_key(tenant, customer))
    state.delete(keys.decision_customer_key(tenant, customer))
    forget_conflicts(state, tenant, customer)  # before their markers, which lead to them
    for _, edge in state.items(keys.edges_prefix(tenant, customer)):
        for key in orjson.loads(edge):  # markers of keys its edges hold that it does not
            state.delete(keys.held_at_key(tenant, key, customer))
    prefixes = [
        keys.edges_prefix(tenant, customer),
        keys.customer_conflicts_prefix(tenant, customer),
    ]
    # the keys of events whose links a limit held on one of its values (they hold identifiers)
    prefixes += [keys.held_edge_key(tenant, key, "") for key in members]
    for prefix in prefixes:
        for entry, _ in state.items(prefix):
            state.delete(entry)
    drop_activity(state, tenant, customer)  # the retention index's entry
    destroyed = sealer.destroy(state, tenant, customer) if sealer is not None else ()
    return Forgotten(len(destroyed), dead_letters)


def erasure_record(
    tenant: str,
    customer: str,
    *,
    event_id: str,
    at: datetime,
    decided_by: str,
    grounds: str,
    keys_destroyed: int,
) -> OutRecord:
    """The `kind: erased` record that tells the journey stage to erase the stored journey."""
    record = ErasureRecord(
        tenant=tenant,
        customer=customer,
        event_id=event_id,
        at=at,
        decided_by=decided_by,
        grounds=grounds,
        keys_destroyed=keys_destroyed,
    )
    return OutRecord(
        "events",
        customer_key(tenant, customer),
        record.to_bytes(),
        ((HEADER_KIND, KIND_ERASED),),
    )
