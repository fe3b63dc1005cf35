"""The key rings journeys and flags are opened with, read where the tenant's ingest partition is.

A journey is served by the worker owning its journey partition, but its customer's ring (the
wrapped data keys) is in ingest's state, on the worker owning the tenant's ingest partition.
A worker that does not hold that partition asks the one that does over the signed peer call
`/v1/internal/rings`: only wrapped keys travel, only to a request signed with the workers'
secret, and the asking worker unwraps them with the master key every sealing worker has. The
rings it is given are kept a short while (`streams.crypto.ring_cache`: bounded, a TTL, dropped
at once by the erasures this worker takes part in). No key, wrapped or not, is ever logged, put
in an error or shown to a client.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web

from journeys.server.api import ApiContext, _context, _json, _not_found, ask_peer
from journeys.server.internal import _owned_ingest, peer_tenant
from streams.crypto.ring import KeyRing
from streams.crypto.ring_cache import RingCache
from streams.queries import identity_partition, ring_value

MAX_RINGS_PER_REQUEST = 100
"""The most customers one `/v1/internal/rings` request names (its query stays far below the
8,190 bytes of a request line)."""


class DataKeys(Mapping[str, bytes]):
    """Data key id -> data key: what opens a customer's sealed fields. It notes when an id
    asked for is not among them, so that a ring kept from before a merge (which lacks the
    absorbed customers' keys) or from before the customer started again is asked for afresh
    (`stale`), where a missing key would otherwise read `[erased]`. Its repr names no key."""

    __slots__ = ("_keys", "cached", "missed")

    def __init__(self, keys: Mapping[str, bytes], cached: bool = False) -> None:
        self._keys = dict(keys)
        self.cached = cached
        """Whether the ring came from this worker's cache of other workers' rings."""
        self.missed = False
        """Whether a sealed value named a key id the ring does not hold."""

    def __getitem__(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            self.missed = True
            raise

    def __contains__(self, key_id: object) -> bool:
        found = key_id in self._keys
        self.missed = self.missed or not found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"DataKeys({len(self._keys)} keys)"

    @property
    def stale(self) -> bool:
        """A cached ring that lacked a key asked for: ask the ring's worker again."""
        return self.cached and self.missed


async def data_keys_of(
    context: ApiContext, tenant: str, customer_id: str, fresh: bool = False
) -> DataKeys | None:
    """The data keys of a customer's ring (none: erased or never sealed); None when this
    worker does not seal, so there is nothing to open. `fresh`: not from the cache."""
    found = await data_keys_by_customer(context, tenant, [customer_id], fresh)
    return None if found is None else found[customer_id]


async def data_keys_by_customer(
    context: ApiContext, tenant: str, customer_ids: Iterable[str], fresh: bool = False
) -> dict[str, DataKeys] | None:
    """The data keys of each customer's ring (none: erased or never sealed); None when this
    worker does not seal. Read here when this worker holds the tenant's ingest partition, else
    taken from the cache of rings other workers gave (`RingCache`) or asked of the worker that
    holds it (503 when it cannot be asked: a journey must not read `[erased]` for a customer
    that was not erased). `fresh`: the cache's rings are dropped and asked for again."""
    sealer = context.worker.sealer
    if sealer is None:
        return None
    wanted = sorted(set(customer_ids))
    if fresh:
        for customer_id in wanted:
            sealer.peer_rings.drop(tenant, customer_id)
    rings = await _rings(context, sealer.peer_rings, tenant, wanted)
    found = {c: DataKeys(sealer.unwrapped(ring), cached) for c, (ring, cached) in rings.items()}
    return {c: found[c] if c in found else DataKeys({}) for c in wanted}


async def _rings(
    context: ApiContext, cache: RingCache, tenant: str, customer_ids: list[str]
) -> dict[str, tuple[KeyRing, bool]]:
    """Each customer's ring that has one, and whether it came from the cache."""
    worker = context.worker
    partition = identity_partition(worker, tenant)
    if partition in worker.owned("ingest"):
        found = ((c, ring_value(worker, tenant, c)) for c in customer_ids)
        return {c: (KeyRing.from_bytes(value), False) for c, value in found if value is not None}
    rings: dict[str, tuple[KeyRing, bool]] = {}
    asked = []
    for customer_id in customer_ids:
        kept = cache.get(tenant, customer_id)
        if kept is None:
            asked.append(customer_id)
        else:
            rings[customer_id] = (kept, True)
    epoch = cache.epoch  # a ring dropped while the peer answers is not kept
    for start in range(0, len(asked), MAX_RINGS_PER_REQUEST):
        chunk = asked[start : start + MAX_RINGS_PER_REQUEST]
        params = [("tenant", tenant), *(("customer_id", c) for c in chunk)]
        # The tenant was checked against the caller before: the owner is asked for it alone.
        answer = await ask_peer(
            context, "ingest", partition, "/v1/internal/rings", params, frozenset({tenant})
        )
        texts: Any = {} if answer is None else answer.get("rings", {})
        for customer_id, text in texts.items():
            ring = KeyRing.from_bytes(str(text).encode())
            cache.put(tenant, str(customer_id), ring, epoch)
            rings[str(customer_id)] = (ring, False)
    return rings


async def internal_rings(request: web.Request) -> web.Response:
    """Forwarded read: customers' rings (wrapped data keys, never unwrapped), on the worker
    owning the tenant's ingest partition; only to a request signed by another worker."""
    context = _context(request)
    tenant = await peer_tenant(context, request, lambda: _not_found("that tenant"))
    _owned_ingest(context, tenant)
    customer_ids = request.query.getall("customer_id", [])[:MAX_RINGS_PER_REQUEST]
    found = ((c, ring_value(context.worker, tenant, c)) for c in customer_ids)
    return _json({"rings": {c: value.decode() for c, value in found if value is not None}})


def routes() -> list[web.RouteDef]:
    """The routes of this module, registered by `journeys.server.api.routes`."""
    return [web.get("/v1/internal/rings", internal_rings)]
