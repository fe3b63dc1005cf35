"""A stand-in for the ledger's JSON API, serving the bundled demo journeys with `add_pages`.

Test support only: the real API (on the worker's state) replaces it. It answers exactly the
contract the pages are built against, from the same pure code `journeys check --demo` runs:
`check_lines` folds the demo file with the default settings at a fixed `as_of`, and the JSON
is `view_to_dict` / `flag_to_dict`.

- `GET /v1/journeys/{customer_id}` and `GET /v1/journeys?<kind>=<value>` (one identifier, any
  kind of `IDENTIFIER_KINDS`, normalised as the ledger does): the journey as `view_to_dict`
  gives it; 404 `{"error": {"code": "not_found", …}}`.
- `GET /v1/flags?tenant=&rule=&status=&site=&since=&until=&limit=&cursor=`: `{"flags": [...],
  "next_cursor": str | null}`, each flag as `flag_to_dict` plus `tenant` and `customer_id`,
  newest first by `opened_at`.
- `GET /v1/stats/flags?tenant=&since=&until=&bucket=`: the trends, from the same pure function
  the API calls (`projections.handling.stats.flag_stats`) over those flags; `until` defaults to
  `AS_OF`; 400 `{"error": {"code": "bad_request", …}}` naming the parameter.
- `GET /v1/flags` also takes `handling=unacknowledged|mine|assigned` (nobody acted or the
  state is `unacknowledged`; an assignee is set; the assignee is the caller) and `assignee=`.
- `GET /v1/me`: `{"user", "role": "viewer"|"manager"|"admin", "tenants": [...] | "*"}`.
  `TOKEN` is an admin of every tenant; `MANAGER_TOKEN` is `sam@acme`, a manager of
  acme-motors; `VIEWER_TOKEN` is `vic@acme`, a viewer of acme-motors. A token limited to some
  tenants sees only their journeys and flags (others are 404, as missing).
- `POST /v1/flags/{flag_id}/actions` `{"action", "note"?, "assignee"?, "until"?}`: a manager or
  admin acts on a flag. The stand-in builds the `flag.*` event the ledger would record (system
  `journeys`, channel `system`, actor and `by` the caller, an identifier of the flag's journey),
  checks it with `schemas.codec.validate_document`, adds it to its events and folds them all
  again, so the handling the pages then read is the pure code's. 202 `{"event_id", "flag_id",
  "action", "tenant", "customer_id"}`; 400 `{"error": {"code": "bad_request", "message":
  "<field>: …"}}` (assign needs `assignee`, note and resolve need `note`, snooze needs a
  future `until`); 403 `forbidden` with a `hint` for a viewer; 404 for an unknown flag.
  Actions happen on the stand-in's clock: `AS_OF`, one second later for each action, and the
  flags are evaluated as of the latest action (the demo's flags do not change in that time).
  With `Demo.hold` set, an action is answered 202 but folded only at `Demo.release()`, as the
  ledger's worker folds it a moment after the API accepted it.
- `POST /v1/identity/decisions` `{"decision": "block"|"unblock"|"split"|"merge", "identifier":
  "KIND:VALUE", "tenant", "reason"}` (a merge may name `"customers": [two ids]` and `"via":
  "KIND:VALUE"` instead of the identifier): an admin only (403 otherwise); 202 `{"event_id"}`,
  the decision kept in `Demo.decisions` for the tests to read (it is not folded).
- Every `/v1` request needs `Authorization: Bearer <token>`, else 401
  `{"error": {"code": "unauthorized", …}}`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from journeys.cli.check import CheckReport, check_lines
from journeys.demo import demo_bytes
from journeys.server.web import add_pages
from journeys.settings import load_settings
from projections.handling.handling import ACTIONS, EVENT_TYPE_OF
from projections.handling.stats import DEFAULT_WINDOW, StatsRequestError, StatsWindow, flag_stats
from projections.ledger import Ledger
from projections.settings import FoldSettings
from projections.view import JourneyView, flag_to_dict, view_to_dict
from schemas.codec import Accepted, decode_lines, encode_event, validate_document
from schemas.errors import EventConflictError, InvalidEventError
from schemas.events import IDENTIFIER_KINDS, Event
from schemas.types import parse_timestamp

TOKEN = "jl-test-7f3c9a1e5b2d4086"
"""The admin's token: it reads every tenant."""

MANAGER_TOKEN = "jl-test-manager-3b81d0c2"
"""`sam@acme`, a manager of acme-motors: reads it and acts on its flags."""

VIEWER_TOKEN = "jl-test-viewer-91e6a7f4"
"""`vic@acme`, a viewer of acme-motors: reads it only."""

Role = Literal["viewer", "manager", "admin"]
"""What a user may do: read; also act on flags; also make identity decisions."""


@dataclass(frozen=True, slots=True)
class User:
    """Who a token belongs to, their role and the tenants they see (None: every tenant)."""

    user: str
    role: Role
    tenants: frozenset[str] | None

    def sees(self, tenant: str) -> bool:
        """Whether the user reads this tenant."""
        return self.tenants is None or tenant in self.tenants

    def to_dict(self) -> dict[str, Any]:
        """The user as `GET /v1/me` returns it."""
        tenants: list[str] | str = "*" if self.tenants is None else sorted(self.tenants)
        return {"user": self.user, "role": self.role, "tenants": tenants}


USERS: dict[str, User] = {
    TOKEN: User("ops@ledger", "admin", None),
    MANAGER_TOKEN: User("sam@acme", "manager", frozenset({"acme-motors"})),
    VIEWER_TOKEN: User("vic@acme", "viewer", frozenset({"acme-motors"})),
}
"""The tokens the stand-in accepts."""

FLAG_ACTIONS = ("acknowledge", "assign", "note", "resolve", "reopen", "snooze")
"""The actions `POST /v1/flags/{flag_id}/actions` takes."""

DECISIONS = ("block", "unblock", "split", "merge")
"""The decisions `POST /v1/identity/decisions` takes."""

AS_OF = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)
"""The moment the demo's flags are evaluated at (the demo file's latest event)."""

DEFAULT_LIMIT = 50


@dataclass(slots=True)
class Demo:
    """The demo journeys as `journeys check --demo` folds them, and a ledger to look them up."""

    settings: FoldSettings
    report: CheckReport
    ledger: Ledger
    views: dict[str, JourneyView] = field(default_factory=dict)
    lines: list[bytes] = field(default_factory=list)
    """The demo file's lines, then the events people added through the stand-in."""
    as_of: datetime = AS_OF
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """The identity decisions posted, as received plus `by` and `event_id`."""

    clock: datetime = AS_OF
    """The moment of the latest action."""
    hold: bool = False
    """While true, events are accepted but folded only by `release()`: the ledger's lag."""
    pending: list[Event] = field(default_factory=list)

    def add_event(self, document: dict[str, Any]) -> str:
        """Validate an event document, add it, fold everything again; its event id."""
        event = validate_document(document)
        self.pending.append(event)
        if not self.hold:
            self.release()
        return event.event_id

    def release(self) -> None:
        """Fold the events held back (all of them, then stop holding)."""
        self.hold = False
        for event in self.pending:
            self.lines.append(encode_event(event) + b"\n")
            self.as_of = max(self.as_of, event.occurred_at)
        self.pending.clear()
        self.report, self.ledger, self.views = _fold(self.lines, self.settings, self.as_of)

    def next_moment(self) -> datetime:
        """The stand-in's clock for an action: one second after the latest one."""
        self.clock = max(self.clock, self.as_of) + timedelta(seconds=1)
        return self.clock

    def flag(self, flag_id: str) -> dict[str, Any] | None:
        """One flag as the flags endpoint returns it."""
        return next((f for f in self.flags() if f["flag_id"] == flag_id), None)

    def journey_dict(self, customer_id: str) -> dict[str, Any]:
        """The journey as the API returns it."""
        return view_to_dict(self.views[customer_id])

    def find(self, kind: str, value: str) -> JourneyView | None:
        """The journey holding an identifier (after normalisation), in any tenant."""
        for tenant in sorted(self.ledger.identities):
            journey = self.ledger.find(tenant, kind, value)
            if journey is not None:
                return self.views[journey.customer_id]
        return None

    def flags(self) -> list[dict[str, Any]]:
        """Every flag of every journey as the flags endpoint returns it, newest first."""
        found = [
            {**flag_to_dict(flag), "tenant": v.tenant, "customer_id": v.customer_id}
            for v in self.views.values()
            for flag in v.flags
        ]
        found.sort(key=lambda f: f["flag_id"])
        found.sort(key=lambda f: parse_timestamp(f["opened_at"]), reverse=True)
        return found

    def open_flags(self) -> list[dict[str, Any]]:
        """The open ones."""
        return [f for f in self.flags() if f["status"] == "open"]


def load_demo(settings: FoldSettings | None = None) -> Demo:
    """Fold the bundled demo file exactly as `journeys check --demo` does (default settings)."""
    settings = settings or load_settings(None, {}).fold_settings()
    lines = demo_bytes().splitlines(keepends=True)
    report, ledger, views = _fold(lines, settings, AS_OF)
    return Demo(settings, report, ledger, views, list(lines), AS_OF)


def _fold(
    lines: list[bytes], settings: FoldSettings, as_of: datetime
) -> tuple[CheckReport, Ledger, dict[str, JourneyView]]:
    report = check_lines(lines, settings, as_of)
    ledger = Ledger(settings)
    for result in decode_lines(lines):
        if isinstance(result, Accepted):
            try:
                ledger.add(result.event)
            except EventConflictError:
                continue
    return report, ledger, {v.customer_id: v for v in report.journeys}


def _error(
    status: type[web.HTTPException], code: str, message: str, hint: str | None = None
) -> web.HTTPException:
    problem = {"code": code, "message": message} | ({"hint": hint} if hint else {})
    return status(text=json.dumps({"error": problem}), content_type="application/json")


def _bad(message: str) -> web.HTTPException:
    return _error(web.HTTPBadRequest, "bad_request", message)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{name}: must be a string")
    return value


def action_document(
    demo: Demo, user: User, flag: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """The `flag.*` event a person's action on a flag is recorded as; 400 when it lacks a field."""
    action = body.get("action")
    if action not in FLAG_ACTIONS:
        raise _bad(f"action: must be one of {', '.join(FLAG_ACTIONS)}")
    note, assignee, until = (_text(body, k) for k in ("note", "assignee", "until"))
    payload: dict[str, Any] = {"flag_id": flag["flag_id"], "by": user.user}
    if note is not None and note.strip():
        payload["note"] = note
    if action in ("note", "resolve") and "note" not in payload:
        raise _bad("note: a " + ("reason" if action == "resolve" else "note") + " is required")
    if action == "assign":
        if assignee is None or not assignee.strip():
            raise _bad("assignee: required to assign a flag")
        payload["assignee"] = assignee.strip()
    moment = demo.next_moment()
    if action == "snooze":
        if until is None:
            raise _bad("until: required to snooze a flag")
        try:
            ends = parse_timestamp(until)
        except ValueError as exc:
            raise _bad(f"until: {exc}") from None
        if ends <= moment:
            raise _bad("until: must be in the future")
        payload["until"] = ends.isoformat()
    journey = demo.journey_dict(flag["customer_id"])
    kind, value = next(
        (i["kind"], i["value"])
        for i in journey["identifiers"]
        if not i.get("not_used_for_matching")
    )
    return {
        "event_id": f"act_{uuid.uuid4().hex[:16]}",
        "type": EVENT_TYPE_OF[action],
        "occurred_at": moment.isoformat(),
        "tenant": flag["tenant"],
        "source": {"system": "journeys", "channel": "system", "actor": user.user},
        "customer": {kind: value},
        "payload": payload,
        "schema_version": 1,
    }


def matches_handling(flag: dict[str, Any], handling: str | None, user: User) -> bool:
    """The `handling=` filter of `GET /v1/flags`, as the real API applies it."""
    state: dict[str, Any] = flag.get("handling") or {}
    if handling == "unacknowledged":
        return bool(state.get("state", "unacknowledged") == "unacknowledged")
    if handling == "assigned":
        return bool(state.get("assignee"))
    if handling == "mine":
        return bool(state.get("assignee") == user.user)
    return True


@dataclass(slots=True)
class RequestSeen:
    """One request to the stand-in API, for assertions about what the pages sent."""

    path: str
    query: str
    authorization: str | None


SEEN = web.AppKey("seen", list[RequestSeen])
USER = web.RequestKey("user", User)


def make_app(
    demo: Demo, *, max_limit: int = 200, flags: list[dict[str, Any]] | None = None
) -> web.Application:
    """The pages plus the stand-in API; `max_limit` caps a page of flags, as a server may.

    `flags` replaces the demo's flags (newest first) in the flag listing and the trends.
    """
    seen: list[RequestSeen] = []

    def standing() -> list[dict[str, Any]]:
        return demo.flags() if flags is None else flags

    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            header = request.headers.get("Authorization")
            seen.append(RequestSeen(request.path, request.query_string, header))
            user = USERS.get((header or "").removeprefix("Bearer "))
            if user is None or not (header or "").startswith("Bearer "):
                raise _error(web.HTTPUnauthorized, "unauthorized", "missing or unknown token")
            request[USER] = user
        return await handler(request)

    def visible(request: web.Request, customer_id: str) -> bool:
        user: User = request[USER]
        return customer_id in demo.views and user.sees(demo.views[customer_id].tenant)

    async def journey_by_id(request: web.Request) -> web.StreamResponse:
        customer_id = request.match_info["customer_id"]
        if not visible(request, customer_id):
            raise _error(web.HTTPNotFound, "not_found", f"no customer {customer_id}")
        return web.json_response(demo.journey_dict(customer_id))

    async def journey_by_identifier(request: web.Request) -> web.StreamResponse:
        given = [(k, v) for k, v in request.query.items() if k in IDENTIFIER_KINDS]
        unknown = [k for k in request.query if k not in IDENTIFIER_KINDS]
        if len(given) != 1 or unknown:
            raise _error(
                web.HTTPBadRequest,
                "bad_request",
                "give exactly one identifier: " + ", ".join(IDENTIFIER_KINDS),
            )
        kind, value = given[0]
        found = demo.find(kind, value)
        if found is None or not visible(request, found.customer_id):
            raise _error(web.HTTPNotFound, "not_found", f"no customer holds {kind} {value}")
        return web.json_response(view_to_dict(found))

    async def list_flags(request: web.Request) -> web.StreamResponse:
        query = request.query
        user: User = request[USER]
        handling = query.get("handling") or None
        if handling not in (None, "unacknowledged", "mine", "assigned"):
            raise _bad("handling: must be unacknowledged, mine or assigned")
        try:
            limit = min(max(int(query.get("limit", DEFAULT_LIMIT)), 1), max_limit)
            offset = int(query.get("cursor") or 0)
            since = parse_timestamp(query["since"]) if query.get("since") else None
            until = parse_timestamp(query["until"]) if query.get("until") else None
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, "bad_request", str(exc)) from None
        chosen = []
        for flag in standing():
            opened = parse_timestamp(flag["opened_at"])
            if (
                (query.get("tenant") and flag["tenant"] != query["tenant"])
                or (query.get("rule") and flag["rule"] != query["rule"])
                or (query.get("status") and flag["status"] != query["status"])
                or (query.get("site") and query["site"] not in flag["sites"])
                or (since is not None and opened < since)
                or (until is not None and opened >= until)
                or not user.sees(flag["tenant"])
                or not matches_handling(flag, handling, user)
                or (
                    query.get("assignee")
                    and (flag.get("handling") or {}).get("assignee") != query["assignee"]
                )
            ):
                continue
            chosen.append(flag)
        page = chosen[offset : offset + limit]
        more = offset + limit < len(chosen)
        return web.json_response(
            {"flags": page, "next_cursor": str(offset + limit) if more else None}
        )

    async def stats(request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            until = parse_timestamp(query["until"]) if query.get("until") else AS_OF
            since = (
                parse_timestamp(query["since"]) if query.get("since") else until - DEFAULT_WINDOW
            )
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, "bad_request", str(exc)) from None
        window = StatsWindow(since, until, query.get("bucket", "day"), query.get("tenant") or None)
        try:
            return web.json_response(flag_stats(standing(), window))
        except StatsRequestError as exc:
            raise _error(web.HTTPBadRequest, "bad_request", str(exc.args[0])) from None

    async def me(request: web.Request) -> web.StreamResponse:
        user: User = request[USER]
        return web.json_response(user.to_dict())

    async def act(request: web.Request) -> web.StreamResponse:
        user: User = request[USER]
        flag = demo.flag(request.match_info["flag_id"])
        if flag is None or not user.sees(flag["tenant"]):
            raise _error(web.HTTPNotFound, "not_found", f"no flag {request.match_info['flag_id']}")
        if user.role == "viewer":
            raise _error(
                web.HTTPForbidden,
                "forbidden",
                f"{user.user} may read flags but not act on them",
                "ask an admin for the manager role",
            )
        document = action_document(demo, user, flag, await _json_object(request))
        try:
            event_id = demo.add_event(document)
        except InvalidEventError as exc:
            problems = "; ".join(
                f"{p.field.removeprefix('payload.')}: {p.reason}" for p in exc.problems
            )
            raise _bad(problems) from None
        body = {
            "event_id": event_id,
            "flag_id": flag["flag_id"],
            "action": ACTIONS[document["type"]],
            "tenant": flag["tenant"],
            "customer_id": flag["customer_id"],
        }
        return web.json_response(body, status=202)

    async def decide(request: web.Request) -> web.StreamResponse:
        user: User = request[USER]
        if user.role != "admin":
            raise _error(
                web.HTTPForbidden,
                "forbidden",
                f"{user.user} may not make identity decisions",
                "identity decisions are an admin's",
            )
        body = await _json_object(request)
        if body.get("decision") not in DECISIONS:
            raise _bad(f"decision: must be one of {', '.join(DECISIONS)}")
        customers = body.get("customers")
        if customers is not None and (
            body.get("decision") != "merge"
            or not isinstance(customers, list)
            or len(customers) != 2
            or any(demo.views.get(str(c)) is None for c in customers)
        ):
            raise _bad("customers: two customer ids, for merge only")
        identifier = _text(body, "via" if customers else "identifier") or ""
        kind, _, value = identifier.partition(":")
        if kind not in IDENTIFIER_KINDS or not value.strip():
            raise _bad("identifier: must be KIND:VALUE with a known kind")
        tenant = _text(body, "tenant") or ""
        if not user.sees(tenant) or tenant not in demo.ledger.identities:
            raise _bad("tenant: unknown tenant")
        if not (_text(body, "reason") or "").strip():
            raise _bad("reason: required")
        event_id = f"dec_{uuid.uuid4().hex[:16]}"
        demo.decisions.append({**body, "by": user.user, "event_id": event_id})
        return web.json_response({"event_id": event_id}, status=202)

    app = web.Application(middlewares=[auth])
    app[SEEN] = seen
    app.router.add_get("/v1/journeys", journey_by_identifier)
    app.router.add_get("/v1/journeys/{customer_id}", journey_by_id)
    app.router.add_get("/v1/flags", list_flags)
    app.router.add_get("/v1/stats/flags", stats)
    app.router.add_get("/v1/me", me)
    app.router.add_post("/v1/flags/{flag_id}/actions", act)
    app.router.add_post("/v1/identity/decisions", decide)
    add_pages(app)
    return app


class ServerThread:
    """An aiohttp application served on 127.0.0.1 from its own thread and event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    def __enter__(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=15)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        self._loop.close()

    @property
    def seen(self) -> list[RequestSeen]:
        """The `/v1` requests received so far."""
        return self.app[SEEN]
