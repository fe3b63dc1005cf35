"""`GET /v1/notifications/deliveries`: what this worker's notifier delivered, retried, gave up."""

from __future__ import annotations

from aiohttp import web

from journeys.server.api import _caller, _context, _json, _require
from journeys.server.problems import HttpProblem

MAX_DELIVERIES_PAGE = 500
"""The most deliveries one `GET /v1/notifications/deliveries` returns."""


async def list_deliveries(request: web.Request) -> web.Response:
    """`GET /v1/notifications/deliveries`: this worker's latest notification deliveries.

    An admin's: receivers and their failures are configuration. Filtered to the token's tenants.
    """
    context = _context(request)
    caller = _caller(context, request)
    _require(caller, "admin")
    allowed = caller.tenants
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise HttpProblem(400, "bad_request", "limit: must be a whole number") from None
    if not 1 <= limit <= MAX_DELIVERIES_PAGE:
        raise HttpProblem(400, "bad_request", f"limit: must be between 1 and {MAX_DELIVERIES_PAGE}")
    log = context.deliveries
    return _json(
        {
            "worker_id": context.worker_id,
            "notifying": log is not None,
            "deliveries": log.entries(allowed, limit) if log is not None else [],
        }
    )


def routes() -> list[web.RouteDef]:
    """The routes of this module, registered by `journeys.server.api.routes`."""
    return [web.get("/v1/notifications/deliveries", list_deliveries)]
