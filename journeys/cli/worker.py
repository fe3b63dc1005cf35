"""`journeys worker`: create the topics, then run the stages (and the API) in a faust worker."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import mode
import typer

from journeys.cli.app import LogLevel, app, settings_of
from journeys.cli.errors import EXIT_UNAVAILABLE, EXIT_USAGE, print_error
from journeys.clock import wall_clock
from journeys.server.serve import ApiService
from journeys.settings import CHECK_BROKER, Settings
from journeys.supervisor import Supervisor, child_command, plan_children, process_count
from schemas.errors import JourneyLedgerError
from streams.admin import BrokerError
from streams.app import build_app
from streams.crypto.startup import check_identity_root, check_master_key
from streams.notify.delivery import DeliveryLog
from streams.notify.notifier import NotifierService
from streams.topics import create_topics
from streams.worker import Worker

STAGES = ("validate", "ingest", "journeys")
"""The stages a worker runs unless told otherwise."""


def new_worker_id() -> str:
    """A worker's id in the members directory: host, process and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def ensure_topics_or_explain(settings: Settings) -> bool:
    """Create the ledger's topics; print why not and return False when the broker refuses."""
    try:
        asyncio.run(create_topics(settings.kafka_settings()))
    except BrokerError as exc:
        print_error(f"{exc} ({CHECK_BROKER})")
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
    sealer = settings.sealer()
    worker = Worker(
        settings.kafka_settings(),
        settings.fold_settings(),
        data_dir,
        wall_clock,
        stages=stages,
        sealer=sealer,
        retention_days=settings.retention_days(),
        suppression=settings.suppression(),
    )
    try:
        check_master_key(
            worker.identity_store,
            settings.kafka.partitions,
            None if sealer is None else sealer.provider,
        )
        check_identity_root(worker.identity_store, settings.privacy.identity_root_id())
    except JourneyLedgerError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    if sealer is None:
        logging.getLogger("journeys.privacy").warning(
            "no master key ([privacy] master_key / JOURNEYS_MASTER_KEY): personal fields are "
            "stored in clear and erasure cannot make copies unreadable"
        )
    hosted = build_app(worker)
    port = api_port if api_port is not None else settings.api.port
    services: list[mode.ServiceT] = []
    notify = settings.notify_settings()
    deliveries = DeliveryLog(notify.log_size) if notify.active else None
    if deliveries is not None:
        health = hosted.followers.add("notifier")
        services.append(NotifierService(worker.kafka, notify, deliveries, health))
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
                followers=hosted.followers,
                deliveries=deliveries,
            )
        )
    hosted.run(*services, loglevel=loglevel)
    return 0  # not reached: the faust worker exits the process


def supervise_workers(
    ctx: typer.Context,
    settings: Settings,
    count: int,
    stages: tuple[str, ...],
    data_dir: Path,
    loglevel: str,
    *,
    api_host: str | None,
    api_port: int | None,
) -> int:
    """Run `count` child workers under a supervisor until SIGINT/SIGTERM; their exit status."""
    if not ensure_topics_or_explain(settings):
        return EXIT_UNAVAILABLE
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s] %(name)s: %(message)s")
    port = api_port if api_port is not None else settings.api.port
    plans = plan_children(count, stages, data_dir, api_host, port)
    root = ctx.find_root().params
    base = child_command(root.get("config"), root.get("bootstrap_servers"), loglevel)
    return Supervisor(plans, base).run()


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
            help="Comma-separated stages to run: validate, ingest, journeys (run them in "
            "separate processes to use more cores)."
        ),
    ] = "validate,ingest,journeys",
    processes: Annotated[
        str,
        typer.Option(
            help="Worker processes to run, or auto (one per core): a supervisor starts them, "
            "spreads the partitions over them, keeps one API port and stops them all on Ctrl-C."
        ),
    ] = "1",
) -> None:
    """Run the ledger's processors until Ctrl-C or SIGTERM; several workers share partitions.

    Creates the topics that are missing first. With --api-port (or \\[api] port) the worker also
    serves the query API and the web pages. Exit status: 0 after a clean stop, 2 when the
    broker cannot be reached.
    """
    settings = settings_of(ctx)
    data = data_dir or settings.worker.data_dir
    chosen = tuple(dict.fromkeys(s.strip() for s in stages.split(",") if s.strip()))
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown stage(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(STAGES)}",
            param_hint="--stages",
        )
    try:
        count = process_count(processes)
    except ValueError:
        raise typer.BadParameter("a positive number or auto", param_hint="--processes") from None
    if count > 1:
        raise typer.Exit(
            supervise_workers(
                ctx, settings, count, chosen, data, log_level, api_host=api_host, api_port=api_port
            )
        )
    raise typer.Exit(
        worker_command(
            settings, data, log_level, api_host=api_host, api_port=api_port, stages=chosen
        )
    )
