"""`journeys send`: validate a file of events and send the valid ones to the touchpoints topic."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Annotated, NoReturn

import orjson
import typer
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from journeys.cli.app import (
    ApiOption,
    FormatOption,
    OutputFormat,
    TokenOption,
    app,
    settings_of,
)
from journeys.cli.check import open_input
from journeys.cli.errors import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    api_failure,
    print_error,
)
from journeys.cli.query import (
    by_customers,
    identity_command,
    identity_stats_command,
    open_client,
    resolve_by_customers,
)
from journeys.clock import wall_clock
from journeys.forensics.terminal import SafeConsole
from journeys.sdk.producer import BrokerUnavailableError, Delivery, JourneyProducer
from journeys.settings import CHECK_BROKER
from projections.handling.requests import decision_document
from projections.handling.resolve import ResolutionError
from projections.ledger import fold, identity_stats
from schemas.codec import Accepted, Rejected, decode_event, decode_lines
from schemas.errors import JourneyLedgerError, UnknownIdentifierError
from streams.config import KafkaSettings


@dataclass
class SendReport:
    """What `send_lines` did: how many were sent, which lines were rejected or undelivered."""

    sent: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    failed: list[Rejected] = field(default_factory=list)


async def send_lines(
    lines: Sequence[bytes], settings: KafkaSettings, *, progress: Progress | None = None
) -> SendReport:
    """Validate every line, send the valid events and wait for their delivery."""
    report = SendReport()
    accepted: list[Accepted] = []
    for item in decode_lines(lines):
        if isinstance(item, Rejected):
            report.rejected.append(item)
        else:
            accepted.append(item)
    if not accepted:
        return report
    task = progress.add_task("sending", total=len(accepted)) if progress else None
    pending: list[tuple[int, asyncio.Future[Delivery]]] = []
    async with JourneyProducer(settings) as producer:
        for item in accepted:
            future = await producer.send(item.event)
            if progress is not None and task is not None:
                future.add_done_callback(lambda _: progress.advance(task))
            pending.append((item.line, future))
        await producer.flush()
    for line, future in pending:
        error = future.exception()
        if error is None:
            report.sent += 1
        else:
            report.failed.append(Rejected(line, f"not delivered: {error!r}"))
    return report


def send_command(handle: IO[bytes], name: str, settings: KafkaSettings) -> int:
    """Run `journeys send`: print rejected lines and the count sent; return the exit status."""
    out = SafeConsole(highlight=False)
    err = SafeConsole(stderr=True, highlight=False)
    try:
        lines = handle.readlines()
    except OSError as exc:
        print_error(f"cannot read {name}: {exc.strerror}")
        return EXIT_UNAVAILABLE
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    )
    try:
        with progress:
            report = asyncio.run(send_lines(lines, settings, progress=progress))
    except BrokerUnavailableError as exc:
        print_error(str(exc))
        return EXIT_UNAVAILABLE
    except (JourneyLedgerError, KafkaError) as exc:
        print_error(f"{exc!r}; {CHECK_BROKER}")
        return EXIT_UNAVAILABLE
    for item in report.rejected + report.failed:
        out.print(f"line {item.line}: {item.reason}", markup=False)
    out.print(
        f"sent {report.sent} event(s) to {settings.bootstrap_servers}; "
        f"{len(report.rejected)} line(s) rejected"
        + (f", {len(report.failed)} not delivered" if report.failed else ""),
        markup=False,
    )
    if report.failed:
        print_error(f"some events were not delivered; {CHECK_BROKER}")
        return EXIT_UNAVAILABLE
    return EXIT_REJECTED if report.rejected else EXIT_OK


@app.command()
def send(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(help="JSON Lines file of events, or - for standard input.")
    ],
) -> None:
    """Validate a file of events and send the valid ones to the touchpoints topic.

    Exit status: 0 when every line was sent, 1 when some lines were rejected, 2 on an
    unreachable broker or an unreadable file.
    """
    kafka = settings_of(ctx).kafka_settings()
    with open_input(file) as handle:
        raise typer.Exit(send_command(handle, "standard input" if file == "-" else file, kafka))


identity_app = typer.Typer(
    help="A person's identity decisions, sent as events (see README, Decisions).",
    no_args_is_help=True,
)
app.add_typer(identity_app, name="identity")


def decision_line(
    type_: str,
    identifier: str,
    tenant: str,
    reason: str,
    by: str,
    now: datetime,
    *,
    customers: Sequence[str] = (),
) -> bytes:
    """The JSON line of an identity decision about `KIND:VALUE` (validated before it is sent);
    `customers`: the customer ids it was resolved from (recorded, informational).

    Raises `UnknownIdentifierError` for a malformed identifier, `InvalidEventError` otherwise.
    """
    document = decision_document(
        type_,
        identifier,
        tenant,
        reason,
        by=by,
        now=now,
        event_id=f"decision-{uuid.uuid4().hex}",
        system="journeys-cli",
        customers=customers,
    )
    line = orjson.dumps(document)
    decode_event(line)
    return line


def _decide(
    ctx: typer.Context,
    type_: str,
    identifier: str,
    tenant: str,
    reason: str,
    by: str,
    customers: Sequence[str] = (),
) -> NoReturn:
    try:
        line = decision_line(
            type_, identifier, tenant, reason, by, wall_clock(), customers=customers
        )
    except JourneyLedgerError as exc:
        print_error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    kafka = settings_of(ctx).kafka_settings()
    raise typer.Exit(send_command(io.BytesIO(line + b"\n"), type_, kafka))


def _decide_named(
    ctx: typer.Context,
    type_: str,
    named: Sequence[str],
    decision: tuple[str, str, str],
    via: str | None,
    client_options: tuple[str | None, str | None],
) -> None:
    """`_decide` for one `KIND:VALUE`, or for customer ids resolved through the API first."""
    tenant, reason, by = decision
    count = 2 if type_ == "identity.merge_confirmed" else 1
    try:
        named_customers = by_customers(named, count)
        if not named_customers and via is not None:
            raise UnknownIdentifierError("--via: only with customer ids", hint="leave it out")
    except JourneyLedgerError as exc:
        print_error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    if not named_customers:
        _decide(ctx, type_, named[0], tenant, reason, by)
    settings = settings_of(ctx)
    try:
        client = open_client(settings.client, *client_options)
        resolved = resolve_by_customers(
            client, type_, named, tenant, settings.fold_settings().region_for(tenant), via
        )
    except ResolutionError as exc:
        print_error(exc, hint_apart=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except JourneyLedgerError as exc:
        raise typer.Exit(api_failure(exc)) from None
    out = SafeConsole(highlight=False)
    out.print(f"{' and '.join(resolved.customers)}: {resolved.identifier}", markup=False)
    _decide(ctx, type_, resolved.identifier, tenant, reason, by, resolved.customers)


TenantOption = Annotated[str, typer.Option("--tenant", help="The tenant the value belongs to.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the record.")]
ByOption = Annotated[str, typer.Option("--by", help="Who decides (a name or login).")]
ViaOption = Annotated[
    str | None,
    typer.Option(
        "--via", help="With customer ids: the KIND:VALUE, among several, the decision is about."
    ),
]
EXIT_REFUSED = 1
"""Customer ids named no single identifier to decide about (none, or several without --via)."""


@identity_app.command()
def block(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="KIND:VALUE, e.g. phone:0113 496 0000")],
    tenant: TenantOption,
    reason: ReasonOption,
    by: ByOption,
) -> None:
    """Send `identity.blocked`: the value never links events of the tenant again."""
    _decide(ctx, "identity.blocked", identifier, tenant, reason, by)


@identity_app.command()
def unblock(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="KIND:VALUE")],
    tenant: TenantOption,
    reason: ReasonOption,
    by: ByOption,
) -> None:
    """Send `identity.unblocked`: withdraw an earlier block."""
    _decide(ctx, "identity.unblocked", identifier, tenant, reason, by)


@identity_app.command()
def show(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="KIND:VALUE or a customer id (cus_…).")],
    api: ApiOption = None,
    token: TokenOption = None,
    output: FormatOption = OutputFormat.TEXT,
) -> None:
    """Ask the query API which customer holds a value, and whether each identifier links.

    Exit status: 0 when found, 1 when no journey the token can read holds the identifier, 2
    on usage, token or connection errors.
    """
    try:
        client = open_client(settings_of(ctx).client, api, token)
    except JourneyLedgerError as exc:
        raise typer.Exit(api_failure(exc)) from None
    raise typer.Exit(identity_command(client, identifier, as_json=output is OutputFormat.JSON))


@identity_app.command()
def stats(
    ctx: typer.Context,
    tenant: TenantOption,
    file: Annotated[
        str | None,
        typer.Argument(help="JSON Lines file of events, or - for stdin; left out: ask the API."),
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
    output: FormatOption = OutputFormat.TEXT,
) -> None:
    """The health of a tenant's identity graph, folded from a file of events, or without a
    file as the running stack holds it (`GET /v1/identity/stats` at --api / $JOURNEYS_API).

    The largest customers by identifier count, the identifiers seen with the most distinct
    strong identifiers (suspected shared values), and the links refused as junk, blocked or
    held by a limit. A file with --api or --token is refused (exit 2): which graph was meant?
    """
    if file is not None and (api is not None or token is not None):
        print_error(
            "give a file (folded here) or --api/--token (the running stack), not both; "
            "leave out the file to ask the running stack"
        )
        raise typer.Exit(EXIT_USAGE)
    if file is None:
        try:
            client = open_client(settings_of(ctx).client, api, token)
        except JourneyLedgerError as exc:
            raise typer.Exit(api_failure(exc)) from None
        as_json = output is OutputFormat.JSON
        raise typer.Exit(identity_stats_command(client, tenant, as_json=as_json))
    settings = settings_of(ctx).fold_settings()
    with open_input(file) as handle:
        lines = handle.readlines()
    events = [r.event for r in decode_lines(lines) if isinstance(r, Accepted)]
    document = identity_stats(fold(events, settings), tenant)
    out = SafeConsole(highlight=False)
    if output == OutputFormat.JSON:
        out.print_json(orjson.dumps(document).decode())
        return
    refused = document["refused"]
    out.print(
        f"{tenant}: {document['customers']} customers; refused links: {refused['junk']} junk, "
        f"{refused['blocked']} blocked, {refused['limit']} held by a limit",
        markup=False,
    )
    out.print("largest customers:", markup=False)
    for row in document["largest_customers"]:
        out.print(f"  {row['customer_id']}  {row['identifiers']} identifiers", markup=False)
    out.print("suspected shared values (distinct strong identifiers seen with them):", markup=False)
    for row in document["suspected_shared"]:
        out.print(f"  {row['identifier']}  {row['strong_identifiers']}", markup=False)


@identity_app.command()
def split(
    ctx: typer.Context,
    identifier: Annotated[
        str, typer.Argument(help="KIND:VALUE the customer is split along, or a customer id")
    ],
    tenant: TenantOption,
    reason: ReasonOption,
    by: ByOption,
    via: ViaOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Send `identity.split`: the customers this value joined are computed again without it.

    Given a customer id (cus_…), the API (--api / $JOURNEYS_API) is asked for its journey: it
    is split along the identifier of the one merge it lists (several: name one with --via).
    Exit status: 0 sent, 1 no such customer or no single identifier, 2 usage or unreachable.
    """
    decision = (tenant, reason, by)
    _decide_named(ctx, "identity.split", [identifier], decision, via, (api, token))


@identity_app.command()
def merge(
    ctx: typer.Context,
    identifiers: Annotated[
        list[str],
        typer.Argument(help="KIND:VALUE that joins one person, or two customer ids (cus_…)"),
    ],
    tenant: TenantOption,
    reason: ReasonOption,
    by: ByOption,
    via: ViaOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Send `identity.merge_confirmed`: the value links again, past the limits too.

    Given two customer ids, the API (--api / $JOURNEYS_API) is asked for their journeys: the
    merge is confirmed for the identifier whose link was held between them (an open
    IDENTITY_CONFLICT naming both, or a value both hold); several: name one with --via.
    Exit status: 0 sent, 1 no such customer or no single identifier, 2 usage or unreachable.
    """
    decision = (tenant, reason, by)
    _decide_named(ctx, "identity.merge_confirmed", identifiers, decision, via, (api, token))
