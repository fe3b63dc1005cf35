"""`journeys journey` and `journeys flags`: the query API from the command line; and a split
or confirmed merge named by customer ids, resolved through the API to the identifier the
decision event names (`projections.handling.resolve`; the ids are recorded beside it)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.text import Text

from journeys.cli.app import (
    ApiOption,
    FormatOption,
    OutputFormat,
    TokenOption,
    app,
    parse_moment,
    settings_of,
)
from journeys.cli.errors import EXIT_OK, api_failure
from journeys.cli.render import flag_line, journey_panel
from journeys.forensics.terminal import SafeConsole
from journeys.sdk.client import (
    NOT_FOUND_HINT,
    ApiClient,
    ApiError,
    flag_from_dict,
    view_from_dict,
)
from journeys.settings import API_ENV, TOKEN_ENV, ClientSection
from projections.handling.resolve import Resolved, resolve_merge, resolve_split
from projections.replay import CUSTOMER_ID, parse_query
from projections.view import LEFT_OUT
from schemas.errors import JourneyLedgerError, UnknownIdentifierError


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
                console = SafeConsole(highlight=False)
                console.print(journey_panel(view_from_dict(found)))
                left_out = found.get(LEFT_OUT)
                if isinstance(left_out, int) and left_out > 0:
                    console.print(
                        f"{left_out} older IDENTITY_CONFLICT flags not shown (GET /v1/flags)"
                    )
    except JourneyLedgerError as exc:
        return api_failure(exc)
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
                _render_flags(SafeConsole(highlight=False), page)
    except JourneyLedgerError as exc:
        return api_failure(exc)
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
        handling = data.get("handling")
        if isinstance(handling, dict):
            console.print(Text(f"  {handling_line(handling)}", style="dim"))
    opened = sum(1 for f in flags if f.get("status") == "open")
    summary = f"{len(flags)} flags ({opened} open)" if flags else "no flags match"
    cursor = page.get("next_cursor")
    if cursor:
        summary += f"; more: --all, or --cursor {cursor}"
    console.print(summary, markup=False)


def handling_line(handling: dict[str, Any]) -> str:
    """What people did about a flag, in one line: its state, who has it, who acted."""
    parts = [str(handling.get("state", "?"))]
    facts = (
        ("assignee", "assigned to {}"),
        ("acknowledged_by", "acknowledged by {}"),
        ("resolved_by", "resolved by {}"),
        ("snoozed_until", "snoozed until {}"),
        ("reopened_because", "{}"),
    )
    parts += [text.format(handling[key]) for key, text in facts if handling.get(key)]
    notes = handling.get("notes") or []
    if notes:
        parts.append(f"{len(notes)} note(s)")
    return " · ".join(parts)


class StatusFilter(StrEnum):
    """Which flags `journeys flags` lists."""

    OPEN = "open"
    RESOLVED = "resolved"


class HandlingFilter(StrEnum):
    """Which flags `journeys flags --handling` lists."""

    UNACKNOWLEDGED = "unacknowledged"
    ASSIGNED = "assigned"
    MINE = "mine"


def _query_client(ctx: typer.Context, api: str | None, token: str | None) -> ApiClient:
    try:
        return open_client(settings_of(ctx).client, api, token)
    except JourneyLedgerError as exc:
        raise typer.Exit(api_failure(exc)) from None


@app.command()
def journey(
    ctx: typer.Context,
    identifier: Annotated[
        str,
        typer.Argument(
            help="KIND:VALUE (phone:+44 7700 900123, plate:AB12CDE, email:…, order_id:…) "
            "or a customer id (cus_…)."
        ),
    ],
    api: ApiOption = None,
    token: TokenOption = None,
    output: FormatOption = OutputFormat.TEXT,
) -> None:
    """Show a customer's journey from the query API: identifiers, timeline and flags.

    Exit status: 0 when found, 1 when no journey the token can read holds the identifier, 2
    on usage, token or connection errors.
    """
    client = _query_client(ctx, api, token)
    raise typer.Exit(journey_command(client, identifier, as_json=output is OutputFormat.JSON))


@app.command()
def flags(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's flags.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule, e.g. DATE_MISMATCH.")] = None,
    status: Annotated[StatusFilter | None, typer.Option(help="open or resolved.")] = None,
    site: Annotated[str | None, typer.Option(help="Only flags involving this site.")] = None,
    handling: Annotated[
        HandlingFilter | None,
        typer.Option(help="unacknowledged, assigned, or mine (assigned to the token's user)."),
    ] = None,
    assignee: Annotated[
        str | None, typer.Option(help="Only flags assigned to this person or team.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only flags opened at or after this RFC 3339 time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only flags opened before this RFC 3339 time.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Flags per page (default: the API's).")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option(help="Start at this page (the next_cursor of the last).")
    ] = None,
    every_page: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    api: ApiOption = None,
    token: TokenOption = None,
    output: FormatOption = OutputFormat.TEXT,
) -> None:
    """List flags across customers from the query API, newest first.

    Exit status: 0 on success (also when none match), 2 on usage, token or connection errors.
    """
    parse_moment(since, "--since")
    parse_moment(until, "--until")
    filters = {
        "tenant": tenant,
        "rule": rule,
        "status": status.value if status else None,
        "site": site,
        "handling": handling.value if handling else None,
        "assignee": assignee,
        "since": since,
        "until": until,
        "limit": limit,
        "cursor": cursor,
    }
    client = _query_client(ctx, api, token)
    raise typer.Exit(
        flags_command(client, filters, every_page=every_page, as_json=output is OutputFormat.JSON)
    )


def identity_command(client: ApiClient, identifier: str, *, as_json: bool) -> int:
    """Print the customer holding an identifier and each of its identifiers' matching status."""
    try:
        with client:
            found = client.journey(identifier)
    except JourneyLedgerError as exc:
        return api_failure(exc)
    journey_view = view_from_dict(found)
    if as_json:
        keys = ("tenant", "customer_id", "names", "identifiers", "linked_by", "merges")
        _print_json({key: found[key] for key in keys if key in found})
        return EXIT_OK
    out = SafeConsole(highlight=False)
    names = ", ".join(journey_view.names) or "no name given"
    out.print(
        f"{journey_view.tenant} · {journey_view.customer_id} · {names}",
        markup=False,
        soft_wrap=True,
    )
    for ident in journey_view.identifiers:
        status = (
            "used for matching"
            if ident.not_matched is None
            else f"not used for matching: {ident.not_matched}"
        )
        systems = ", ".join(ident.systems)
        out.print(
            f"  {ident.kind} {ident.value} ({systems}): {status}", markup=False, soft_wrap=True
        )
    return EXIT_OK


def identity_stats_command(client: ApiClient, tenant: str, *, as_json: bool) -> int:
    """Print a tenant's identity graph health as the running stack holds it."""
    try:
        with client:
            document = client.identity_stats(tenant)
    except JourneyLedgerError as exc:
        return api_failure(exc)
    if as_json:
        _print_json(document)
        return EXIT_OK
    out = SafeConsole(highlight=False)
    partial = " (partial: the read stopped at its cap)" if document.get("truncated") else ""
    out.print(f"{tenant}: {document.get('customers', 0)} customers{partial}", markup=False)
    refused = document.get("refused_links_this_worker", {})
    out.print(
        f"refused links on worker {document.get('worker_id', '?')} since it started (every "
        f"tenant): {refused.get('junk', 0)} junk, {refused.get('blocked', 0)} blocked, "
        f"{refused.get('limit', 0)} held by a limit",
        markup=False,
        soft_wrap=True,
    )
    out.print("largest customers:", markup=False)
    for row in document.get("largest_customers", []):
        who = row.get("customer_id", "(customer ids: admin only)")
        out.print(f"  {who}  {row['identifiers']} identifiers", markup=False)
    out.print("suspected shared values (distinct strong identifiers seen with them):", markup=False)
    for row in document.get("suspected_shared", []):
        out.print(
            f"  {row.get('identifier', row.get('kind'))}  {row['strong_identifiers']}", markup=False
        )
    return EXIT_OK


# --- identity decisions named by customer ids ------------------------------------------------


def by_customers(named: Sequence[str], count: int) -> bool:
    """Whether the command's arguments are `count` customer ids (False: one `KIND:VALUE`).

    Raises `UnknownIdentifierError` for any other mix (a malformed one, or the wrong count).
    """
    kinds = [parse_query(item).kind for item in named]
    if len(named) == 1 and kinds[0] != CUSTOMER_ID:
        return False
    if len(named) == count and all(kind == CUSTOMER_ID for kind in kinds):
        return True
    ids = "two customer ids (cus_…)" if count == 2 else "one customer id (cus_…)"
    raise UnknownIdentifierError(f"give one identifier (KIND:VALUE) or {ids}")


def _journey(client: ApiClient, customer_id: str, tenant: str) -> dict[str, Any]:
    found = client.journey(customer_id, tenant)
    if found.get("tenant") != tenant:  # what another tenant holds is as missing
        raise ApiError(
            f"no journey found for {customer_id}", status=404, code="not_found", hint=NOT_FOUND_HINT
        )
    return found


def resolve_by_customers(
    client: ApiClient,
    type_: str,
    customers: Sequence[str],
    tenant: str,
    region: str | None,
    via: str | None,
) -> Resolved:
    """The identifier a split (one customer) or confirmed merge (two) is about, from the
    customers' journeys as the API shows them now.

    Raises `ApiError` (404: a customer the token cannot read in the tenant) and
    `ResolutionError` (no single identifier; it lists the candidates).
    """
    with client:
        journeys = [_journey(client, c.strip().lower(), tenant) for c in customers]
    if type_ == "identity.merge_confirmed":
        return resolve_merge(journeys[0], journeys[1], region, via)
    return resolve_split(journeys[0], region, via)
