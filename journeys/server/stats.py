"""Flags read from the flag index in memory: the list (`GET /v1/flags`) and the dashboard's
trends (`GET /v1/stats/flags`).

The list's sealed handling notes are opened with their customers' rings
(`journeys.server.privacy.notes`). The counting is `projections.handling.stats.flag_stats`
(pure); this module reads the request, fills in the window from the API's clock, and runs the
computation off the event loop: a tenant may have many flags, and every other request must
keep being served meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from journeys.server.api import _caller, _context, _json, _moment, _off_loop, _tenants_of
from journeys.server.privacy.notes import opened_flags
from journeys.server.problems import HttpProblem
from projections.handling.stats import DEFAULT_WINDOW, StatsRequestError, StatsWindow, flag_stats
from schemas.outputs import FlagSnapshot
from streams.flag_index import HANDLING_FILTERS, FlagKey, FlagQuery

MAX_PAGE = 500
"""The largest page of flags."""


async def list_flags(request: web.Request) -> web.Response:
    """`GET /v1/flags`: standing flags across customers, newest first, paginated."""
    context = _context(request)
    caller = _caller(context, request)
    q = request.query
    status = q.get("status")
    if status not in (None, "open", "resolved"):
        raise HttpProblem(400, "bad_request", "status: must be open or resolved")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        raise HttpProblem(400, "bad_request", "limit: must be a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise HttpProblem(400, "bad_request", f"limit: must be between 1 and {MAX_PAGE}")
    handling = q.get("handling")
    if handling not in (None, *HANDLING_FILTERS):
        raise HttpProblem(400, "bad_request", f"handling: one of {', '.join(HANDLING_FILTERS)}")
    query = FlagQuery(
        tenants=caller.tenants,
        tenant=q.get("tenant"),
        rule=q.get("rule"),
        status=status,
        site=q.get("site"),
        since=_moment(q.get("since"), "since"),
        until=_moment(q.get("until"), "until"),
        handling=handling,
        assignee=q.get("assignee"),
        user=caller.user,
        limit=limit,
        cursor=q.get("cursor"),
    )
    try:
        page = context.flags.page(query)
    except ValueError as exc:
        raise HttpProblem(400, "bad_request", str(exc)) from None
    flags = await opened_flags(context, page.flags)
    return _json({"flags": flags, "next_cursor": page.next_cursor})


async def flag_trends(request: web.Request) -> web.Response:
    """`GET /v1/stats/flags?tenant=&since=&until=&bucket=day`: flags open over time, medians of
    time to acknowledge and to resolve, the oldest unacknowledged high flags, the low scores."""
    context = _context(request)
    allowed = _tenants_of(context, request)
    q = request.query
    until = _parsed(_moment(q.get("until"), "until")) or context.clock().astimezone(UTC)
    since = _parsed(_moment(q.get("since"), "since")) or until - DEFAULT_WINDOW
    asked = q.get("tenant") or None
    window = StatsWindow(
        since=since, until=until, bucket=q.get("bucket", "day"), tenant=asked, tenants=allowed
    )
    # A copy of the index's entries, taken on the loop that updates it (cheap: references to
    # immutable snapshots); turning them into documents and counting happen off the loop.
    standing = list(context.flags.standing())
    try:
        document = await _off_loop(context, _compute, standing, window)
    except StatsRequestError as exc:
        raise HttpProblem(400, "bad_request", str(exc.args[0]), exc.hint or None) from None
    return _json(document)


def _compute(
    standing: Iterable[tuple[FlagKey, FlagSnapshot]], window: StatsWindow
) -> dict[str, Any]:
    documents = (
        {**flag.to_document(), "tenant": tenant, "customer_id": customer_id}
        for (tenant, customer_id, _), flag in standing
        if (window.tenants is None or tenant in window.tenants)
        and (window.tenant is None or tenant == window.tenant)
    )
    return flag_stats(documents, window)


def _parsed(moment: str | None) -> datetime | None:
    return None if moment is None else datetime.fromisoformat(moment)


def stats_routes() -> list[web.RouteDef]:
    """The routes of this module, registered by `journeys.server.api.routes`."""
    return [web.get("/v1/flags", list_flags), web.get("/v1/stats/flags", flag_trends)]
