"""`journeys worker`: create the topics, then run the stages (and the API) in a faust worker."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from journeys.clock import wall_clock
from journeys.server.serve import ApiService
from journeys.settings import CHECK_BROKER, Settings
from streams.app import build_app
from streams.embedded_broker import BrokerError
from streams.topics import create_topics
from streams.worker import Worker

EXIT_UNAVAILABLE = 2

STAGES = ("ingest", "journeys")
"""The stages a worker runs unless told otherwise."""


def new_worker_id() -> str:
    """A worker's id in the members directory: host, process and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def ensure_topics_or_explain(settings: Settings) -> bool:
    """Create the ledger's topics; print why not and return False when the broker refuses."""
    try:
        asyncio.run(create_topics(settings.kafka_settings()))
    except BrokerError as exc:
        Console(stderr=True).print(Text("error: ", style="red") + Text(f"{exc} ({CHECK_BROKER})"))
        return False
    return True


def worker_command(
    settings: Settings,
    data_dir: Path,
    loglevel: str,
    *,
    api_host: str | None = None,
    api_port: int | None = None,
    on_api_ready: Callable[[str], None] | None = None,
    stages: tuple[str, ...] = STAGES,
) -> int:
    """Run a worker in the foreground until SIGINT/SIGTERM; return an exit status on failure."""
    if not ensure_topics_or_explain(settings):
        return EXIT_UNAVAILABLE
    worker = Worker(
        settings.kafka_settings(), settings.fold_settings(), data_dir, wall_clock, stages=stages
    )
    hosted = build_app(worker)
    port = api_port if api_port is not None else settings.api.port
    services = []
    if port is not None:
        services.append(
            ApiService(
                worker,
                settings,
                wall_clock,
                host=api_host or settings.api.host,
                port=port,
                worker_id=new_worker_id(),
                on_ready=on_api_ready,
            )
        )
    hosted.run(*services, loglevel=loglevel)
    return 0  # not reached: the faust worker exits the process
