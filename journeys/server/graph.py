"""`GET /metrics` and `GET /v1/identity/stats`: counters, and the identity graph's health."""

from __future__ import annotations

from typing import NoReturn

from aiohttp import web

from journeys.server.api import ApiContext, _ask_owner, _caller, _context, _json, _require
from journeys.server.internal import peer_tenant
from journeys.server.metrics import render_metrics
from journeys.server.problems import HttpProblem
from projections.health.graph import GraphHealth
from streams.queries import identity_partition


async def metrics(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text exposition (counts only, no customer data)."""
    context = _context(request)
    health = await context.worker.graph_health.refresh()  # a thread reads the state
    body, content_type = render_metrics(
        context.worker, context.flags, context.followers, context.deliveries, health
    )
    return web.Response(body=body, headers={"Content-Type": content_type})


async def identity_stats(request: web.Request) -> web.Response:
    """`GET /v1/identity/stats?tenant=`: a tenant's graph health, from the worker holding it.

    A viewer sees counts; identifier values and customer ids only an admin of the tenant.
    Asked of a worker that does not hold the tenant's ingest partition, the request goes to
    the one that does (signed as a peer), so every worker gives the same answer.
    """
    context = _context(request)
    caller = _caller(context, request)
    _require(caller, "viewer")
    tenant = request.query.get("tenant", "")
    if not tenant:
        raise HttpProblem(400, "bad_request", "tenant: required")
    if caller.tenants is not None and tenant not in caller.tenants:
        raise HttpProblem(403, "forbidden", f"this token does not cover tenant {tenant!r}")
    admin = caller.role == "admin"
    partition = identity_partition(context.worker, tenant)
    if partition in context.worker.owned("ingest") or not context.directory.members:
        return _json(await _figures(context, tenant, admin))  # held here, or nobody else is
    params = [("tenant", tenant), ("values", "1" if admin else "0")]
    path = "/v1/internal/identity-stats"
    answer = await _ask_owner(context, request, "ingest", partition, path, params)
    return _json(answer if answer is not None else await _figures(context, tenant, admin))


async def internal_identity_stats(request: web.Request) -> web.Response:
    """Forwarded read: a tenant's graph health, on the worker holding its ingest partition
    (`values=1`: the asking worker's caller is an admin of the tenant)."""
    context = _context(request)
    tenant = await peer_tenant(context, request, _no_such_tenant)
    return _json(await _figures(context, tenant, request.query.get("values") == "1"))


def _no_such_tenant() -> NoReturn:
    raise HttpProblem(404, "not_found", "no such tenant")


async def _figures(context: ApiContext, tenant: str, show_values: bool) -> dict[str, object]:
    health = (await context.worker.graph_health.refresh()).get(tenant)
    figures = (health or GraphHealth()).to_dict(show_values=show_values)
    return {
        "tenant": tenant,
        "worker_id": context.worker_id,
        "held_here": health is not None,
        **figures,
        "refused_links_this_worker": dict(context.worker.refused_links),  # all its tenants
    }


def routes() -> list[web.RouteDef]:
    """The routes of this module, registered by `journeys.server.api.routes`."""
    return [
        web.get("/metrics", metrics),
        web.get("/v1/identity/stats", identity_stats),
        web.get("/v1/internal/identity-stats", internal_identity_stats),
    ]
