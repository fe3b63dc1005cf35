"""The query API inside the worker process: a `mode.Service` the faust worker starts and stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import aiohttp
import mode
from aiohttp import web
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from journeys.sdk.producer import JourneyProducer
from journeys.server.api import ApiContext, create_app
from journeys.settings import Settings
from streams.directory import Directory, Member, announce, follow_members, withdraw
from streams.flag_index import FlagIndex, follow_flags
from streams.kafka.follow import Followers, supervise
from streams.notify.delivery import DeliveryLog
from streams.worker import Worker

log = logging.getLogger("journeys.api")

_ANNOUNCE_EVERY_S = 30.0


class ApiService(mode.Service):
    """Serves the API on host:port, follows the flag and members topics, announces this worker."""

    def __init__(
        self,
        worker: Worker,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        host: str,
        port: int,
        worker_id: str,
        on_ready: Callable[[str], None] | None = None,
        followers: Followers | None = None,
        deliveries: DeliveryLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.worker = worker
        self.settings = settings
        self.clock = clock
        self.host = host
        self.port = port
        self.worker_id = worker_id
        self.on_ready = on_ready
        self.followers = followers if followers is not None else Followers()
        self.deliveries = deliveries
        self.flags = FlagIndex()
        self.directory = Directory(settings.api.peer_secret)
        self.url = ""
        self._halt = asyncio.Event()
        self._followers: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._events: JourneyProducer | None = None
        self._announcer: AIOKafkaProducer | None = None
        # Long journeys are read and evaluated here, off the loop; two threads bound the work.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="journeys-api")

    async def on_started(self) -> None:
        """Open the producers and the socket, then start following and announcing."""
        kafka = self.worker.kafka
        self._events = JourneyProducer(kafka)
        await self._events.start()
        self._announcer = AIOKafkaProducer(**kafka.client_options(), acks="all")
        await self._announcer.start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        context = ApiContext(
            worker=self.worker,
            fold=self.worker.fold,
            flags=self.flags,
            directory=self.directory,
            tokens=self.settings.api.tokens,
            clock=self.clock,
            worker_id=self.worker_id,
            producer=self._events,
            session=self._session,
            configured_tenants=frozenset(self.settings.tenants),
            executor=self._executor,
            followers=self.followers,
            peer_secret=self.settings.api.peer_secret,
            deliveries=self.deliveries,
        )
        self._runner = web.AppRunner(create_app(context), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = self.settings.api.advertised_url or f"http://{_public_host(self.host)}:{port}"
        flags, members = self.followers.add("flags"), self.followers.add("members")
        announcer = self.followers.add("announcer")
        halt = self._halt
        self._followers = [
            asyncio.create_task(
                supervise(flags, lambda: follow_flags(kafka, self.flags, halt, flags), halt)
            ),
            asyncio.create_task(
                supervise(
                    members, lambda: follow_members(kafka, self.directory, halt, members), halt
                )
            ),
            asyncio.create_task(supervise(announcer, self._announce_loop, halt)),
        ]
        log.info("API of worker %s at %s", self.worker_id, self.url)
        if not self.settings.api.peer_secret:
            log.warning(
                "no [api] peer_secret (JOURNEYS_PEER_SECRET): this worker answers only for the "
                "partitions it owns; with more than one worker, give every one the same secret"
            )
        if self.on_ready is not None:
            self.on_ready(self.url)

    async def _announce_loop(self) -> None:
        assert self._announcer is not None
        last: tuple[Any, ...] | None = None
        last_at = 0.0
        while not self._halt.is_set():
            member = Member(
                self.worker_id,
                self.url,
                tuple(sorted(self.worker.owned("ingest"))),
                tuple(sorted(self.worker.owned("journeys"))),
                tuple(sorted(self.worker.tenants())),
                time.time(),
            )
            shape = (member.ingest, member.journeys, member.tenants)
            if shape != last or time.monotonic() - last_at > _ANNOUNCE_EVERY_S:
                secret = self.settings.api.peer_secret
                await announce(self._announcer, self.worker.kafka, member, secret)
                last, last_at = shape, time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._halt.wait(), 0.5)

    async def on_stop(self) -> None:
        """Leave the directory, stop serving and close the clients."""
        self._halt.set()
        if self._announcer is not None:
            with contextlib.suppress(Exception):
                await withdraw(self._announcer, self.worker.kafka, self.worker_id)
        for task in self._followers:
            task.cancel()
        await asyncio.gather(*self._followers, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for producer in (self._events, self._announcer):
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.stop()


def _public_host(host: str) -> str:
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host
