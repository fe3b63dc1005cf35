"""The API's writes made by people: actions on flags, identity decisions, and who is asking.

Each is written as a touchpoint event (`projections.handling.requests` checks the body and
builds it), signed with the token's user, never a name from the body. An action carries the
flag customer's strongest linking identifier, so ingest stitches it into that journey and the
journey stage lays it over the flag within seconds. A flag of a tenant the token does not
cover is answered exactly like a flag that does not exist.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from aiohttp import web

from journeys.server.api import (
    ALL_TENANTS,
    ApiContext,
    Caller,
    _caller,
    _context,
    _customer_for,
    _journey_dict,
    _json,
    _not_found,
    _require,
)
from journeys.server.problems import HttpProblem
from journeys.settings import ROLES
from projections.handling.requests import (
    DECISIONS,
    DecisionRequest,
    RequestError,
    action_document,
    decision_document,
    linking_identifiers,
    parse_action,
    parse_decision,
)
from projections.handling.resolve import ResolutionError, resolve_merge, resolve_split
from projections.identifiers import normalise
from schemas.errors import InvalidEventError
from schemas.printable import printable

MAX_REQUEST_BYTES = 64 * 1024
"""The largest body of an action or a decision (a note is at most 10,000 characters)."""


async def me(request: web.Request) -> web.Response:
    """`GET /v1/me`: the caller's user, role and tenants (what pages show or hide)."""
    caller = _caller(_context(request), request)
    rank = ROLES.index(caller.role)
    return _json(
        {
            "user": caller.user,
            "role": caller.role,
            "tenants": [ALL_TENANTS] if caller.tenants is None else sorted(caller.tenants),
            "may_act_on_flags": rank >= ROLES.index("manager"),
            "may_decide_identity": rank >= ROLES.index("admin"),
        }
    )


async def _body(request: web.Request) -> Any:
    """The request's JSON body: 413 past `MAX_REQUEST_BYTES`, 400 when it is not JSON."""
    too_large = HttpProblem(
        413, "too_large", f"body: at most {MAX_REQUEST_BYTES:,} bytes", "shorten the note"
    )
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise too_large
    try:  # read no more than the limit allows, whatever the body claims
        await request.content.readexactly(MAX_REQUEST_BYTES + 1)
    except asyncio.IncompleteReadError as short:
        raw = short.partial
    else:
        raise too_large
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HttpProblem(400, "bad_request", "body: not a JSON object") from None


def _bad(exc: RequestError) -> HttpProblem:
    return HttpProblem(400, "bad_request", str(exc), exc.hint)


async def _write(context: ApiContext, document: dict[str, Any]) -> None:
    """Validate an event at the door and wait until the log has it (400 / 503 otherwise)."""
    if context.producer is None:
        raise HttpProblem(503, "unavailable", "this worker does not accept events")
    try:
        future = await context.producer.send(document)
    except InvalidEventError as exc:
        reasons = "; ".join(f"{p.field}: {p.reason}" for p in exc.problems)
        raise HttpProblem(400, "bad_request", printable(reasons[:500])) from None
    try:
        await future
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a broker error: nothing was recorded, say so
        raise HttpProblem(
            503, "unavailable", f"not written to the log: {type(exc).__name__}", "retry"
        ) from None


def _no_flag(flag_id: str) -> HttpProblem:
    # The same answer for a missing flag and another tenant's: nothing tells them apart.
    return HttpProblem(
        404, "not_found", f"no flag {printable(flag_id[:40])}", "check the flag id (flg_…)"
    )


async def act_on_flag(request: web.Request) -> web.Response:
    """`POST /v1/flags/{flag_id}/actions`: record a person's action on a flag; 202."""
    context = _context(request)
    caller = _caller(context, request)
    _require(caller, "manager")
    flag_id = request.match_info["flag_id"]
    try:
        asked = parse_action(await _body(request), context.clock())
    except RequestError as exc:
        raise _bad(exc) from None
    found = context.flags.find(flag_id, caller.tenants)
    if found is None:
        raise _no_flag(flag_id)
    (tenant, customer_id, _), _flag = found
    journey = await _journey_dict(context, request, tenant, customer_id)
    if journey is None:  # the flag topic is ahead of the journey: its customer is not served yet
        raise HttpProblem(
            503, "unavailable", f"the journey of flag {flag_id} cannot be read right now", "retry"
        )
    found_id = str(journey.get("customer_id", customer_id))
    identifier = await _linking(context, request, tenant, found_id, journey)
    if identifier is None:
        raise HttpProblem(
            409,
            "conflict",
            f"the customer of flag {flag_id} has no identifier that links events, so an "
            "action could not join its journey",
            "resolve it where the events come from, or give the customer an identifier",
        )
    event_id = f"act_{uuid.uuid4().hex}"
    document = action_document(
        asked,
        flag_id=flag_id,
        tenant=tenant,
        identifier=identifier,
        user=caller.user,
        now=context.clock(),
        event_id=event_id,
    )
    await _write(context, document)
    answer = {
        "event_id": event_id,
        "flag_id": flag_id,
        "action": asked.action,
        "tenant": tenant,
        "customer_id": found_id,
    }
    return _json(answer, status=202)


MAX_CANDIDATES = 8
"""The identifiers asked of the identity graph, at most, for one action."""


async def _linking(
    context: ApiContext,
    request: web.Request,
    tenant: str,
    customer_id: str,
    journey: dict[str, Any],
) -> tuple[str, str] | None:
    """The strongest identifier of the journey that the identity graph gives to its customer:
    an event carrying it alone is stitched into that journey."""
    priority = context.fold.identity_for(tenant).priority
    region, hasher = context.fold.region_for(tenant), context.fold.hasher_for(tenant)
    candidates = linking_identifiers(journey.get("identifiers", ()), priority)
    for kind, value in candidates[:MAX_CANDIDATES]:
        key = normalise(kind, value, region, hasher).key
        if await _customer_for(context, request, tenant, [key]) == customer_id:
            return kind, value
    return None


def _covers(caller: Caller, tenant: str) -> bool:
    return caller.tenants is None or tenant in caller.tenants


async def decide_identity(request: web.Request) -> web.Response:
    """`POST /v1/identity/decisions`: record an admin's identity decision; 202."""
    context = _context(request)
    caller = _caller(context, request)
    _require(caller, "admin")
    try:
        asked = parse_decision(await _body(request))
    except RequestError as exc:
        raise _bad(exc) from None
    if not _covers(caller, asked.tenant):
        raise HttpProblem(
            403,
            "forbidden",
            f"tenant: this token may not decide for {printable(asked.tenant[:100])!r}",
            "use a token that covers the tenant",
        )
    identifier = asked.identifier
    customers: tuple[str, ...] = ()
    if identifier is None:
        identifier, customers = await _resolve(context, request, asked)
    event_id = f"decision-{uuid.uuid4().hex}"
    document = decision_document(
        asked.type,
        identifier,
        asked.tenant,
        asked.reason,
        by=caller.user,
        now=context.clock(),
        event_id=event_id,
        system="journeys",
        customers=customers,
    )
    await _write(context, document)
    answer: dict[str, Any] = {"event_id": event_id, "type": asked.type, "tenant": asked.tenant}
    if customers:
        answer.update(identifier=identifier, customers=list(customers))
    return _json(answer, status=202)


async def _resolve(
    context: ApiContext, request: web.Request, asked: DecisionRequest
) -> tuple[str, tuple[str, ...]]:
    """The identifier a decision naming customer ids is about, from their journeys as the
    ledger shows them now (read as `GET /v1/journeys/{id}` reads them, off the event loop).
    Unknown and another tenant's customer: the same 404; no single identifier: 409."""
    journeys = []
    for customer_id in asked.customers:
        found = await _journey_dict(context, request, asked.tenant, customer_id)
        if found is None:
            _not_found(customer_id)
        journeys.append(found)  # with the conflicts ingest opened (`with_held`)
    region = context.fold.region_for(asked.tenant)
    try:
        if asked.type == DECISIONS["merge"]:
            resolved = resolve_merge(journeys[0], journeys[1], region, asked.via)
        else:
            resolved = resolve_split(journeys[0], region, asked.via)
    except ResolutionError as exc:
        raise HttpProblem(
            409, "conflict", printable(Exception.__str__(exc)[:2000]), printable(exc.hint)
        ) from None
    return resolved.identifier, resolved.customers


def routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [
        web.get("/v1/me", me),
        web.post("/v1/flags/{flag_id}/actions", act_on_flag),
        web.post("/v1/identity/decisions", decide_identity),
    ]
