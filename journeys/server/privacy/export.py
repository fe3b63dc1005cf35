"""`GET /v1/customers/{customer_id}/export?tenant=T`: a customer's data for an access request.

An admin (as for erasure) gets what the API serves of the customer: its journey with every
sealed event opened with its ring, its flags (handling notes opened) and the merges that made
it, under a small header. `journeys export` writes this document. Another tenant's customer,
or one the token does not cover, is a 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from journeys.server.api import _caller, _context, _json, _require
from journeys.server.erasure import tenant_customer
from journeys.server.problems import HttpProblem

EXPORT_VERSION = 1
"""The version of the export document."""


def export_document(journey: dict[str, Any]) -> dict[str, Any]:
    """The export: what the API serves of the customer, under a small header."""
    return {
        "export_version": EXPORT_VERSION,
        "tenant": journey.get("tenant"),
        "customer_id": journey.get("customer_id"),
        "journey": journey,
    }


async def export_customer(request: web.Request) -> web.Response:
    """`GET /v1/customers/{customer_id}/export?tenant=T`: admin; the export document."""
    context = _context(request)
    caller = _caller(context, request)
    _require(caller, "admin")
    tenant = request.query.get("tenant", "")
    if not tenant:
        raise HttpProblem(400, "bad_request", "tenant: required", "e.g. ?tenant=acme")
    journey = await tenant_customer(context, request, caller, tenant)
    return _json(export_document(journey))


def routes() -> list[web.RouteDef]:
    """The routes of this module, registered by `journeys.server.api.routes`."""
    return [web.get("/v1/customers/{customer_id}/export", export_customer)]
