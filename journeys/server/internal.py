"""What one worker asks another: reads answered by the worker owning a partition.

A journey is read where its journey partition is; the customer holding an identifier and the
values people blocked are read where the tenant's ingest partition is. Each request is signed
with the workers' shared secret (`peers`), never a client's token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn

import orjson
from aiohttp import web

from journeys.server import peers
from journeys.server.api import (
    ApiContext,
    _ask_owner,
    _context,
    _json,
    _not_found,
    owned_journey,
)
from journeys.server.problems import HttpProblem
from projections.identifiers import normalise
from projections.identity import blocked_key
from streams.queries import (
    Forwarded,
    decided_reasons,
    identity_partition,
    journey_partition,
    lookup_customer,
)

MAX_DECIDED_CHARS = 6_000
"""The most characters of decisions a forwarded journey read carries in its query (a request
line is at most 8,190 bytes); longer reasons are shortened to fit."""


async def _peer_tenants(context: ApiContext, request: web.Request) -> frozenset[str] | None:
    """The tenants a request forwarded by another worker may see; 401 unless it is signed."""
    body = await request.read()
    now = time.time()
    try:
        return peers.verify(
            context.peer_secret, request.method, request.raw_path, request.headers, now, body
        )
    except peers.PeerAuthError as exc:
        raise HttpProblem(401, "unauthorized", str(exc), exc.hint) from None


async def peer_tenant(
    context: ApiContext, request: web.Request, refuse: Callable[[], NoReturn]
) -> str:
    """The tenant a signed forwarded request names (401 unless signed); `refuse` (a 404 that
    says no more than an unknown name would) when the asking caller's token may not see it."""
    allowed = await _peer_tenants(context, request)
    tenant = request.query.get("tenant", "")
    if allowed is not None and tenant not in allowed:
        refuse()
    return tenant


def _owned_ingest(context: ApiContext, tenant: str) -> None:
    if identity_partition(context.worker, tenant) not in context.worker.owned("ingest"):
        raise HttpProblem(503, "unavailable", "this worker no longer owns that partition", "retry")


async def internal_identity(request: web.Request) -> web.Response:
    """Forwarded lookup: the customer holding identity keys, on the owning worker."""
    context = _context(request)
    tenant = await peer_tenant(context, request, lambda: _not_found("that identifier"))
    _owned_ingest(context, tenant)
    found = lookup_customer(context.worker, tenant, request.query.getall("key", []))
    if found is None:
        _not_found("that identifier")
    return _json({"customer_id": found})


async def internal_decided(request: web.Request) -> web.Response:
    """Forwarded lookup: which of these values (blocked keys) a person's decision blocks now."""
    context = _context(request)
    tenant = await peer_tenant(context, request, lambda: _not_found("that tenant"))
    _owned_ingest(context, tenant)
    values = request.query.getall("value", [])
    return _json({"decided": decided_reasons(context.worker, tenant, values)})


async def internal_journey(request: web.Request) -> web.Response:
    """Forwarded read: a journey (or where it was merged to), on the owning worker."""
    context = _context(request)
    customer_id = request.query.get("customer_id", "")
    tenant = await peer_tenant(context, request, lambda: _not_found(customer_id))
    partition = journey_partition(context.worker, tenant, customer_id)
    if partition not in context.worker.owned("journeys"):
        raise HttpProblem(503, "unavailable", "this worker no longer owns that partition", "retry")
    decided = orjson.loads(request.query.get("decided", "{}"))  # the asking worker read them
    found = await owned_journey(context, tenant, customer_id, decided)
    if found is None:
        _not_found(customer_id)
    if isinstance(found, Forwarded):
        return _json({"forwarded_to": found.customer_id})
    return _json(found)


async def decided_for(
    context: ApiContext, request: web.Request, tenant: str, journey: dict[str, Any]
) -> dict[str, str]:
    """The values of a shown journey's identifiers a person's decision blocks now (blocked
    key -> why), read from the worker holding the tenant's ingest partition; shortened to fit
    a forwarded request (`fitting`)."""
    region, hasher = context.fold.region_for(tenant), context.fold.hasher_for(tenant)
    shown = journey.get("identifiers", [])
    values = sorted({blocked_key(normalise(i["kind"], i["value"], region, hasher)) for i in shown})
    if not values:
        return {}
    partition = identity_partition(context.worker, tenant)
    if partition in context.worker.owned("ingest"):
        return fitting(decided_reasons(context.worker, tenant, values))
    params = [("tenant", tenant), *(("value", value) for value in values)]
    answer = await _ask_owner(context, request, "ingest", partition, "/v1/internal/decided", params)
    decided = {} if answer is None else {str(k): str(v) for k, v in answer["decided"].items()}
    return fitting(decided)


def fitting(decided: dict[str, str]) -> dict[str, str]:
    """Decisions shortened to fit a forwarded request's query (`MAX_DECIDED_CHARS`)."""
    if len(orjson.dumps(decided)) <= MAX_DECIDED_CHARS:
        return decided
    room = max(40, MAX_DECIDED_CHARS // (2 * len(decided)))
    return {k: v if len(v) <= room else v[: room - 1] + "…" for k, v in decided.items()}


def routes() -> list[web.RouteDef]:
    """The routes of this module, registered by `journeys.server.api.routes`."""
    return [
        web.get("/v1/internal/identity", internal_identity),
        web.get("/v1/internal/journey", internal_journey),
        web.get("/v1/internal/decided", internal_decided),
    ]
