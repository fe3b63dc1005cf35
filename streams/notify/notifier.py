"""The notifier: its own consumer group on the flag topic, delivering each change at least once.

Each worker runs one; the group (`<topic_prefix>.notifier`) gives every partition to one of
them, so however many run, a change is notified once in the normal case. A change is read,
matched against the subscriptions, and each notification is delivered by a task of its own:
rate-limited and capped in flight per receiver, retried with exponential backoff, and after
the last attempt written to the notification dead-letter topic. Offsets are committed only
up to the oldest change whose notifications are not all settled, so a crash re-delivers
(receivers drop repeats by `webhook-id`, the change id) and nothing is lost.

Nothing here is on the path of flag processing: the journey stage produces flags whatever the
receivers do. A receiver that is down holds up the others only once `max_pending` changes
wait, and then for at most its retry window (`compose.retry_window_s`: every backoff wait
plus every attempt timing out, 65 s with the defaults) before its notifications are
dead-lettered and the notifier reads on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
import mode
import orjson
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from pydantic import ValidationError

from schemas.outputs import FlagChange
from streams.config import KafkaSettings
from streams.kafka.follow import FollowerHealth, supervise
from streams.notify.compose import (
    OffsetTracker,
    RateLimit,
    email_message,
    email_sites,
    matches,
    retry_delays,
    retry_window_s,
    webhook_body,
)
from streams.notify.config import CHANGE_KINDS, NotifySettings
from streams.notify.delivery import (
    DeliveryError,
    DeliveryLog,
    EmailReceiver,
    Notification,
    Receiver,
    WebhookReceiver,
    sleep_unless,
)

log = logging.getLogger("journeys.notify")

REMEMBERED_CHANGES = 10_000
"""Change ids remembered to drop a repeated flag-topic record (the topic is at-least-once)."""

STOP_GRACE_S = 5.0
"""How long a stopping notifier lets attempts under way finish; the rest are redelivered."""


@dataclass
class _Lane:
    """What one receiver's deliveries share: the rate limit and the slots for attempts."""

    limit: RateLimit
    slots: asyncio.Semaphore


class Notifier:
    """One member of the notifier group, for as long as `run` runs."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: NotifySettings,
        deliveries: DeliveryLog,
        *,
        health: FollowerHealth | None = None,
        group_id: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.deliveries = deliveries
        self.health = health or FollowerHealth("notifier")
        self.names = kafka.names()
        self.group_id = group_id or self.names.notifier_group
        self.tracker = OffsetTracker()
        self._delays = retry_delays(settings.retry)
        self._lanes: dict[str, _Lane] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._halt = asyncio.Event()
        self._committed: dict[int, int] = {}
        self._receivers: list[Receiver] = []
        self._producer: Any = None
        self.assigned: frozenset[int] = frozenset()
        """The flag-topic partitions this notifier is given now."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, deliver and commit until `stop` is set."""
        options = self.kafka.client_options()
        consumer = AIOKafkaConsumer(
            **options,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.start_from,
            session_timeout_ms=self.kafka.session_timeout_ms,
            rebalance_timeout_ms=self.kafka.rebalance_timeout_ms,
            heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
            fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
        )
        self._producer = AIOKafkaProducer(**options, acks="all")
        session = aiohttp.ClientSession()
        self._receivers = [WebhookReceiver(t, session) for t in self.settings.webhooks]
        if self.settings.email is not None:
            self._receivers.append(EmailReceiver(self.settings.email))
        try:
            await self._producer.start()
            await consumer.start()
            consumer.subscribe([self.names.flags], listener=_Revoked(self, consumer))
            while not stop.is_set():
                await self._poll(consumer)
        finally:
            await self._wind_down(consumer)
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()
            await session.close()

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        assignment = consumer.assignment()
        full = self.tracker.pending() >= self.settings.max_pending
        # Paused, the consumer still polls (and so stays in the group) but fetches nothing.
        if full:
            consumer.pause(*assignment)
        else:
            consumer.resume(*assignment)
        batches = await consumer.getmany(timeout_ms=200, max_records=100)
        for tp, messages in batches.items():
            for message in messages:
                self._take(tp.partition, message.offset, message.value)
        self.deliveries.pending = self.tracker.pending()
        await self.commit(consumer)

    def _take(self, partition: int, offset: int, value: bytes | None) -> None:
        change = self._parse(value)
        if change is None or change.change_id in self._seen:
            self.tracker.read(partition, offset, 0)
            return
        self._seen[change.change_id] = None
        while len(self._seen) > REMEMBERED_CHANGES:
            self._seen.popitem(last=False)
        plan = self.plan(change)
        self.tracker.read(partition, offset, len(plan))
        epoch = self.tracker.epoch(partition)
        for receiver, notification in plan:
            task = asyncio.create_task(
                self._deliver(receiver, notification, change, (partition, offset, epoch))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _parse(self, value: bytes | None) -> FlagChange | None:
        if not value:
            return None
        try:
            return FlagChange.from_bytes(value)
        except ValidationError as exc:
            with contextlib.suppress(orjson.JSONDecodeError):
                document = orjson.loads(value)
                kind = document.get("change") if isinstance(document, dict) else None
                if isinstance(kind, str) and kind not in CHANGE_KINDS:
                    return None  # a kind of change this notifier does not know: not notified
            self.health.skip(exc)
            return None

    def plan(self, change: FlagChange) -> list[tuple[Receiver, Notification]]:
        """Every notification `change` gives, with the receiver it goes to."""
        base = self.settings.journey_url
        plan: list[tuple[Receiver, Notification]] = []
        for receiver in self._receivers:
            if isinstance(receiver, WebhookReceiver):
                if matches(receiver.target.filter, change):
                    body = webhook_body(change, base)
                    plan.append((receiver, Notification(change.change_id, change.tenant, body)))
            elif isinstance(receiver, EmailReceiver) and matches(receiver.target.filter, change):
                target = receiver.target
                for site, recipients in email_sites(target, change).items():
                    message = email_message(target, change, site, recipients, base)
                    plan.append(
                        (
                            receiver,
                            Notification(change.change_id, change.tenant, email=message, site=site),
                        )
                    )
        return plan

    def _lane(self, receiver: Receiver) -> _Lane:
        lane = self._lanes.get(receiver.key)
        if lane is None:
            limit = RateLimit(self.settings.rate_per_s, self.settings.burst)
            lane = _Lane(limit, asyncio.Semaphore(self.settings.max_in_flight))
            self._lanes[receiver.key] = lane
        return lane

    async def _deliver(
        self,
        receiver: Receiver,
        notification: Notification,
        change: FlagChange,
        origin: tuple[int, int, int],
    ) -> None:
        """Try until delivered or dead-lettered, then settle; on halt, leave it unsettled."""
        lane = self._lane(receiver)
        record = self.deliveries.start(notification, receiver)
        policy = self.settings.retry
        error = ""
        for attempt in range(policy.attempts):
            if await sleep_unless(self._halt, lane.limit.reserve(time.monotonic())):
                return
            async with lane.slots:
                self.deliveries.attempt(record, time.time())
                try:
                    await receiver.send(notification, policy.timeout_s)
                except DeliveryError as exc:
                    error = str(exc)
                except Exception as exc:  # a sender's bug must not end the delivery unsettled
                    error = f"{type(exc).__name__}: {str(exc)[:200]}"
                else:
                    self.deliveries.succeeded(record, time.time())
                    self.tracker.settle(*origin)
                    return
            if attempt == policy.attempts - 1:
                break
            self.deliveries.failed(record, error, final=False, now=time.time())
            if await sleep_unless(self._halt, self._delays[attempt]):
                return
        written = await self._dead_letter(receiver, notification, change, record.attempts, error)
        if written:
            self.deliveries.failed(record, error, final=True, now=time.time())
            log.warning(
                "notification %s to %s dead-lettered after %d attempts: %s",
                notification.delivery_id,
                receiver.label,
                record.attempts,
                error,
            )
            self.tracker.settle(*origin)

    async def _dead_letter(
        self,
        receiver: Receiver,
        notification: Notification,
        change: FlagChange,
        attempts: int,
        reason: str,
    ) -> bool:
        """Write the notification to the dead-letter topic; False if halted before it was."""
        document: dict[str, Any] = {
            "reason": reason,
            "delivery_id": notification.delivery_id,
            "receiver": {"kind": receiver.kind, "label": receiver.label},
            "attempts": attempts,
            "dead_lettered_at": time.time(),
            "change": change.to_document(),
        }
        if notification.email is not None:
            document["email"] = {
                "site": notification.site,
                "subject": notification.email["Subject"],
                "to": notification.email["To"],
            }
        value = orjson.dumps(document)
        headers = [("reason", reason.encode()), ("receiver", receiver.kind.encode())]
        backoff = 0.5
        while not self._halt.is_set():
            try:
                await self._producer.send_and_wait(
                    self.names.notification_dead_letters,
                    value,
                    key=change.change_id.encode(),
                    headers=headers,
                )
            except KafkaError as exc:
                log.warning("cannot write a notification dead letter yet: %s", exc)
                if await sleep_unless(self._halt, backoff):
                    return False
                backoff = min(backoff * 2, 10.0)
            else:
                return True
        return False

    async def commit(self, consumer: AIOKafkaConsumer, only: set[int] | None = None) -> None:
        """Commit every settled position that moved (of `only` these partitions, if given)."""
        assigned = {tp.partition for tp in consumer.assignment()}
        offsets = {
            TopicPartition(self.names.flags, partition): offset
            for partition, offset in self.tracker.committable().items()
            if partition in assigned
            and (only is None or partition in only)
            and self._committed.get(partition) != offset
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance under way: the next owner re-delivers
            log.warning("notifier could not commit its position: %s", exc)
            return
        for tp, offset in offsets.items():
            self._committed[tp.partition] = offset

    def forget(self, partitions: set[int]) -> None:
        """Partitions given to another notifier."""
        self.tracker.forget(partitions)
        for partition in partitions:
            self._committed.pop(partition, None)

    async def _wind_down(self, consumer: AIOKafkaConsumer) -> None:
        """Let attempts under way finish briefly, stop the rest, commit what was settled."""
        self._halt.set()  # waits between attempts end now; those deliveries stay unsettled
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.commit(consumer)


class _Revoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was settled on partitions being given away, then forgets them."""

    def __init__(self, notifier: Notifier, consumer: AIOKafkaConsumer) -> None:
        self.notifier = notifier
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        partitions = {tp.partition for tp in revoked}
        self.notifier.assigned -= partitions
        with contextlib.suppress(Exception):
            await self.notifier.commit(self.consumer, partitions)
        self.notifier.forget(partitions)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.notifier.assigned = frozenset(tp.partition for tp in assigned)


class NotifierService(mode.Service):
    """Runs the notifier inside the worker, restarted with backoff if it dies."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: NotifySettings,
        deliveries: DeliveryLog,
        health: FollowerHealth,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kafka = kafka
        self.settings = settings
        self.deliveries = deliveries
        self.health = health
        self._halt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def on_started(self) -> None:
        """Start notifying in the background."""
        settings = self.settings
        log.info(
            "notifying %d webhook(s)%s; each notification is tried %d times over at most "
            "%.0f s, then dead-lettered",
            len(settings.webhooks),
            " and e-mail" if settings.email else "",
            settings.retry.attempts,
            retry_window_s(settings.retry),
        )

        async def run() -> None:
            notifier = Notifier(self.kafka, settings, self.deliveries, health=self.health)
            await notifier.run(self._halt)

        self._task = asyncio.create_task(supervise(self.health, run, self._halt))

    async def on_stop(self) -> None:
        """Stop reading, let attempts under way finish briefly, commit, leave the group."""
        self._halt.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=STOP_GRACE_S + 10)
