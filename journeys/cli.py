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

from journeys.check import check_lines, report_to_dict
from journeys.render import render_report
from journeys.send import send_command, topics_create_command
from journeys.settings import Settings, load_settings
from journeys.worker_command import worker_command
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
DEMO_FILE = "demo-journeys.jsonl"


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
            "then [kafka] bootstrap_servers).",
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
        typer.Option(help="Where the worker keeps its RocksDB state (default: [worker] data_dir)."),
    ] = None,
    log_level: Annotated[LogLevel, typer.Option(help="Log level.")] = LogLevel.INFO,
) -> None:
    """Run the ledger's processors until Ctrl-C or SIGTERM; several workers share partitions.

    Creates the topics that are missing first. Exit status: 0 after a clean stop, 2 when the
    broker cannot be reached.
    """
    settings = _settings(ctx)
    raise typer.Exit(worker_command(settings, data_dir or settings.worker.data_dir, log_level))


def main() -> None:
    """Console-script entry point."""
    app()
