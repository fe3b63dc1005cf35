"""The faust application that hosts the worker: lifecycle, signals, and low-volume agents.

The per-event stages run as aiokafka batch loops inside a `mode.Service` (faust's agent path
costs about 240 µs a message, too slow for the hot path). faust supplies what it is good at:
the worker process with its signal handling and orderly shutdown, and an agent over the
low-volume flag topic that logs every flag change once (repeats dropped by change id).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust
import mode

from schemas.outputs import FlagChange, FlagSnapshot
from streams import logsafe
from streams.config import KafkaSettings
from streams.flag_index import FlagIndex
from streams.kafka.follow import Followers
from streams.worker import Worker, use_uvloop

log = logging.getLogger("journeys.flags")


def faust_broker(settings: KafkaSettings) -> list[str]:
    """faust's broker URLs for a comma-separated bootstrap list."""
    return [f"kafka://{host.strip()}" for host in settings.bootstrap_servers.split(",")]


def faust_credentials(settings: KafkaSettings) -> Any:
    """faust's credentials for the TLS and SASL settings, or None for plaintext."""
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


class StagesService(mode.Service):
    """Runs the worker's batch stages for as long as the faust worker lives."""

    def __init__(self, worker: Worker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker = worker
        self._halt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._crashing: asyncio.Future[None] | None = None

    async def on_started(self) -> None:
        """Start the stages in the background."""
        # aiokafka logs every subscription change at INFO, as a table: keep worker logs readable.
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
        self._task = asyncio.create_task(self.worker.run(self._halt))
        self._task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None and not self._halt.is_set():
            # A stage failed: stop the whole worker so a supervisor restarts it, rather
            # than run half a ledger.
            self._crashing = asyncio.ensure_future(self.crash(error))

    async def on_stop(self) -> None:
        """Let the stages finish their batch, persist it and leave their groups."""
        self._halt.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=30)


@dataclass
class HostedWorker:
    """A faust app, the service running the stages in it, and the flags its agent has seen."""

    app: Any
    stages: StagesService
    flags: FlagIndex
    followers: Followers
    """The flag-notification agent's health (the API service adds its followers here)."""

    def run(self, *services: mode.ServiceT, loglevel: str = "info") -> None:
        """Run with extra `services` until SIGINT or SIGTERM; never returns (exits the process)."""
        use_uvloop()
        logsafe.install()
        faust.Worker(
            self.app, self.stages, *services, loglevel=loglevel, redirect_stdouts=False
        ).execute_from_commandline()


def build_app(worker: Worker, *, log_flags: bool = True) -> HostedWorker:
    """The faust app hosting `worker`'s stages, with the flag-notification agent."""
    kafka = worker.kafka
    names = kafka.names()
    app = faust.App(
        f"{kafka.topic_prefix}.faust",
        broker=faust_broker(kafka),
        broker_credentials=faust_credentials(kafka),
        broker_client_id=kafka.client_id,
        datadir=str(worker.data_dir / "faust"),
        store="memory://",
        web_enabled=False,  # faust's table endpoints are unauthenticated: keep them off
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_rebalance_timeout=kafka.rebalance_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
    )
    flags = FlagIndex()
    followers = Followers()
    health = followers.add("flag-notifications")
    health.state = "running"
    flags_topic = app.topic(
        names.flags,
        key_serializer="raw",
        value_serializer="raw",
        partitions=kafka.partitions,
        internal=False,
    )

    async def notify(stream: Any) -> None:
        async for value in stream:
            try:
                change = FlagChange.from_bytes(value)
            except Exception as exc:  # one bad record must not end the agent
                health.skip(exc)
                continue
            if flags.apply(change) and log_flags:
                flag = change.flag
                snapshot = flag if isinstance(flag, FlagSnapshot) else None
                log.info(
                    "flag %s %s %s/%s: %s",
                    change.change,
                    snapshot.rule if snapshot else flag.flag_id,
                    change.tenant,
                    change.customer_id,
                    snapshot.message if snapshot else "",
                )

    app.agent(flags_topic, name="flag-notifications", concurrency=1)(notify)
    return HostedWorker(app, StagesService(worker), flags, followers)
