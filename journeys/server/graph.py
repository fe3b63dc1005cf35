"""`GET /metrics` and `GET /v1/identity/stats`: counters, and the identity graph's health."""

from __future__ import annotations

from aiohttp import web

from journeys.server.api import _caller, _context, _json, _require
from journeys.server.metrics import render_metrics
from journeys.server.problems import HttpProblem
from projections.health.graph import GraphHealth


async def metrics(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text exposition (counts only, no customer data)."""
    context = _context(request)
    health = await context.worker.graph_health.refresh()  # a thread reads the state
    body, content_type = render_metrics(
        context.worker, context.flags, context.followers, context.deliveries, health
    )
    return web.Response(body=body, headers={"Content-Type": content_type})


async def identity_stats(request: web.Request) -> web.Response:
    """`GET /v1/identity/stats?tenant=`: a tenant's graph health as this worker holds it.

    A viewer sees counts; identifier values and customer ids only an admin of the tenant.
    """
    context = _context(request)
    caller = _caller(context, request)
    _require(caller, "viewer")
    tenant = request.query.get("tenant", "")
    if not tenant:
        raise HttpProblem(400, "bad_request", "tenant: required")
    if caller.tenants is not None and tenant not in caller.tenants:
        raise HttpProblem(403, "forbidden", f"this token does not cover tenant {tenant!r}")
    health = (await context.worker.graph_health.refresh()).get(tenant)
    admin = caller.role == "admin"
    figures = (health or GraphHealth()).to_dict(show_values=admin)
    return _json(
        {
            "tenant": tenant,
            "worker_id": context.worker_id,
            "held_here": health is not None,
            **figures,
            "refused_links_this_worker": dict(context.worker.refused_links),  # all its tenants
        }
    )


def routes() -> list[web.RouteDef]:
    """The routes of this module, registered by `journeys.server.api.routes`."""
    return [web.get("/metrics", metrics), web.get("/v1/identity/stats", identity_stats)]
