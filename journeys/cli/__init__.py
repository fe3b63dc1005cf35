"""The `journeys` command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer
from rich.console import Console

from journeys.cli import replay as replaying
from journeys.cli.check import check_lines, report_to_dict
from journeys.cli.query import flags_command, journey_command, open_client, report_error
from journeys.cli.render import render_report
from journeys.cli.send import send_command, topics_create_command
from journeys.cli.up import up_command
from journeys.cli.worker import STAGES, worker_command
from journeys.demo import DEMO_FILE
from journeys.sdk.client import ApiClient
from journeys.settings import Settings, load_settings
from schemas.errors import JourneyLedgerError
from schemas.types import parse_timestamp

app = typer.Typer(
    name="journeys",
    help="journey-ledger: every customer touchpoint as an immutable event, stitched into journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_REJECTED = 1
EXIT_USAGE = 2


class OutputFormat(StrEnum):
    """How results are printed."""

    TEXT = "text"
    JSON = "json"


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML settings file (default: $JOURNEYS_CONFIG)."),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            help="Kafka brokers, host:port[,…] (default: $JOURNEYS_BOOTSTRAP_SERVERS, "
            "then \\[kafka] bootstrap_servers).",
        ),
    ] = None,
) -> None:
    """Read the settings once, for every command."""
    try:
        settings = load_settings(config, os.environ)
    except JourneyLedgerError as exc:
        raise _fail(str(exc)) from None
    if bootstrap_servers:
        settings = settings.with_bootstrap_servers(bootstrap_servers)
    ctx.obj = settings


def _parse_as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--as-of") from None


@contextmanager
def _open_input(file: str | None, demo: bool) -> Iterator[IO[bytes]]:
    if demo:
        with resources.files("journeys.demo").joinpath(DEMO_FILE).open("rb") as handle:
            yield handle
    elif file == "-":
        yield sys.stdin.buffer
    else:
        assert file is not None
        try:
            handle = open(file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise _fail(f"cannot read {file}: {exc.strerror}") from None
        with handle:
            yield handle


@app.command()
def check(
    ctx: typer.Context,
    file: Annotated[
        str | None, typer.Argument(help="JSON Lines file of events, or - for standard input.")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Evaluate flags as of this RFC 3339 time (default: the latest event)."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = (
        OutputFormat.TEXT
    ),
    demo: Annotated[bool, typer.Option(help="Check the bundled demo journeys.")] = False,
) -> None:
    """Validate a file of events and fold it into journeys with their flags, offline.

    Exit status: 0 when every line was valid, 1 when some lines were rejected, 2 on usage
    errors or an unreadable file.
    """
    if (file is None) == (not demo):
        raise typer.BadParameter("give a FILE (or -) or --demo, not both", param_hint="FILE")
    moment = _parse_as_of(as_of)
    settings = _settings(ctx).fold_settings()
    with _open_input(file, demo) as handle:
        try:
            report = check_lines(handle, settings, moment)
        except OSError as exc:
            raise _fail(f"cannot read {file}: {exc.strerror}") from None
    if output is OutputFormat.JSON:
        sys.stdout.buffer.write(orjson.dumps(report_to_dict(report), option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
    else:
        render_report(Console(highlight=False), report)
    if report.rejected:
        raise typer.Exit(EXIT_REJECTED)


topics_app = typer.Typer(help="Manage the ledger's Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create the ledger's topics that do not exist yet (idempotent) and list them.

    Exit status: 0 on success, 2 when the broker cannot be reached or refuses.
    """
    raise typer.Exit(topics_create_command(_settings(ctx).kafka_settings()))


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
    kafka = _settings(ctx).kafka_settings()
    if file == "-":
        raise typer.Exit(send_command(sys.stdin.buffer, "standard input", kafka))
    try:
        handle = open(file, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}") from None
    with handle:
        raise typer.Exit(send_command(handle, file, kafka))


class LogLevel(StrEnum):
    """How much the worker logs."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@app.command()
def worker(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the worker keeps its RocksDB state (default: \\[worker] data_dir)."
        ),
    ] = None,
    log_level: Annotated[LogLevel, typer.Option(help="Log level.")] = LogLevel.INFO,
    api_host: Annotated[
        str | None,
        typer.Option(help="Interface the API listens on (default: \\[api] host, 127.0.0.1)."),
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the query API and web pages on this port (default: \\[api] port)."
        ),
    ] = None,
    stages: Annotated[
        str,
        typer.Option(
            help="Comma-separated stages to run: ingest, journeys (run them in separate "
            "processes to use more cores)."
        ),
    ] = "ingest,journeys",
) -> None:
    """Run the ledger's processors until Ctrl-C or SIGTERM; several workers share partitions.

    Creates the topics that are missing first. With --api-port (or \\[api] port) the worker also
    serves the query API and the web pages. Exit status: 0 after a clean stop, 2 when the
    broker cannot be reached.
    """
    settings = _settings(ctx)
    data = data_dir or settings.worker.data_dir
    chosen = tuple(dict.fromkeys(s.strip() for s in stages.split(",") if s.strip()))
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown stage(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(STAGES)}",
            param_hint="--stages",
        )
    raise typer.Exit(
        worker_command(
            settings, data, log_level, api_host=api_host, api_port=api_port, stages=chosen
        )
    )


@app.command()
def up(
    ctx: typer.Context,
    demo: Annotated[
        bool, typer.Option(help="Send the bundled demo journeys once it is up.")
    ] = False,
    host: Annotated[str, typer.Option(help="Interface for the API and pages.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and pages.")] = 8080,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Worker state directory (default: a fresh temporary one)."),
    ] = None,
    log_level: Annotated[LogLevel, typer.Option(help="Log level.")] = LogLevel.WARNING,
) -> None:
    """Run a whole ledger in the foreground: broker (embedded unless one is configured), topics,
    a worker, the API and the web pages. Prints the URLs and a session token; Ctrl-C stops it.
    """
    code = up_command(
        _settings(ctx), demo=demo, host=host, port=port, data_dir=data_dir, loglevel=log_level
    )
    raise typer.Exit(code)


# --- queries against the HTTP API: `journeys journey`, `journeys flags` ------------------------

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="The query API, e.g. http://localhost:8080 (default: $JOURNEYS_API, then "
        "\\[client] api).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token (default: $JOURNEYS_TOKEN, then \\[client] token)."),
]


class StatusFilter(StrEnum):
    """Which flags `journeys flags` lists."""

    OPEN = "open"
    RESOLVED = "resolved"


def _query_client(ctx: typer.Context, api: str | None, token: str | None) -> ApiClient:
    try:
        return open_client(_settings(ctx).client, api, token)
    except JourneyLedgerError as exc:
        raise typer.Exit(report_error(exc)) from None


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
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = (
        OutputFormat.TEXT
    ),
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
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = (
        OutputFormat.TEXT
    ),
) -> None:
    """List flags across customers from the query API, newest first.

    Exit status: 0 on success (also when none match), 2 on usage, token or connection errors.
    """
    for hint, moment in (("--since", since), ("--until", until)):
        if moment is not None:
            try:
                parse_timestamp(moment)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=hint) from None
    filters = {
        "tenant": tenant,
        "rule": rule,
        "status": status.value if status else None,
        "site": site,
        "since": since,
        "until": until,
        "limit": limit,
        "cursor": cursor,
    }
    client = _query_client(ctx, api, token)
    raise typer.Exit(
        flags_command(client, filters, every_page=every_page, as_json=output is OutputFormat.JSON)
    )


# --- replay and rebuild (journeys/replay_command.py) ---------------------------------------------


def _moment(value: str | None, hint: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None


@app.command()
def replay(
    ctx: typer.Context,
    identifier: Annotated[
        str, typer.Argument(help="KIND:VALUE (e.g. phone:+44 7700 900123) or a customer id.")
    ],
    as_of: Annotated[
        str | None, typer.Option(help="Replay as of this RFC 3339 time (default: now).")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Show the timeline from this time.")
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Show the timeline up to this time (default: --as-of).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's customers.")] = None,
    fmt: Annotated[
        replaying.ReportFormat, typer.Option("--format", help="text, json, md or html.")
    ] = replaying.ReportFormat.TEXT,
    output: Annotated[
        Path | None, typer.Option(help="Write the report to this file instead of stdout.")
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Replay one customer's journey from the events topic as it stood at a moment.

    With an API (--api, $JOURNEYS_API or \\[client] api), also lists the differences between
    the replay and the live journey.

    Exit status: 0 on success, 2 on a bad identifier or window, an unknown customer or an
    unreachable broker.
    """
    now = replaying.wall_clock()
    raise typer.Exit(
        replaying.replay_command(
            _settings(ctx),
            identifier,
            now=now,
            as_of=_moment(as_of, "--as-of"),
            from_=_moment(from_, "--from"),
            to=_moment(to, "--to"),
            tenant=tenant,
            fmt=fmt,
            output=output,
            api=api or _settings(ctx).client.api,
            token=token or _settings(ctx).client.token,
        )
    )


@app.command()
def rebuild(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(help="A new directory for the store (default: <data_dir>.rebuild-<time>)."),
    ] = None,
    rules_disabled: Annotated[
        list[str] | None,
        typer.Option("--rules-disabled", help="Rules to leave out, besides \\[rules] disabled."),
    ] = None,
    generation: Annotated[
        int | None,
        typer.Option(
            min=1, help="The generation to build (default: \\[worker] journey_generation + 1)."
        ),
    ] = None,
) -> None:
    """Build the journey projection again, as a new generation beside the live one.

    Runs the journey stage over the whole events topic in its own group and topics until it
    has caught up, then compares its flags with the live ones and says how to switch. Leaves
    the live generation alone. Exit status: 0 on success, 2 on an unusable output directory,
    the live generation, or an unreachable broker.
    """
    now = replaying.wall_clock()
    settings = _settings(ctx)
    try:
        fold = replaying.without_rules(settings.fold_settings(), rules_disabled or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rules-disabled") from None
    target = output or settings.worker.data_dir.with_name(
        f"{settings.worker.data_dir.name}.rebuild-{now:%Y%m%dT%H%M%SZ}"
    )
    raise typer.Exit(
        replaying.rebuild_command(
            settings, target, clock=replaying.wall_clock, generation=generation, fold=fold
        )
    )


@app.command()
def bench(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=100, help="Events of the load.")] = 60_000,
    customers: Annotated[
        int | None, typer.Option(min=1, help="Customers of the load (default: events / 5).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic load.")] = 1,
    rate: Annotated[
        int, typer.Option(min=1, help="Offered events/s while measuring flag latency.")
    ] = 1_000,
    latency_seconds: Annotated[
        float, typer.Option(min=0.1, help="How long the fixed load is offered.")
    ] = 15.0,
    queries: Annotated[int, typer.Option(min=1, help="Journey queries timed.")] = 300,
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = (
        OutputFormat.TEXT
    ),
    profile: Annotated[
        Path | None, typer.Option(help="Write a cProfile of the one-worker phase here.")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the workers' data and logs.")] = False,
) -> None:
    """Measure throughput and latencies next to the raw aiokafka limit, on fresh topics.

    Uses the configured broker, or starts an embedded one. Exit status: 0 on success, 2 when
    the broker cannot be reached or a worker fails.
    """
    from journeys.bench.run import BenchSizes, bench_command

    sizes = BenchSizes(events, customers, seed, rate, latency_seconds, queries)
    if sizes.customer_count > events:
        raise typer.BadParameter("at most one customer per event", param_hint="--customers")
    as_json = output is OutputFormat.JSON
    code = bench_command(_settings(ctx), sizes, as_json=as_json, profile=profile, keep=keep)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app()
