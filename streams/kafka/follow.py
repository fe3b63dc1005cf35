"""Following a small topic whole: every partition from the start, no consumer group, no commits.

Followers keep the API's in-memory views (flags, the members directory) and the flag
notifications. A record a follower cannot apply is skipped and counted (one escaped log line),
never the end of the follower; a follower that dies anyway is restarted with backoff by
`supervise`, and its `FollowerHealth` says what it is doing (`/health`, `/metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from schemas.printable import printable
from streams.config import KafkaSettings

log = logging.getLogger("journeys.follow")

OnRecord = Callable[[bytes | None, bytes | None], None]
"""Called with each record's key and value, in order per partition."""

FIRST_BACKOFF_S = 0.5
"""The wait before a dead follower's first restart; it doubles up to `MAX_BACKOFF_S`."""

MAX_BACKOFF_S = 30.0
"""The longest wait between restarts of a follower that keeps dying."""

_HEALTHY_RUN_S = 60.0
"""A follower that ran this long before dying starts again from the first backoff."""


@dataclass
class FollowerHealth:
    """One follower's state (`starting`, `running`, `restarting`, `stopped`) and its counts."""

    name: str
    state: str = "starting"
    restarts: int = 0
    skipped: int = 0
    """Records skipped because they could not be applied (not JSON, not a valid record)."""
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What `/health` shows of this follower."""
        return {
            "state": self.state,
            "restarts": self.restarts,
            "skipped_records": self.skipped,
            "last_error": self.last_error,
        }

    def skip(self, error: Exception) -> None:
        """Count a record that could not be applied, with one escaped log line."""
        self.skipped += 1
        log.warning(
            "%s follower skipped a bad record (%d so far): %s",
            self.name,
            self.skipped,
            _said(error),
        )


class Followers:
    """The followers of one process, by name."""

    def __init__(self) -> None:
        self.health: dict[str, FollowerHealth] = {}

    def add(self, name: str) -> FollowerHealth:
        """The health record of a follower (made on first use)."""
        return self.health.setdefault(name, FollowerHealth(name))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every follower's health, by name."""
        return {name: health.to_dict() for name, health in sorted(self.health.items())}


def _said(error: BaseException) -> str:
    return printable(f"{type(error).__name__}: {str(error)[:200]}")


def guarded(on_record: OnRecord, health: FollowerHealth) -> OnRecord:
    """`on_record`, skipping (and counting) a record it raises on instead of dying."""

    def apply(key: bytes | None, value: bytes | None) -> None:
        try:
            on_record(key, value)
        except Exception as exc:
            health.skip(exc)

    return apply


async def supervise(
    health: FollowerHealth,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    first_backoff: float = FIRST_BACKOFF_S,
    max_backoff: float = MAX_BACKOFF_S,
) -> None:
    """Run `run()` until `stop`; when it fails (or ends early) start it again, with backoff."""
    backoff = first_backoff
    try:
        while not stop.is_set():
            health.state = "running"
            began = time.monotonic()
            try:
                await run()
            except Exception as exc:
                health.last_error = _said(exc)
            else:
                if stop.is_set():
                    break
                health.last_error = "ended before it was stopped"
            if time.monotonic() - began > _HEALTHY_RUN_S:
                backoff = first_backoff
            health.restarts += 1
            health.state = "restarting"
            log.warning(
                "%s follower died (%s); restarting in %.1f s",
                health.name,
                health.last_error,
                backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, max_backoff)
    finally:
        health.state = "stopped"


async def follow_topic(
    kafka: KafkaSettings,
    topic: str,
    on_record: OnRecord,
    stop: asyncio.Event,
    health: FollowerHealth | None = None,
) -> None:
    """Read every partition of `topic` from the start, then keep up, until `stop` is set.

    With `health`, a record `on_record` raises on is skipped and counted there.
    """
    apply = on_record if health is None else guarded(on_record, health)
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()  # a topic this client has not seen yet
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=5_000)
            for messages in batches.values():
                for message in messages:
                    apply(message.key, message.value)
    finally:
        await consumer.stop()
