"""Read the validated events topic straight from Kafka, for replay and rebuild.

No consumer group (`group_id=None`), no commits, nothing produced: reading never disturbs the
running workers. Every partition is assigned at once and read in large `getmany` batches from
its beginning up to the end it had when reading started.

Why the whole log and no seek by time: a record's Kafka timestamp is when it reached the ledger,
not when it happened. An event can arrive late (its `occurred_at` long before its log time), and
the same event is written again when two customers merge, at the time of the merge. Stopping at
records logged after `as_of` (plus any margin) would drop such events, and with them identity
links and flags a replay as of `as_of` must show. So every record is read and the pure replay
cuts by `occurred_at`. The only filter applied before decoding is the tenant: the events
topic's key is `{tenant}/{customer_id}`, so records of other tenants are skipped unread.

Tansu reports a partition's end as the first offset of its last record batch + 1 (it
undercounts). A fetch always returns whole record batches, so once every partition has reached
its reported end, the rest of each last batch is already in the consumer's buffer: reading
drains that buffer without waiting, then stops.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.errors import KafkaConnectionError, KafkaError  # type: ignore[import-untyped]
from pydantic import ValidationError

from journeys.sdk.producer import BrokerUnavailableError
from schemas.codec import decode_trusted
from schemas.errors import JourneyLedgerError
from schemas.events import Event
from schemas.outputs import HEADER_KIND, KIND_EVENT
from schemas.trusted.reader import read_event_unwrapped
from streams.config import KafkaSettings, TopicNames
from streams.crypto.fields import PREFIX as SEALED_PREFIX
from streams.crypto.opening import keys_from_changelog, open_bytes
from streams.crypto.sealing import Sealer
from streams.kafka.records import InRecord

FETCH_BYTES = 16 * 1024 * 1024
"""Bytes fetched per partition per request: large batches, few round trips."""

BATCH_RECORDS = 20_000
"""Records handed out per `getmany`."""


STALL_S = 60.0
"""Give up when no record arrives for this long while a partition is short of its end."""


class EventsTopicMissingError(JourneyLedgerError):
    """The events topic does not exist (yet) on the brokers."""

    hint = (
        "check [kafka] topic_prefix, and that a worker has run (`journeys topics create` "
        "creates the topics)"
    )


class ReadStalledError(JourneyLedgerError):
    """The brokers stopped answering before the end of the events topic was read."""

    hint = "check that the brokers are healthy, then run the command again"


Progress = Callable[[int, int], None]
"""Called as records arrive: (records read so far, records expected in total, approximate)."""


@dataclass(slots=True)
class ReadStats:
    """What reading the events topic took."""

    records: int = 0
    events: int = 0
    merges: int = 0
    skipped: int = 0
    """Records of other tenants, skipped unread."""
    sealed: int = 0
    """Events read with sealed personal fields and no data keys to open them."""
    unreadable: int = 0
    """Event records that could not be decoded (damaged: the ledger never writes such), left out."""
    first_unreadable: str = ""
    """Where the first of them is and why it could not be read (field and reason, no value)."""
    partitions: int = 0
    seconds: float = 0.0
    ends: dict[int, int] = field(default_factory=dict)
    """Per partition: the next offset after the last record read."""

    @property
    def events_per_second(self) -> float:
        """Events decoded per second of reading."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


_SEALED = b'"' + SEALED_PREFIX.encode()
"""How a sealed value starts in an event's bytes."""


@contextmanager
def bulk_decoding() -> Iterator[None]:
    """Pause the cyclic garbage collector while decoding many events into a list.

    Every decoded event adds objects the collector would otherwise scan again and again (the
    events are kept, so nothing is freed): decoding runs about 2.5 times faster without it.
    Afterwards everything is frozen before the collector resumes: decoded events hold no
    reference cycles, and its first pass would otherwise walk every one of them once more
    (0.2-0.3 s for 60,000 events). Reference counting still frees them when they are dropped.
    Meant for short-lived commands (replay, the benchmark), which never unfreeze.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _record(m: Any) -> InRecord:
    headers = tuple((k, bytes(v)) for k, v in (m.headers or ()))
    return InRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp, headers)


_EVENT_HEADER = (HEADER_KIND, KIND_EVENT)
"""The header the ledger writes first on an event's record."""


def _is_event(headers: Any) -> bool:
    """Whether a consumed record's first kind header (`HEADER_KIND`) says it is an event."""
    for name, value in headers or ():
        if name == HEADER_KIND:
            return bool(value == KIND_EVENT)
    return False


async def read_batches(
    kafka: KafkaSettings,
    topic: str | None = None,
    *,
    stats: ReadStats | None = None,
    progress: Progress | None = None,
) -> AsyncIterator[tuple[int, list[InRecord]]]:
    """Every record of a topic (default: the events topic), as (partition, batch) in log order.

    Reads each partition from its beginning to its end as reported when reading started,
    then whatever of the last record batches is still buffered. Raises `BrokerUnavailableError` when the brokers
    cannot be reached, `EventsTopicMissingError` when the topic does not exist.
    """
    async for partition, messages in _read_messages(kafka, topic, stats, progress):
        yield partition, [_record(m) for m in messages]


async def _read_messages(
    kafka: KafkaSettings,
    topic: str | None,
    stats: ReadStats | None,
    progress: Progress | None,
) -> AsyncIterator[tuple[int, list[Any]]]:
    """`read_batches`, as the client's own records: replay reads them without copying each one."""
    stats = stats if stats is not None else ReadStats()
    topic = topic or TopicNames(kafka.topic_prefix).events
    consumer = AIOKafkaConsumer(
        **kafka.client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=4 * FETCH_BYTES,
        check_crcs=False,
    )
    started = time.perf_counter()
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        await consumer.stop()
        raise BrokerUnavailableError(
            f"cannot reach the brokers at {kafka.bootstrap_servers}: {exc}"
        ) from exc
    try:
        await consumer.topics()  # the whole cluster's metadata
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise EventsTopicMissingError(
                f"topic {topic} does not exist at {kafka.bootstrap_servers}"
            )
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        position = {tp.partition: int(starts[tp]) for tp in tps}
        end = {tp.partition: int(ends[tp]) for tp in tps}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        total = sum(end[p] - position[p] for p in partitions)
        stats.partitions = len(partitions)
        last_record = time.monotonic()
        while True:
            short = any(position[p] < end[p] for p in partitions)
            batches = await consumer.getmany(
                timeout_ms=1_000 if short else 0, max_records=BATCH_RECORDS
            )
            got = False
            for tp, messages in sorted(batches.items(), key=lambda item: item[0].partition):
                if not messages:
                    continue
                got = True
                position[tp.partition] = messages[-1].offset + 1
                stats.records += len(messages)
                yield tp.partition, messages
            if got:
                last_record = time.monotonic()
                if progress is not None:
                    progress(stats.records, max(total, stats.records))
                continue
            if not short:
                break  # every reported end reached and the buffer drained: nothing more
            if time.monotonic() - last_record > STALL_S:
                behind = {p: (position[p], end[p]) for p in partitions if position[p] < end[p]}
                raise ReadStalledError(
                    f"no record from {topic} for {STALL_S:.0f}s; partitions behind: {behind}"
                )
        stats.ends = dict(position)
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"lost the brokers at {kafka.bootstrap_servers} while reading {topic}: {exc!r}"
        ) from exc
    finally:
        stats.seconds = time.perf_counter() - started
        await consumer.stop()


async def read_data_keys(kafka: KafkaSettings, sealer: Sealer) -> dict[str, bytes]:
    """The data keys of every ring left on the identity changelog (none of erased customers)."""
    topic = TopicNames(kafka.topic_prefix).identity_changelog
    entries: list[tuple[bytes | None, bytes | None]] = []
    async for _partition, records in read_batches(kafka, topic):
        entries.extend((r.key, r.value) for r in records)
    return keys_from_changelog(entries, sealer)


class EventCollector:
    """Decodes the events of consumed events-topic records, as replay reads them.

    Records of other kinds (identity merges) are counted and left; with `tenant`, other
    tenants' records are skipped before decoding; with `data_keys`, sealed events are opened
    (`[erased]` where a key is gone). An event written again (on a merge, after a crash) has
    the same bytes: decoded once, the frozen event shared.
    """

    def __init__(
        self,
        stats: ReadStats,
        tenant: str | None = None,
        data_keys: Mapping[str, bytes] | None = None,
    ) -> None:
        self.stats = stats
        self.events: list[Event] = []
        self._prefix = None if tenant is None else f"{tenant}/".encode()
        self._data_keys = data_keys
        self._decoded: dict[bytes, Event] = {}

    def add(self, records: list[Any]) -> None:
        """Decode a batch of the client's records (`aiokafka` `ConsumerRecord`s), in order.

        The client's records are read as they are: an `InRecord` built for each cost a tenth
        of replay's reading.
        """
        if self._data_keys is not None or self._prefix is not None:
            self._add_each(records)
            return
        # The common case (the whole topic, clear or without keys) in one tight loop: every
        # call and attribute read here runs 75,000 times a second.
        stats, decoded, events = self.stats, self._decoded, self.events
        get, append, read = decoded.get, events.append, read_event_unwrapped
        sealed = merges = 0
        for record in records:
            value, headers = record.value, record.headers
            # the ledger writes the kind first: one comparison, no call, for nearly every record
            if value is None or not (
                (headers and headers[0] == _EVENT_HEADER) or _is_event(headers)
            ):
                merges += 1  # identity merges: replay stitches from the events
                continue
            event = get(value)
            if event is None:
                try:
                    event = read(value)
                except ValidationError:
                    try:  # validated in full: a damaged record's reasons are validation's
                        event = decode_trusted(value)
                    except ValueError as exc:
                        self._unreadable(record, exc)
                        continue
                sealed += _SEALED in value
                decoded[value] = event
            append(event)
        stats.merges += merges
        stats.sealed += sealed
        stats.events = len(events)

    def _add_each(self, records: list[Any]) -> None:
        """`add` for one tenant's records, or with data keys to open sealed events."""
        stats, prefix, decoded, events = self.stats, self._prefix, self._decoded, self.events
        for record in records:
            value, headers = record.value, record.headers
            first_is_event = bool(headers) and headers[0] == _EVENT_HEADER
            if value is None or not (first_is_event or _is_event(headers)):
                stats.merges += 1
                continue
            if prefix is not None and not (record.key or b"").startswith(prefix):
                stats.skipped += 1
                continue
            event = decoded.get(value)
            if event is None:
                try:
                    if self._data_keys is not None:
                        event = open_bytes(value, self._data_keys)
                    else:
                        event = decode_trusted(value)
                except ValueError as exc:  # invalid, damaged JSON or ciphertext: one record
                    self._unreadable(record, exc)
                    continue
                if self._data_keys is None:
                    stats.sealed += _SEALED in value
                decoded[value] = event
            events.append(event)
        stats.events = len(events)

    def _unreadable(self, record: Any, exc: ValueError) -> None:
        """Count a record that does not decode; keep where the first is and why."""
        self.stats.unreadable += 1
        if self.stats.first_unreadable:
            return
        if isinstance(exc, ValidationError):
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "the event"
            why = f"{where}: {first['msg']}"
        else:
            why = type(exc).__name__
        self.stats.first_unreadable = f"partition {record.partition}, offset {record.offset}: {why}"


async def read_events(
    kafka: KafkaSettings,
    *,
    tenant: str | None = None,
    stats: ReadStats | None = None,
    progress: Progress | None = None,
    data_keys: Mapping[str, bytes] | None = None,
) -> list[Event]:
    """Every event of the events topic (records of kind `event`), decoded, duplicates kept.

    The same event can appear more than once (written again on a merge or after a crash);
    the pure replay drops repeats by event id. With `tenant`, other tenants' records are
    skipped before decoding. With `data_keys`, sealed events are opened (`[erased]` where a
    key is gone).
    """
    collector = EventCollector(stats if stats is not None else ReadStats(), tenant, data_keys)
    with bulk_decoding():
        async for _partition, records in _read_messages(kafka, None, collector.stats, progress):
            collector.add(records)
    return collector.events
