"""The key rings journeys and flags are opened with, read where the tenant's ingest partition is.

A journey is served by the worker owning its journey partition, but its customer's ring (the
wrapped data keys) is in ingest's state, on the worker owning the tenant's ingest partition.
A worker that does not hold that partition asks the one that does over the signed peer call
`/v1/internal/rings`: only wrapped keys travel, only to a request signed with the workers'
secret, and the asking worker unwraps them with the master key every sealing worker has. No
key, wrapped or not, is ever logged, put in an error or shown to a client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from journeys.server.api import ApiContext, _context, _json, _not_found, ask_peer
from journeys.server.internal import _owned_ingest, peer_tenant
from streams.crypto.ring import KeyRing
from streams.queries import identity_partition, ring_value

MAX_RINGS_PER_REQUEST = 100
"""The most customers one `/v1/internal/rings` request names (its query stays far below the
8,190 bytes of a request line)."""

DataKeys = dict[str, bytes]
"""Data key id -> data key: what opens a customer's sealed fields."""


async def data_keys_of(context: ApiContext, tenant: str, customer_id: str) -> DataKeys | None:
    """The data keys of a customer's ring (empty: erased or never sealed); None when this
    worker does not seal, so there is nothing to open."""
    found = await data_keys_by_customer(context, tenant, [customer_id])
    return None if found is None else found.get(customer_id, {})


async def data_keys_by_customer(
    context: ApiContext, tenant: str, customer_ids: Iterable[str]
) -> dict[str, DataKeys] | None:
    """The data keys of each customer's ring that has one; None when this worker does not
    seal. Read here when this worker holds the tenant's ingest partition, else asked of the
    worker that does (503 when it cannot be asked: a journey must not read `[erased]` for a
    customer that was not erased)."""
    sealer = context.worker.sealer
    if sealer is None:
        return None
    wanted = sorted(set(customer_ids))
    rings = await _rings(context, tenant, wanted)
    return {customer_id: sealer.unwrapped(ring) for customer_id, ring in rings.items()}


async def _rings(context: ApiContext, tenant: str, customer_ids: list[str]) -> dict[str, KeyRing]:
    worker = context.worker
    partition = identity_partition(worker, tenant)
    if partition in worker.owned("ingest"):
        found = ((c, ring_value(worker, tenant, c)) for c in customer_ids)
        return {c: KeyRing.from_bytes(value) for c, value in found if value is not None}
    rings: dict[str, KeyRing] = {}
    for start in range(0, len(customer_ids), MAX_RINGS_PER_REQUEST):
        chunk = customer_ids[start : start + MAX_RINGS_PER_REQUEST]
        params = [("tenant", tenant), *(("customer_id", c) for c in chunk)]
        # The tenant was checked against the caller before: the owner is asked for it alone.
        answer = await ask_peer(
            context, "ingest", partition, "/v1/internal/rings", params, frozenset({tenant})
        )
        texts: Any = {} if answer is None else answer.get("rings", {})
        rings.update({str(c): KeyRing.from_bytes(str(t).encode()) for c, t in texts.items()})
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
