"""Live graph health: the identity figures of the tenants this worker's ingest partitions hold.

Read from the state at scrape time, in a thread (never on the event loop), at most once per
`min_interval` seconds, and capped at `max_records` state records a refresh: a larger graph
gives partial figures marked `truncated`. Nothing is counted per event, so ingest pays nothing;
the scan holds one customer's edges and the top rows at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterator, Mapping

import orjson

from projections.health.graph import GraphHealth, graph_health, strong_sets
from projections.regroup import decided_form
from streams.stages.identity.members import member_count
from streams.stages.identity.regrouping import reason_in
from streams.store import keys
from streams.store.state import LocalStore

MAX_SCAN_RECORDS = 2_000_000
"""The most state records one refresh reads."""

MIN_INTERVAL_SECONDS = 60.0
"""The least time between two refreshes: scrapes in between get the last figures."""


class _Budget:
    """The records a refresh may still read."""

    def __init__(self, records: int) -> None:
        self.left = records

    def take(self) -> bool:
        """Count one record read; False once the budget is spent."""
        self.left -= 1
        return self.left >= 0


def tenant_health(
    store: LocalStore, partition: int, tenant: str, top: int = 10, max_records: int = 0
) -> GraphHealth:
    """One tenant's figures from one partition's state (`max_records` 0: no cap)."""
    budget = _Budget(max_records) if max_records > 0 else None
    truncated = False

    decisions = _decisions(store, partition, tenant, budget)

    def customers() -> Iterator[tuple[str, int, list[Collection[str]]]]:
        nonlocal truncated
        members = keys.members_key(tenant, "")
        for key, value in store.items(partition, members):
            if budget is not None and not budget.take():
                truncated = True
                return
            customer = key[len(members) :].decode()
            if customer in decisions:
                continue  # a person's decision stands alone: no customer (as in the pure fold)
            edges: list[Collection[str]] = []
            for _, edge in store.items(partition, keys.edges_prefix(tenant, customer)):
                if budget is not None and not budget.take():
                    truncated = True
                    return
                edges.append(orjson.loads(edge))
            yield customer, member_count(value), edges

    refused = _refused(store, partition, tenant, budget)
    held = _held(store, partition, tenant, budget, refused)
    health = graph_health(customers(), top, held, refused)
    health.truncated = truncated or (budget is not None and budget.left < 0)
    return health


def _decisions(
    store: LocalStore, partition: int, tenant: str, budget: _Budget | None
) -> frozenset[str]:
    """The customer ids that are people's identity decisions (few: people decide one by one)."""
    prefix = keys.decision_customers_prefix(tenant)
    found = set()
    for key, _ in store.items(partition, prefix):
        if budget is not None and not budget.take():
            break
        found.add(key[len(prefix) :].decode())
    return frozenset(found)


def _refused(
    store: LocalStore, partition: int, tenant: str, budget: _Budget | None
) -> Callable[[str], bool]:
    """Whether a graph key is a value a person's decision blocks now (they are few: people
    decide them one by one)."""
    prefix = keys.blocked_values_prefix(tenant)
    blocked = set()
    for key, value in store.items(partition, prefix):
        if budget is not None and not budget.take():
            break
        if reason_in(value) is not None:
            blocked.add(key[len(prefix) :].decode())
    return lambda key: bool(blocked) and decided_form(key) in blocked


def _held(
    store: LocalStore,
    partition: int,
    tenant: str,
    budget: _Budget | None,
    refused: Callable[[str], bool],
) -> dict[str, set[str]]:
    """Per value whose link a limit held: the strong identifiers seen with it on the events
    that carried it (`hh/`)."""
    prefix = keys.held_edges_prefix(tenant)
    held: dict[str, set[str]] = {}
    for key, value in store.items(partition, prefix):
        if budget is not None and not budget.take():
            break
        value_key = key[len(prefix) :].decode().rpartition("/")[0]
        found = strong_sets([orjson.loads(value)], refused).get(value_key, set())
        held.setdefault(value_key, set()).update(found)
    return held


def worker_health(
    store: LocalStore, partitions: Collection[int], top: int = 10, max_records: int = 0
) -> dict[str, GraphHealth]:
    """The figures of every tenant the given partitions hold."""
    found: dict[str, GraphHealth] = {}
    for partition in sorted(partitions):
        for key, _ in store.items(partition, keys.Prefix.TENANT.value):
            tenant = keys.tenant_of(key)
            found[tenant] = tenant_health(store, partition, tenant, top, max_records)
    return found


class GraphHealthCache:
    """The latest figures, refreshed off the event loop when a scrape finds them stale."""

    def __init__(
        self,
        store: LocalStore,
        owned: Callable[[], Collection[int]],
        min_interval: float = MIN_INTERVAL_SECONDS,
        max_records: int = MAX_SCAN_RECORDS,
    ) -> None:
        self.store = store
        self.owned = owned
        self.min_interval = min_interval
        self.max_records = max_records
        self.latest: dict[str, GraphHealth] = {}
        """The figures by tenant, as of the last refresh."""
        self._at: float | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def refresh(self) -> Mapping[str, GraphHealth]:
        """The figures, read again in a thread if older than `min_interval`."""
        async with self._lock:  # concurrent scrapes share one scan
            now = time.monotonic()
            stale = self._at is None or now - self._at >= self.min_interval
            if stale and not self._closed:
                partitions = frozenset(self.owned())
                self.latest = await asyncio.to_thread(
                    worker_health, self.store, partitions, 10, self.max_records
                )
                self._at = time.monotonic()
        return self.latest

    async def close(self) -> None:
        """Wait for a read under way and read no more: the store is about to close."""
        async with self._lock:
            self._closed = True
