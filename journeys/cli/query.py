"""`journeys journey` and `journeys flags`: the query API from the command line."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from journeys.cli.render import flag_line, journey_panel
from journeys.sdk.client import ApiClient, flag_from_dict, view_from_dict
from journeys.settings import API_ENV, TOKEN_ENV, ClientSection
from schemas.errors import ApiError, JourneyLedgerError

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


def open_client(section: ClientSection, api: str | None, token: str | None) -> ApiClient:
    """A client for `--api`/`--token`, else `[client]` settings (`JOURNEYS_API`/`JOURNEYS_TOKEN`)."""
    base = api or section.api
    if not base:
        raise ApiError(
            "no API address given",
            code="no_api",
            hint=f"set {API_ENV} or give --api; `journeys up` prints it",
        )
    bearer = token or section.token
    if not bearer:
        raise ApiError(
            "no token given",
            code="no_token",
            hint=f"set {TOKEN_ENV} or give --token; `journeys up` prints one",
        )
    return ApiClient(base, bearer)


def report_error(exc: JourneyLedgerError) -> int:
    """Print the error and its hint on standard error; the exit status it calls for."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text("error: ", style="red") + Text(str(exc))
    )
    if isinstance(exc, ApiError) and exc.status == 404:
        return EXIT_NOT_FOUND
    return EXIT_USAGE


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


def journey_command(client: ApiClient, identifier: str, *, as_json: bool) -> int:
    """Print one journey: as a panel (identifiers, timeline, flags) or as the API's JSON."""
    try:
        with client:
            found = client.journey(identifier)
            if as_json:
                _print_json(found)
            else:
                Console(highlight=False).print(journey_panel(view_from_dict(found)))
    except JourneyLedgerError as exc:
        return report_error(exc)
    return EXIT_OK


def flags_command(
    client: ApiClient, filters: dict[str, Any], *, every_page: bool, as_json: bool
) -> int:
    """Print flags newest first: one page (or every page), as text or as the API's JSON."""
    try:
        with client:
            if every_page:
                page: dict[str, Any] = {
                    "flags": list(client.iter_flags(**filters)),
                    "next_cursor": None,
                }
            else:
                page = client.flags(**filters)
            if as_json:
                _print_json(page)
            else:
                _render_flags(Console(highlight=False), page)
    except JourneyLedgerError as exc:
        return report_error(exc)
    return EXIT_OK


def _render_flags(console: Console, page: dict[str, Any]) -> None:
    flags = page.get("flags", [])
    for data in flags:
        try:
            flag = flag_from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(
                f"the API's flag could not be read: {exc}",
                code="bad_response",
                hint="use --format json, or a journeys CLI of the same version as the API",
            ) from None
        where = Text()
        where.append(str(data.get("tenant", "?")), style="bold")
        where.append(f" · {data.get('customer_id', '?')}")
        if flag.sites:
            where.append(f" · {', '.join(flag.sites)}", style="dim")
        if flag.systems:
            where.append(f" · {', '.join(flag.systems)}", style="dim")
        console.print(where)
        console.print(flag_line(flag))
    opened = sum(1 for f in flags if f.get("status") == "open")
    summary = f"{len(flags)} flags ({opened} open)" if flags else "no flags match"
    cursor = page.get("next_cursor")
    if cursor:
        summary += f"; more: --all, or --cursor {cursor}"
    console.print(summary)
