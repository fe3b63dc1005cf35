"""The HTTP query API, served by every worker: journeys, flags, ingestion, health and metrics.

JSON under `/v1`, bearer tokens scoped to tenants. A customer of a tenant the token does not
cover answers exactly like a customer that does not exist. A journey is read from the worker
that owns its partition: asked elsewhere, the request is forwarded there (the members topic
says where), so every worker gives the same answer. Flags come from the flag topic, which each
worker reads whole.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from journeys.sdk.producer import JourneyProducer
from journeys.server import peers
from journeys.server.problems import HttpProblem, Relayed, errors_middleware
from journeys.settings import ROLES, Role, TokenEntry
from projections.journey import Journey, Merge
from projections.replay import parse_query
from projections.settings import FoldSettings
from projections.view import view, view_to_dict, with_held
from projections.why import linked_by
from schemas.codec import MAX_DEPTH
from schemas.errors import InvalidEventError, JourneyLedgerError
from schemas.events import DECISION_TYPES, HANDLING_TYPES, IDENTIFIER_KINDS
from schemas.outputs import FlagSnapshot
from schemas.redaction import mask_value
from schemas.types import parse_timestamp
from streams.directory import Directory
from streams.flag_index import FlagIndex
from streams.kafka.follow import Followers
from streams.notify.delivery import DeliveryLog
from streams.queries import (
    Forwarded,
    forwarded,
    identity_partition,
    journey_partition,
    lookup_customer,
    opened,
    read_journey,
    read_merges,
)
from streams.stages.validate import MAX_EVENT_BYTES
from streams.worker import Worker

MAX_EVENTS_PER_REQUEST = 500
"""The most events one `POST /v1/events` may carry."""

FORWARDED = "X-Journeys-Forwarded"
"""Set on a request one worker forwards to another, so it is never forwarded twice."""

ALL_TENANTS = "*"


@dataclass
class ApiContext:
    """What the handlers need: the worker's state, the indexes, the tokens and a clock."""

    worker: Worker
    fold: FoldSettings
    flags: FlagIndex
    directory: Directory
    tokens: tuple[TokenEntry, ...]
    clock: Callable[[], datetime]
    worker_id: str
    producer: JourneyProducer | None = None
    session: aiohttp.ClientSession | None = None
    configured_tenants: frozenset[str] = frozenset()
    executor: Executor | None = None
    """Where a request's expensive work runs (None: asyncio's default thread pool), never on the
    event loop that serves every other request."""
    followers: Followers = field(default_factory=Followers)
    peer_secret: str | None = field(default=None, repr=False)
    """The workers' shared secret: forwarded requests are signed with it, never a client's token."""
    deliveries: DeliveryLog | None = None
    """This worker's notification deliveries (None: it notifies nobody)."""


_CONTEXT = web.AppKey("context", ApiContext)


_T = TypeVar("_T")


async def _off_loop(context: ApiContext, function: Callable[..., _T], *args: Any) -> _T:
    """Run `function(*args)` in the context's executor: the event loop keeps serving meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(context.executor, function, *args)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _not_found(what: str) -> NoReturn:
    raise HttpProblem(404, "not_found", f"no customer matches {what}")


# --- authentication --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: the tenants its token covers (None: all), its user and role."""

    tenants: frozenset[str] | None
    user: str
    role: Role


def _caller(context: ApiContext, request: web.Request) -> Caller:
    """The request's caller, from its bearer token; 401 without a valid token."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise HttpProblem(
            401,
            "unauthorized",
            "a bearer token is required",
            "send Authorization: Bearer <token> (journeys up prints one)",
        )
    for entry in context.tokens:
        if hmac.compare_digest(entry.token.encode(), secret.strip().encode()):
            tenants = None if ALL_TENANTS in entry.tenants else frozenset(entry.tenants)
            return Caller(tenants, entry.who, entry.role)
    raise HttpProblem(401, "unauthorized", "this token is not valid", "check JOURNEYS_TOKEN")


def _tenants_of(context: ApiContext, request: web.Request) -> frozenset[str] | None:
    """The tenants the request's token covers (None: all); 401 without a valid token."""
    return _caller(context, request).tenants


def _require(caller: Caller, role: Role) -> None:
    """403 unless the caller's role allows what `role` may do."""
    if ROLES.index(caller.role) < ROLES.index(role):
        raise HttpProblem(
            403,
            "forbidden",
            f"this needs the {role} role (or above); {caller.user} has the {caller.role} role",
            "ask an admin for a token with that role ([api] tokens: role = ...)",
        )


def _candidate_tenants(context: ApiContext, allowed: frozenset[str] | None) -> list[str]:
    if allowed is not None:
        return sorted(allowed)
    known = context.directory.tenants() | context.worker.tenants() | context.configured_tenants
    return sorted(known | {flag["tenant"] for flag in context.flags.all()})


# --- forwarding ------------------------------------------------------------------------------


async def _ask_owner(
    context: ApiContext, request: web.Request, stage: str, partition: int, path: str, params: Any
) -> dict[str, Any] | None:
    """Ask the worker owning a partition, signed as a peer; None when it answers 404."""
    forwarded = bool(request.headers.get(FORWARDED))  # never forwarded twice
    allowed = frozenset() if forwarded else _tenants_of(context, request)
    return await ask_peer(context, stage, partition, path, params, allowed, forwarded=forwarded)


async def ask_peer(
    context: ApiContext,
    stage: str,
    partition: int,
    path: str,
    params: Any,
    allowed: frozenset[str] | None,
    *,
    forwarded: bool = False,
) -> dict[str, Any] | None:
    """Ask the worker owning a partition, signed as a peer for the tenants `allowed` (None:
    all); None when it answers 404. A request that was itself forwarded asks nobody."""
    if context.peer_secret is None:
        raise HttpProblem(
            503,
            "unavailable",
            f"partition {partition} of the {stage} stage is served by another worker, and this "
            "one has no peer secret to ask it with",
            "give every worker the same [api] peer_secret (JOURNEYS_PEER_SECRET)",
        )
    owner = context.directory.owner(stage, partition)
    if (
        forwarded
        or owner is None
        or owner.worker_id == context.worker_id
        or not owner.api_url
        or context.session is None
    ):
        raise HttpProblem(
            503,
            "unavailable",
            f"partition {partition} of the {stage} stage is not being served right now",
            "workers are starting or rebalancing; retry in a few seconds",
        )
    # The caller's token stays here: the owner is asked with the workers' own signature,
    # carrying the tenants this caller may see.
    url = URL(owner.api_url.rstrip("/") + path + "?" + urlencode(params), encoded=True)
    now = time.time()  # the freshness window is on the wall clock, whatever the API's clock
    headers = {
        FORWARDED: "1",
        **peers.sign(context.peer_secret, "GET", url.raw_path_qs, allowed, now),
    }
    try:
        async with context.session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status == 404:
                return None
            if response.status == 401:  # the peer refused our signature: not the caller's fault
                raise HttpProblem(
                    503,
                    "unavailable",
                    f"worker {owner.worker_id} refused this worker's peer signature",
                    "every worker needs the same [api] peer_secret (JOURNEYS_PEER_SECRET)",
                )
            body = await response.read()
            if response.status != 200:
                raise Relayed(response.status, body)
            result: dict[str, Any] = orjson.loads(body)
            return result
    except aiohttp.ClientError as exc:
        raise HttpProblem(
            503, "unavailable", f"worker {owner.worker_id} did not answer: {exc!r}", "retry"
        ) from None


async def _customer_for(
    context: ApiContext, request: web.Request, tenant: str, keys: list[str]
) -> str | None:
    partition = identity_partition(context.worker, tenant)
    if partition in context.worker.owned("ingest"):
        return lookup_customer(context.worker, tenant, keys)
    params = [("tenant", tenant), *(("key", key) for key in keys)]
    found = await _ask_owner(context, request, "ingest", partition, "/v1/internal/identity", params)
    return None if found is None else str(found["customer_id"])


async def _journey_dict(
    context: ApiContext, request: web.Request, tenant: str, customer_id: str
) -> dict[str, Any] | None:
    """A journey as shown, with people's decisions about its identifiers (held by ingest)
    applied to its `linked_by` and identifiers, as `journeys check` applies them."""
    from journeys.server.internal import decided_for  # it builds on this module's helpers

    found = await _journey_at_owner(context, request, tenant, customer_id, {})
    decided = {} if found is None else await decided_for(context, request, tenant, found)
    if not decided or found is None:
        return found
    return await _journey_at_owner(context, request, tenant, found["customer_id"], decided)


async def _journey_at_owner(
    context: ApiContext, request: web.Request, tenant: str, customer_id: str, decided: Any
) -> dict[str, Any] | None:
    for _ in range(8):  # merges chain rarely; a loop would be a bug
        partition = journey_partition(context.worker, tenant, customer_id)
        if partition in context.worker.owned("journeys"):
            found = await owned_journey(context, tenant, customer_id, decided)
            if isinstance(found, Forwarded):
                customer_id = found.customer_id
                continue
            return found
        params = {"tenant": tenant, "customer_id": customer_id}
        if decided:
            params["decided"] = orjson.dumps(decided).decode()
        answer = await _ask_owner(
            context, request, "journeys", partition, "/v1/internal/journey", params
        )
        if answer is not None and "forwarded_to" in answer:
            customer_id = str(answer["forwarded_to"])
            continue
        return answer
    return None


def _local_journey(
    context: ApiContext,
    tenant: str,
    customer_id: str,
    decided: Mapping[str, str],
    data_keys: Mapping[str, bytes] | None,
    held: list[FlagSnapshot],
) -> dict[str, Any] | Forwarded | None:
    """A journey of an owned partition as the API shows it (decoding and the rules: costly for
    a long journey, so callers run it off the event loop); `decided`: blocked key -> reason;
    `data_keys`: its customer's, to open its sealed fields with (`owned_journey`); `held`: the
    customer's flags in the flag index, whose `IDENTITY_CONFLICT`s ingest opened (`with_held`)."""
    found = read_journey(context.worker, tenant, customer_id)
    if found is None or isinstance(found, Forwarded):
        return found
    merges = read_merges(context.worker, tenant, customer_id)
    journey, merges = opened(found, merges, data_keys)
    return with_held(_view_dict(context, journey, merges, decided), held)


async def owned_journey(
    context: ApiContext, tenant: str, customer_id: str, decided: Mapping[str, str]
) -> dict[str, Any] | Forwarded | None:
    """`_local_journey` off the event loop, opened with the customer's ring, read where the
    tenant's ingest partition is (`rings`: another worker may hold it, and this one may have
    kept it a short while). A merged customer is followed before any ring is read."""
    from journeys.server.privacy.rings import data_keys_of  # it builds on this module's helpers

    if context.worker.sealer is not None:  # there is a ring to read: not for a merged id
        forward = forwarded(context.worker, tenant, customer_id)
        if forward is not None:
            return forward
    data_keys = await data_keys_of(context, tenant, customer_id)
    # copied here, on the loop that applies the flag topic (one lookup, no walk of the index);
    # every worker follows the whole topic, so the worker holding the journey has them too
    held = context.flags.snapshots_of(tenant, customer_id)
    found = await _off_loop(
        context, _local_journey, context, tenant, customer_id, decided, data_keys, held
    )
    if data_keys is not None and data_keys.stale:
        # the kept ring lacked a key the events name (a merge since, or a new start after an
        # erasure): read it afresh rather than show `[erased]` for a customer not erased
        data_keys = await data_keys_of(context, tenant, customer_id, fresh=True)
        found = await _off_loop(
            context, _local_journey, context, tenant, customer_id, decided, data_keys, held
        )
    return found


def _view_dict(
    context: ApiContext, journey: Journey, merges: tuple[Merge, ...], decided: Mapping[str, str]
) -> dict[str, Any]:
    tenant = journey.tenant
    fold = context.fold.with_decided(tenant, decided) if decided else context.fold
    # worked out from the journey, as `journeys check` does: the same answer on both paths
    links = linked_by(
        journey, fold.identity_for(tenant), fold.region_for(tenant), fold.hasher_for(tenant)
    )
    return view_to_dict(view(journey, context.clock(), fold, why=(links, merges)))


# --- handlers --------------------------------------------------------------------------------


def _context(request: web.Request) -> ApiContext:
    return request.app[_CONTEXT]


async def journey_by_id(request: web.Request) -> web.Response:
    """`GET /v1/journeys/{customer_id}[?tenant=]`: one customer's journey."""
    context = _context(request)
    allowed = _tenants_of(context, request)
    customer_id = request.match_info["customer_id"].strip().lower()
    tenants = _wanted_tenants(context, allowed, request.query.get("tenant"))
    for tenant in tenants:
        found = await _journey_dict(context, request, tenant, customer_id)
        if found is not None:
            return _json(found)
    _not_found(customer_id)


async def journey_by_identifier(request: web.Request) -> web.Response:
    """`GET /v1/journeys?<kind>=<value>[&tenant=]`: the journey holding an identifier."""
    context = _context(request)
    allowed = _tenants_of(context, request)
    kinds = [k for k in request.query if k != "tenant"]
    if len(kinds) != 1 or kinds[0] not in IDENTIFIER_KINDS:
        raise HttpProblem(
            400,
            "bad_request",
            "give exactly one identifier as a query parameter",
            f"one of {', '.join(IDENTIFIER_KINDS)}, e.g. ?phone=%2B447700900123",
        )
    kind = kinds[0]
    try:
        query = parse_query(f"{kind}:{request.query[kind]}")
    except JourneyLedgerError as exc:
        raise HttpProblem(400, "bad_request", str(exc), exc.hint) from None
    matches: list[dict[str, Any]] = []
    for tenant in _wanted_tenants(context, allowed, request.query.get("tenant")):
        fold = context.fold
        normalised = query.normalised(fold.region_for(tenant), fold.hasher_for(tenant))
        keys = [normalised.key]
        phone = normalised.phone
        if phone is not None and phone.country_code is not None and phone.national_key:
            keys.append(phone.national_key)  # the customer may only have given it nationally
        customer_id = await _customer_for(context, request, tenant, keys)
        if customer_id is None:
            continue
        found = await _journey_dict(context, request, tenant, customer_id)
        if found is not None:
            matches.append(found)
    if not matches:
        _not_found(f"{kind} {query.value!r}")
    if len(matches) > 1:
        raise HttpProblem(
            409,
            "ambiguous",
            f"{kind} {query.value!r} belongs to customers of several tenants: "
            + ", ".join(f"{m['tenant']}/{m['customer_id']}" for m in matches),
            "add &tenant=<tenant>",
        )
    return _json(matches[0])


def _wanted_tenants(
    context: ApiContext, allowed: frozenset[str] | None, asked: str | None
) -> list[str]:
    if asked is None:
        return _candidate_tenants(context, allowed)
    return [asked] if allowed is None or asked in allowed else []


def _moment(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value).astimezone(UTC).isoformat()
    except ValueError as exc:
        raise HttpProblem(400, "bad_request", f"{field}: {exc}") from None


async def post_events(request: web.Request) -> web.Response:
    """`POST /v1/events`: validate and write up to 500 events; a result for each."""
    context = _context(request)
    allowed = _tenants_of(context, request)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise HttpProblem(400, "bad_request", f"body: not JSON ({exc})") from None
    items = body.get("events") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise HttpProblem(400, "bad_request", 'body: a JSON array of events, or {"events": [...]}')
    if len(items) > MAX_EVENTS_PER_REQUEST:
        raise HttpProblem(
            413,
            "too_large",
            f"events: {len(items)} in one request; at most {MAX_EVENTS_PER_REQUEST}",
            "split the batch",
        )
    if context.producer is None:
        raise HttpProblem(503, "unavailable", "this worker does not accept events")
    results: list[dict[str, Any]] = []
    pending = []
    for index, item in enumerate(items):
        result = await _send_one(context, allowed, index, item)
        results.append(result)
        if "future" in result:
            pending.append(result)
    for result in pending:
        try:
            delivery = await result.pop("future")
        except Exception as exc:  # a broker error: say so, nothing was accepted for it
            result.update(status="failed", reason=f"not written to the log: {exc!r}")
            continue
        result.update(status="accepted", partition=delivery.partition, offset=delivery.offset)
    accepted = sum(1 for r in results if r["status"] == "accepted")
    failed = sum(1 for r in results if r["status"] == "failed")
    summary = {
        "accepted": accepted,
        "rejected": len(results) - accepted - failed,
        "failed": failed,
        "results": results,
    }
    return _json(summary, status=503 if failed else 200)


async def _send_one(
    context: ApiContext, allowed: frozenset[str] | None, index: int, item: Any
) -> dict[str, Any]:
    assert context.producer is not None
    # Echoed as stored: a card number in the id is masked (the producer holds the original).
    event_id = mask_value(item.get("event_id"))[0] if isinstance(item, dict) else None
    result: dict[str, Any] = {"index": index, "event_id": event_id}
    tenant = item.get("tenant") if isinstance(item, dict) else None
    if allowed is not None and isinstance(tenant, str) and tenant not in allowed:
        problems = [{"field": "tenant", "reason": f"this token may not write for {tenant!r}"}]
        return {**result, "status": "rejected", "problems": problems}
    if isinstance(item, dict) and item.get("type") in _SIGNED_TYPES:
        problems = [{"field": "type", "reason": _SIGNED_TYPES[item["type"]]}]
        return {**result, "status": "rejected", "problems": problems}
    try:
        raw = orjson.dumps(item)
    except orjson.JSONEncodeError:  # orjson stops at 255 levels: far past the door's limit
        problems = [{"field": "", "reason": _TOO_DEEP}]
        return {**result, "status": "rejected", "problems": problems}
    if len(raw) > MAX_EVENT_BYTES:  # the validate stage dead-letters at this limit: refuse here
        reason = (
            f"too large: {len(raw):,} bytes, the limit is {MAX_EVENT_BYTES:,}; keep documents "
            "and attachments out of events (send a reference instead)"
        )
        return {**result, "status": "rejected", "problems": [{"field": "", "reason": reason}]}
    try:
        future = await context.producer.send(item if isinstance(item, dict) else raw)
    except InvalidEventError as exc:
        problems = [{"field": p.field, "reason": p.reason} for p in exc.problems]
        return {**result, "status": "rejected", "problems": problems}
    return {**result, "future": future}


# A person's action or decision is recorded under the token's user, never a name in the body:
# through /v1/events anyone could sign as anyone.
_SIGNED_TYPES = {
    **dict.fromkeys(
        HANDLING_TYPES, "an action on a flag is sent to POST /v1/flags/{flag_id}/actions"
    ),
    **dict.fromkeys(DECISION_TYPES, "an identity decision is sent to POST /v1/identity/decisions"),
}

_TOO_DEEP = f"nested too deep: at most {MAX_DEPTH} levels of objects and arrays (the event is one)"


async def health(request: web.Request) -> web.Response:
    """`GET /health`: liveness and what this worker serves (no customer data)."""
    context = _context(request)
    worker = context.worker
    return _json(
        {
            "status": "ok",
            "worker_id": context.worker_id,
            "partitions": {
                "ingest": sorted(worker.owned("ingest")),
                "journeys": sorted(worker.owned("journeys")),
            },
            "workers": len(context.directory.members),
            "unauthenticated_member_records": context.directory.unauthenticated,
            "followers": context.followers.to_dict(),
        }
    )


async def openapi(request: web.Request) -> web.Response:
    """`GET /v1/openapi.json`: the API's OpenAPI document (kept in the repository)."""
    del request
    document = resources.files("journeys.server").joinpath("openapi.json").read_bytes()
    return web.Response(body=document, content_type="application/json")


def routes() -> Iterable[web.RouteDef]:
    """Every route of the API."""
    from journeys.server import deliveries, erasure, flag_actions, graph, internal  # built on these
    from journeys.server.privacy import export, rings
    from journeys.server.stats import stats_routes  # it builds on this module's helpers

    return [
        web.get("/health", health),
        *graph.routes(),  # /metrics and /v1/identity/stats
        web.get("/v1/openapi.json", openapi),
        web.get("/v1/journeys", journey_by_identifier),
        web.get("/v1/journeys/{customer_id}", journey_by_id),
        *stats_routes(),  # /v1/flags and /v1/stats/flags
        web.post("/v1/events", post_events),
        *deliveries.routes(),
        *internal.routes(),  # /v1/internal/...: what one worker asks another
        *flag_actions.routes(),
        *erasure.routes(),
        *export.routes(),  # /v1/customers/{customer_id}/export
        *rings.routes(),  # /v1/internal/rings: wrapped keys, between workers only
    ]


MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body; a larger one is answered 413."""


def create_app(context: ApiContext) -> web.Application:
    """The API (and the web pages) as an aiohttp application."""
    from journeys.server.web import add_pages

    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY_BYTES)
    app[_CONTEXT] = context
    app.add_routes(routes())
    add_pages(app)
    return app
