"""`POST /v1/customers/{customer_id}/erasure`: an admin erases a customer (a data subject's request).

The route writes an `identity.erased` event on the touchpoint stream, with no personal data:
the ledger's customer id (the journey's own, after following merges), the admin's user from
the token, and the grounds (a reference such as a ticket number, not the request's text).
Ingest then destroys the customer's keys and the journey stage keeps only a skeleton
(`streams.stages.identity.erasure`, `streams.stages.journey.erasure`). 202 once the log has the event.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from journeys.server.api import (
    ApiContext,
    Caller,
    _caller,
    _context,
    _journey_dict,
    _json,
    _require,
)
from journeys.server.flag_actions import _body, _write
from journeys.server.problems import HttpProblem
from schemas.events import ERASURE_TYPE
from schemas.printable import printable

MAX_GROUNDS = 200
"""The longest grounds (a `Name`)."""


def erasure_document(
    tenant: str, customer_id: str, grounds: str, by: str, now: str, event_id: str
) -> dict[str, Any]:
    """The `identity.erased` event of an erasure (the envelope's identifier is the id too)."""
    return {
        "event_id": event_id,
        "type": ERASURE_TYPE,
        "occurred_at": now,
        "tenant": tenant,
        "source": {"system": "journeys", "channel": "system", "actor": by},
        "customer": {"anonymous_id": customer_id},
        "payload": {"customer_id": customer_id, "decided_by": by, "grounds": grounds},
    }


async def tenant_customer(
    context: ApiContext, request: web.Request, caller: Caller, tenant: str
) -> dict[str, Any]:
    """The journey (as served, merges followed) of the path's customer in `tenant`; 404 for
    another tenant's customer or one the token does not cover, exactly like a missing one."""
    customer_id = request.match_info["customer_id"].strip().lower()
    covered = caller.tenants is None or tenant in caller.tenants
    journey = await _journey_dict(context, request, tenant, customer_id) if covered else None
    if journey is None or journey.get("tenant", tenant) != tenant:
        raise HttpProblem(
            404,
            "not_found",
            f"no customer {printable(customer_id[:40])} in tenant {printable(tenant[:64])}",
            "check the customer id (cus_…) and the tenant",
        )
    return {**journey, "customer_id": str(journey.get("customer_id", customer_id))}


async def erase_customer(request: web.Request) -> web.Response:
    """`POST /v1/customers/{customer_id}/erasure` with `{"tenant", "grounds"}`: admin; 202."""
    context = _context(request)
    caller = _caller(context, request)
    _require(caller, "admin")
    body = await _body(request)
    tenant = body.get("tenant") if isinstance(body, dict) else None
    grounds = body.get("grounds") if isinstance(body, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise HttpProblem(400, "bad_request", "tenant: required", 'e.g. {"tenant": "acme"}')
    if not isinstance(grounds, str) or not grounds.strip() or len(grounds) > MAX_GROUNDS:
        raise HttpProblem(
            400,
            "bad_request",
            f"grounds: required, 1 to {MAX_GROUNDS} characters",
            "give the request's reference (a ticket number), not its text",
        )
    journey = await tenant_customer(context, request, caller, tenant)
    found_id = str(journey["customer_id"])
    event_id = f"erasure-{uuid.uuid4().hex}"
    now = context.clock().isoformat()
    await _write(
        context, erasure_document(tenant, found_id, grounds.strip(), caller.user, now, event_id)
    )
    if context.worker.sealer is not None:  # a ring kept from another worker goes now
        context.worker.sealer.peer_rings.drop(tenant, found_id)
    return _json({"event_id": event_id, "tenant": tenant, "customer_id": found_id}, status=202)


def routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [web.post("/v1/customers/{customer_id}/erasure", erase_customer)]
