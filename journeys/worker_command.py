"""`journeys worker`: create the topics, then run the stages in a faust worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.text import Text

from journeys.settings import Settings
from streams.app import build_app
from streams.embedded_broker import BrokerError
from streams.topics import create_topics
from streams.worker import Worker

EXIT_UNAVAILABLE = 2


def wall_clock() -> datetime:
    """The current time, timezone-aware: the only clock the ledger's processing reads."""
    return datetime.now(UTC)


def worker_command(settings: Settings, data_dir: Path, loglevel: str) -> int:
    """Run a worker in the foreground until SIGINT/SIGTERM; return an exit status on failure."""
    kafka = settings.kafka_settings()
    try:
        asyncio.run(create_topics(kafka))
    except BrokerError as exc:
        Console(stderr=True).print(
            Text("error: ", style="red")
            + Text(
                f"{exc} (check --bootstrap-servers, JOURNEYS_BOOTSTRAP_SERVERS or "
                "[kafka] bootstrap_servers, and that the broker is running)"
            )
        )
        return EXIT_UNAVAILABLE
    worker = Worker(kafka, settings.fold_settings(), data_dir, clock=wall_clock)
    build_app(worker).run(loglevel)
    return 0  # not reached: the faust worker exits the process
