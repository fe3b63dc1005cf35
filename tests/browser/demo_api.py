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
- Every `/v1` request needs `Authorization: Bearer <token>`, else 401
  `{"error": {"code": "unauthorized", …}}`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from journeys.cli.check import CheckReport, check_lines
from journeys.demo import demo_bytes
from journeys.server.web import add_pages
from journeys.settings import load_settings
from projections.handling.stats import DEFAULT_WINDOW, StatsRequestError, StatsWindow, flag_stats
from projections.ledger import Ledger
from projections.settings import FoldSettings
from projections.view import JourneyView, flag_to_dict, view_to_dict
from schemas.codec import Accepted, decode_lines
from schemas.errors import EventConflictError
from schemas.events import IDENTIFIER_KINDS
from schemas.types import parse_timestamp

TOKEN = "jl-test-7f3c9a1e5b2d4086"
"""The one token the stand-in accepts; it reads every tenant."""

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


def load_demo() -> Demo:
    """Fold the bundled demo file exactly as `journeys check --demo` does (default settings)."""
    settings = load_settings(None, {}).fold_settings()
    lines = demo_bytes().splitlines(keepends=True)
    report = check_lines(lines, settings, AS_OF)
    ledger = Ledger(settings)
    for result in decode_lines(lines):
        if isinstance(result, Accepted):
            try:
                ledger.add(result.event)
            except EventConflictError:
                continue
    views = {v.customer_id: v for v in report.journeys}
    return Demo(settings, report, ledger, views)


def _error(status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    body = json.dumps({"error": {"code": code, "message": message}})
    return status(text=body, content_type="application/json")


@dataclass(slots=True)
class RequestSeen:
    """One request to the stand-in API, for assertions about what the pages sent."""

    path: str
    query: str
    authorization: str | None


SEEN = web.AppKey("seen", list[RequestSeen])


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
            if header != f"Bearer {TOKEN}":
                raise _error(web.HTTPUnauthorized, "unauthorized", "missing or unknown token")
        return await handler(request)

    async def journey_by_id(request: web.Request) -> web.StreamResponse:
        customer_id = request.match_info["customer_id"]
        if customer_id not in demo.views:
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
        if found is None:
            raise _error(web.HTTPNotFound, "not_found", f"no customer holds {kind} {value}")
        return web.json_response(view_to_dict(found))

    async def list_flags(request: web.Request) -> web.StreamResponse:
        query = request.query
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

    app = web.Application(middlewares=[auth])
    app[SEEN] = seen
    app.router.add_get("/v1/journeys", journey_by_identifier)
    app.router.add_get("/v1/journeys/{customer_id}", journey_by_id)
    app.router.add_get("/v1/flags", list_flags)
    app.router.add_get("/v1/stats/flags", stats)
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
