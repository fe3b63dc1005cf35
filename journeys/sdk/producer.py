"""The producer SDK: validate touchpoints with the ledger's own schemas and send them to Kafka.

Delivery guarantees and tuning:

- ``acks="all"``: a send is delivered once every in-sync replica has it.
- ``enable_idempotence="auto"`` (default): try an idempotent producer (no duplicates on retry);
  when the broker refuses it (Tansu answers InitProducerId with UnknownError, a secured Kafka
  may answer ClusterAuthorizationFailed) fall back to a plain producer and log a warning once.
  ``True`` insists (the refusal is raised), ``False`` never tries.
- Batching: ``linger_ms`` and ``max_batch_size`` go to aiokafka as they are.
- Retries: aiokafka retries transient errors (leader moves, timeouts, disconnects) itself,
  waiting ``retry_backoff_ms`` between attempts, until ``KafkaSettings.request_timeout_ms`` has
  passed for the batch; then the delivery future fails with the last error. Without
  idempotence a retry may write a record twice; the ledger counts the same event once.
- Back-pressure: at most ``max_in_flight`` sends are undelivered at a time. When full,
  ``when_full="block"`` waits for room and ``when_full="raise"`` raises `BufferFullError`.
  Nothing is dropped silently: every send either raises or returns a future that resolves to
  a `Delivery` or fails with the error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    UnknownError,
)
from pydantic import BaseModel

from schemas.codec import decode_event, encode_event, event_to_dict, validate_document
from schemas.errors import JourneyLedgerError
from schemas.events import Event
from streams.config import KafkaSettings, TopicNames

log = logging.getLogger("journeys.producer")

EventLike = Event | dict[str, Any] | bytes | str
"""What a producer accepts: an event model, a decoded JSON object, or JSON bytes or text."""

WhenFull = Literal["block", "raise"]
"""What `send` does when `max_in_flight` sends are undelivered."""

Idempotence = bool | Literal["auto"]
"""Whether to use an idempotent producer: always, never, or when the broker allows it."""

_REFUSED_IDEMPOTENCE = (UnknownError, ClusterAuthorizationFailedError)


class BufferFullError(JourneyLedgerError):
    """Too many sends are in flight and the producer was told to raise rather than wait."""

    hint = "await earlier deliveries or flush(), raise max_in_flight, or use when_full='block'"


class BrokerUnavailableError(JourneyLedgerError):
    """The producer could not connect to the brokers."""

    hint = (
        "check --bootstrap-servers, JOURNEYS_BOOTSTRAP_SERVERS or [kafka] bootstrap_servers, "
        "the TLS/SASL settings, and that the broker is running"
    )


class ProducerStateError(JourneyLedgerError):
    """The producer was used before `start()` or after `stop()`."""

    hint = "use the producer inside `async with` / `with`, or call start() first"


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a sent event was written."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A validated event as it goes on the wire: its key (the event id) and canonical bytes.

    Keyed by event id, not by tenant: the ledger's validate stage runs on every partition, so
    one tenant's traffic spreads over all of them, and a repeat of an event id (a retry, or a
    reuse the ledger refuses) follows the first on the same partition."""

    event: Event
    key: bytes
    value: bytes


def prepare(event: EventLike) -> PreparedRecord:
    """Validate (masking card numbers) and encode; raises `InvalidEventError` naming fields."""
    if isinstance(event, BaseModel):
        valid = validate_document(event_to_dict(event))  # re-check: models can be built unchecked
        if getattr(event, "redacted", False) and not valid.redacted:
            # An event the door already masked: checking its masked text again finds no card,
            # but the mark that one was masked must survive (it only ever claims masking).
            valid = valid.model_copy(update={"redacted": True})
    elif isinstance(event, dict):
        valid = validate_document(event)
    else:
        valid = decode_event(event)
    return PreparedRecord(valid, valid.event_id.encode(), encode_event(valid))


class JourneyProducer:
    """Async producer of touchpoints: `async with JourneyProducer(settings) as p: await p.send(e)`."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        enable_idempotence: Idempotence = "auto",
        max_in_flight: int = 10_000,
        when_full: WhenFull = "block",
        linger_ms: int = 5,
        max_batch_size: int = 256 * 1024,
        retry_backoff_ms: int = 100,
    ) -> None:
        """Configure; nothing connects until `start()` (or `async with`)."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if when_full not in ("block", "raise"):
            raise ValueError("when_full must be 'block' or 'raise'")
        self.settings = settings
        self.topic = TopicNames(settings.topic_prefix).touchpoints
        self.enable_idempotence = enable_idempotence
        self.max_in_flight = max_in_flight
        self.when_full = when_full
        self._options: dict[str, Any] = {
            **settings.client_options(),
            "acks": "all",
            "linger_ms": linger_ms,
            "max_batch_size": max_batch_size,
            "retry_backoff_ms": retry_backoff_ms,
        }
        self._client: Any = None
        self._slots: asyncio.Semaphore | None = None
        self._pending: set[asyncio.Future[Delivery]] = set()
        self.idempotent: bool | None = None
        """Whether the running producer is idempotent (None before `start()`)."""

    async def start(self) -> None:
        """Connect, trying idempotence first when `enable_idempotence="auto"`."""
        if self._client is not None:
            return
        self._slots = asyncio.Semaphore(self.max_in_flight)
        want = self.enable_idempotence
        known_refused = want == "auto" and _refused_before(self.settings.bootstrap_servers)
        if want is not False and not known_refused:
            try:
                with _quiet_init_producer_id():
                    self._client = await self._connect(idempotent=True)
                self.idempotent = True
                return
            except _REFUSED_IDEMPOTENCE as exc:
                if want is True:
                    raise BrokerUnavailableError(
                        f"the broker refused an idempotent producer: {exc!r}",
                        hint="use enable_idempotence='auto' or False with this broker",
                    ) from exc
                _note_refusal(self.settings.bootstrap_servers, exc)
        self._client = await self._connect(idempotent=False)
        self.idempotent = False

    async def _connect(self, *, idempotent: bool) -> Any:
        client = AIOKafkaProducer(enable_idempotence=idempotent, **self._options)
        try:
            await client.start()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await client.stop()
            if isinstance(exc, KafkaConnectionError):
                raise BrokerUnavailableError(
                    f"cannot reach the brokers at {self.settings.bootstrap_servers}: {exc}"
                ) from exc
            raise
        return client

    async def stop(self) -> None:
        """Deliver what is pending, then disconnect."""
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    async def __aenter__(self) -> Self:
        """Start the producer."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flush and stop the producer."""
        await self.stop()

    @property
    def in_flight(self) -> int:
        """Sends handed over but not yet delivered or failed."""
        return len(self._pending)

    async def send(self, event: EventLike) -> asyncio.Future[Delivery]:
        """Validate and send one event; returns a future resolving to its `Delivery`.

        Raises `InvalidEventError` (nothing sent) or, with `when_full="raise"`, `BufferFullError`.
        """
        record = prepare(event)
        return await self.send_prepared(record)

    async def send_prepared(self, record: PreparedRecord) -> asyncio.Future[Delivery]:
        """Send a record `prepare` made; returns a future resolving to its `Delivery`."""
        client, slots = self._client, self._slots
        if client is None or slots is None:
            raise ProducerStateError("the producer is not started")
        if self.when_full == "raise" and slots.locked():
            raise BufferFullError(f"{self.max_in_flight} sends are already in flight")
        await slots.acquire()
        try:
            inner = await client.send(self.topic, record.value, key=record.key)
        except BaseException:
            slots.release()
            raise
        outer: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        self._pending.add(outer)

        def done(result: asyncio.Future[Any]) -> None:
            slots.release()
            self._pending.discard(outer)
            if outer.done():
                return
            if result.cancelled():
                outer.cancel()
            elif (error := result.exception()) is not None:
                outer.set_exception(error)
            else:
                meta = result.result()
                outer.set_result(Delivery(meta.topic, meta.partition, meta.offset))

        inner.add_done_callback(done)
        return outer

    async def send_and_wait(self, event: EventLike) -> Delivery:
        """Send one event and wait until it is delivered."""
        return await (await self.send(event))

    async def flush(self) -> None:
        """Wait until every send so far is delivered (failures stay on their futures)."""
        if self._client is None:
            raise ProducerStateError("the producer is not started")
        await self._client.flush()
        if self._pending:
            await asyncio.wait(set(self._pending))


_refused: set[str] = set()
_refused_lock = threading.Lock()


def _refused_before(bootstrap_servers: str) -> bool:
    """Whether a broker already refused idempotence in this process (so it is not asked again)."""
    with _refused_lock:
        return bootstrap_servers in _refused


def _note_refusal(bootstrap_servers: str, error: BaseException) -> None:
    """Remember a broker's refusal and say so once per process, as one warning line."""
    with _refused_lock:
        if bootstrap_servers in _refused:
            return
        _refused.add(bootstrap_servers)
    log.warning(
        "the broker at %s refused an idempotent producer (%r); sending without idempotence "
        "(a retry may write a record twice; the ledger counts it once)",
        bootstrap_servers,
        error,
    )


class _InitProducerIdRefusal(logging.Filter):
    """Drops aiokafka's ERROR line for a refused InitProducerId: the probe reports it itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the refusal."""
        return not str(record.msg).startswith("Unexpected error during InitProducerIdRequest")


@contextlib.contextmanager
def _quiet_init_producer_id() -> Iterator[None]:
    """While probing for idempotence, a refusal is an answer, not an error worth a log line."""
    sender_log = logging.getLogger("aiokafka.producer.sender")
    refusal = _InitProducerIdRefusal()
    sender_log.addFilter(refusal)
    try:
        yield
    finally:
        sender_log.removeFilter(refusal)


class SyncJourneyProducer:
    """Thread-safe blocking twin of `JourneyProducer` (Django, Flask): its own loop in a thread."""

    def __init__(self, settings: KafkaSettings, **options: Any) -> None:
        """Configure with the same options as `JourneyProducer`; `start()` connects."""
        self._producer = JourneyProducer(settings, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def producer(self) -> JourneyProducer:
        """The async producer running in the background thread."""
        return self._producer

    def start(self) -> None:
        """Start the background loop and connect (raises what `JourneyProducer.start` raises)."""
        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="journeys-producer", daemon=True
            )
            thread.start()
            try:
                asyncio.run_coroutine_threadsafe(self._producer.start(), loop).result()
            except BaseException:
                _stop_loop(loop, thread)
                raise
            self._loop, self._thread = loop, thread

    def _run(self, coro: Any) -> Any:
        loop = self._loop
        if loop is None:
            coro.close()
            raise ProducerStateError("the producer is not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def send(self, event: EventLike) -> concurrent.futures.Future[Delivery]:
        """Validate and send; returns a future of the `Delivery`. Blocks while full ("block")."""
        record = prepare(event)  # validation errors raise here, in the caller's thread
        result: concurrent.futures.Future[Delivery] = concurrent.futures.Future()
        self._run(self._enqueue(record, result))
        return result

    async def _enqueue(
        self, record: PreparedRecord, result: concurrent.futures.Future[Delivery]
    ) -> None:
        delivery = await self._producer.send_prepared(record)

        def copy(done: asyncio.Future[Delivery]) -> None:
            if done.cancelled():
                result.cancel()
            elif (error := done.exception()) is not None:
                result.set_exception(error)
            else:
                result.set_result(done.result())

        delivery.add_done_callback(copy)

    def send_and_wait(self, event: EventLike, timeout: float | None = None) -> Delivery:
        """Send one event and block until it is delivered."""
        return self.send(event).result(timeout)

    def flush(self) -> None:
        """Block until every send so far is delivered."""
        self._run(self._producer.flush())

    def close(self) -> None:
        """Deliver what is pending, disconnect and stop the background thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            try:
                asyncio.run_coroutine_threadsafe(self._producer.stop(), loop).result()
            finally:
                self._loop = self._thread = None
                _stop_loop(loop, thread)

    def __enter__(self) -> Self:
        """Start the producer."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flush and close the producer."""
        self.close()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


__all__ = [
    "BrokerUnavailableError",
    "BufferFullError",
    "Delivery",
    "EventLike",
    "JourneyProducer",
    "PreparedRecord",
    "ProducerStateError",
    "SyncJourneyProducer",
    "prepare",
]
