"""The typer application every command registers on, its global options, and the options they share."""

from __future__ import annotations

import os
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from journeys.cli.errors import fail
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
"""The `journeys` application: every command module registers its commands on it."""


class OutputFormat(StrEnum):
    """How results are printed."""

    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    """How much the worker logs."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="text or json.")]
"""`--format text|json`."""

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="The query API, e.g. http://localhost:8080 (default: $JOURNEYS_API, then "
        "\\[client] api).",
    ),
]
"""`--api`: the query API's base URL."""

TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token (default: $JOURNEYS_TOKEN, then \\[client] token)."),
]
"""`--token`: the bearer token for the query API."""


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the global options read, for a command."""
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def parse_moment(value: str | None, hint: str) -> datetime | None:
    """An RFC 3339 option's value (None when not given); a usage error naming `hint` if bad."""
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None


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
        raise fail(str(exc)) from None
    if bootstrap_servers:
        settings = settings.with_bootstrap_servers(bootstrap_servers)
    ctx.obj = settings
