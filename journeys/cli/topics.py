"""`journeys topics create`: create the ledger's topics that are missing, and list them."""

from __future__ import annotations

import asyncio

import typer

from journeys.cli.app import app, settings_of
from journeys.cli.errors import EXIT_OK, EXIT_UNAVAILABLE, print_error
from journeys.forensics.terminal import SafeConsole
from journeys.settings import CHECK_BROKER
from streams.admin import BrokerError
from streams.config import KafkaSettings
from streams.topics import create_topics

topics_app = typer.Typer(help="Manage the ledger's Kafka topics.", no_args_is_help=True)
"""The `journeys topics` group."""

app.add_typer(topics_app, name="topics")


def topics_create_command(settings: KafkaSettings, *, timeout_s: float = 30.0) -> int:
    """Run `journeys topics create`: create what is missing, print every topic; exit status."""
    try:
        specs = asyncio.run(create_topics(settings, timeout_s=timeout_s))
    except BrokerError as exc:
        print_error(f"{exc} ({CHECK_BROKER})")
        return EXIT_UNAVAILABLE
    out = SafeConsole(highlight=False)
    for spec in specs:
        config = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
        out.print(f"{spec.name}\tpartitions={spec.partitions}\t{config}", markup=False)
    return EXIT_OK


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create the ledger's topics that do not exist yet (idempotent) and list them.

    Exit status: 0 on success, 2 when the broker cannot be reached or refuses.
    """
    raise typer.Exit(topics_create_command(settings_of(ctx).kafka_settings()))
