"""Point reads of a worker's local state for the query API: identity keys and journeys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from projections.journey import Journey, Merge
from schemas.outputs import MergeHistory
from streams.crypto.opening import open_journey, open_merges
from streams.kafka.records import customer_key
from streams.kafka.sender import partition_of
from streams.stages.identity.regrouping import reason_in
from streams.stages.journey.merges import as_merges
from streams.stages.journey.segments import read_journey as read_stored
from streams.store import keys
from streams.worker import Worker


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The customer merged into another: ask for that one."""

    customer_id: str


def identity_partition(worker: Worker, tenant: str) -> int:
    """The ingest partition holding a tenant's identity graph."""
    return partition_of(tenant.encode(), worker.kafka.partitions)


def journey_partition(worker: Worker, tenant: str, customer_id: str) -> int:
    """The journey partition holding a customer's journey."""
    return partition_of(customer_key(tenant, customer_id), worker.kafka.partitions)


def lookup_customer(worker: Worker, tenant: str, identifiers: list[str]) -> str | None:
    """The customer holding the first of these identity keys found (the caller owns the partition)."""
    partition = identity_partition(worker, tenant)
    for key in identifiers:
        value = worker.identity_store.get(partition, keys.identifier_key(tenant, key))
        if value is not None:
            return value.decode()
    return None


def read_journey(worker: Worker, tenant: str, customer_id: str) -> Journey | Forwarded | None:
    """A customer's stored journey, where it was forwarded to, or None (owned partition)."""
    partition = journey_partition(worker, tenant, customer_id)
    ref = (tenant, customer_id)
    journey = read_stored(lambda key: worker.journey_store.get(partition, key), ref)
    if journey is not None:
        return journey
    forward = worker.journey_store.get(partition, keys.forward_key(ref))
    return Forwarded(forward.decode()) if forward is not None else None


def forwarded(worker: Worker, tenant: str, customer_id: str) -> Forwarded | None:
    """Where a merged customer was forwarded to, when it holds no journey of its own (owned
    partition): point reads only, so a merged id is followed before its ring is read."""
    partition = journey_partition(worker, tenant, customer_id)
    ref = (tenant, customer_id)
    forward = worker.journey_store.get(partition, keys.forward_key(ref))
    if forward is None or worker.journey_store.get(partition, keys.journey_key(ref)) is not None:
        return None
    return Forwarded(forward.decode())


def read_merges(worker: Worker, tenant: str, customer_id: str) -> tuple[Merge, ...]:
    """The latest merges that made a customer, oldest first (owned partition)."""
    partition = journey_partition(worker, tenant, customer_id)
    value = worker.journey_store.get(partition, keys.merges_key((tenant, customer_id)))
    return () if value is None else as_merges(MergeHistory.from_bytes(value).merges)


def ring_value(worker: Worker, tenant: str, customer_id: str) -> bytes | None:
    """A customer's ring record (wrapped data keys only) in this worker's identity store (the
    caller owns the tenant's ingest partition); None: no ring (erased, or never sealed)."""
    partition = identity_partition(worker, tenant)
    return worker.identity_store.get(partition, keys.ring_key(tenant, customer_id))


def opened(
    journey: Journey, merges: tuple[Merge, ...], data_keys: Mapping[str, bytes] | None
) -> tuple[Journey, tuple[Merge, ...]]:
    """A journey and its merges with their sealed fields decrypted with the customer's data
    keys (`[erased]` where a key is gone); unchanged when the worker does not seal (None)."""
    if data_keys is None:
        return journey, merges
    return open_journey(journey, data_keys), open_merges(merges, journey.tenant, data_keys)


def decided_reasons(worker: Worker, tenant: str, values: list[str]) -> dict[str, str]:
    """Blocked key -> why a person's decision blocks it, for those of `values` blocked now
    (point reads; the caller owns the tenant's ingest partition)."""
    partition = identity_partition(worker, tenant)
    found = {}
    for value in values:
        reason = reason_in(
            worker.identity_store.get(partition, keys.blocked_value_key(tenant, value))
        )
        if reason is not None:
            found[value] = reason
    return found
