"""`journeys bench`: the ledger's throughput and latencies next to the raw Kafka + Python limit.

One run, against the configured broker or an embedded Tansu it starts itself, each phase on
topics of its own under a fresh prefix (runs never mix):

1. load: `journeys.synthetic.skewed_load` (many customers, heavy-tailed events per customer,
   the whole type catalogue, a share contradictory, identifiers that need stitching);
2. producer SDK: `JourneyProducer.send` of every event (validated) to the touchpoints topic;
3. raw baseline on the same records: aiokafka `getmany` (no group, all partitions assigned),
   orjson decode and a dict fold; no validation, no RocksDB, nothing produced;
4. pipeline, one worker: `streams.worker.Worker` in this process, from its first processed
   record to the last event stored by the journey stage (which also processes merges);
5. replay (`journeys.replay_source.read_events`) and rebuild (`journeys.rebuild.rebuild`) of
   the events topic phase 4 wrote; RocksDB bytes of phase 4's worker per million events;
6. pipeline, two workers: two `journeys worker` subprocesses, joined before the load is sent,
   from the first ingest commit to the journey stage's last; then one worker split into a
   process per stage (`--stages ingest`, `--stages journeys`), timed the same way;
7. live: one `journeys worker --api-port` subprocess; events offered at a fixed rate, the
   time from each send to the flag record it caused (the flag topic's record timestamp), then
   `GET /v1/journeys/{customer_id}` latencies for a sample of customers.

Peak RSS comes from the worker subprocesses (`VmHWM`).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import math
import os
import platform
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from rich.console import Console
from rich.table import Table

from journeys.bench_workers import (
    WorkerFailedError,
    WorkerProcess,
    directory_bytes,
    wait_for_api,
    wait_for_members,
    watch_completion,
    worker_config,
)
from journeys.clock import wall_clock
from journeys.producer import Idempotence, JourneyProducer
from journeys.rebuild import rebuild
from journeys.replay_source import ReadStats, read_batches, read_events
from journeys.settings import Settings
from journeys.synthetic import skewed_load
from schemas.errors import JourneyLedgerError
from schemas.outputs import FlagChange, FlagSnapshot
from streams.config import KafkaSettings, TopicNames
from streams.embedded_broker import BrokerError, EmbeddedBroker, find_free_port
from streams.kafka.sender import BatchSender, Outgoing
from streams.store import keys
from streams.topics import create_topics
from streams.worker import Worker, loop_factory

EXIT_UNAVAILABLE = 2

DEFAULT_EVENTS = 60_000
"""Events of a default run (about two minutes on 2 cores with the embedded broker)."""

REQUIRED_KEYS: tuple[str, ...] = (
    "baseline_events_per_s",
    "pipeline_events_per_s",
    "ratio",
    "flag_latency_ms_p50",
    "flag_latency_ms_p99",
    "query_latency_ms_p50",
    "query_latency_ms_p99",
    "replay_events_per_s",
    "rss_mb",
)
"""Keys the JSON output always has (the issue's contract)."""

PEERS = (
    "faust-streaming agents 1.2-1.8k events/s with a table write per event (4.5k/s doing "
    "nothing); quixstreams about 9.5k/s; Kafka Streams 234-284k records/s (JVM, its own "
    "RocksDB count benchmark)"
)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BenchSizes:
    """How big a run is."""

    events: int = DEFAULT_EVENTS
    customers: int | None = None
    """Customers of the load (default: a fifth of the events)."""
    seed: int = 1
    rate: int = 1_000
    """Offered load of the flag-latency phase, events per second."""
    latency_seconds: float = 15.0
    queries: int = 300

    @property
    def customer_count(self) -> int:
        """The customers of the load."""
        return self.customers if self.customers is not None else max(1, self.events // 5)

    @property
    def latency_events(self) -> int:
        """Events offered in the flag-latency phase."""
        return max(1, round(self.rate * self.latency_seconds))


# --- pure parts --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated linearly between closest ranks (numpy's way)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fold_raw(values: Iterable[bytes | None], journeys: dict[tuple[str, str], list[str]]) -> int:
    """The baseline's fold: decode with orjson, group event ids by tenant and first identifier.

    No validation, no normalisation, no stitching, no rules: the least a consumer can do.
    """
    count = 0
    for value in values:
        count += 1
        if not value:
            continue
        document = orjson.loads(value)
        customer = document.get("customer") or {}
        first = next(iter(customer.values()), "")
        journeys.setdefault((document.get("tenant", ""), str(first)), []).append(
            document.get("event_id", "")
        )
    return count


def flag_latencies(
    records: Iterable[tuple[int, bytes | None]], sent_at: Mapping[str, float]
) -> list[float]:
    """Milliseconds from sending a flag's latest event to the flag record, per flag raised.

    `records` are the flag topic's (timestamp_ms, value); `sent_at` maps event ids to the wall
    time (seconds) they were sent. Only `opened` changes count, once per (tenant, rule, event
    ids): when a merge moves a flag to the surviving customer, the flag is not raised again.
    Flags that cite no event sent here are skipped.
    """
    first: dict[tuple[str, str, tuple[str, ...]], float] = {}
    for timestamp_ms, value in records:
        if not value:
            continue
        change = FlagChange.from_bytes(value)
        if change.change != "opened" or not isinstance(change.flag, FlagSnapshot):
            continue
        flag = change.flag
        ids = tuple(sorted(flag.event_ids))
        known = [sent_at[i] for i in ids if i in sent_at]
        if not known:
            continue
        latency = timestamp_ms - max(known) * 1000
        key = (change.tenant, flag.rule, ids)
        if key not in first or latency < first[key]:
            first[key] = latency
    return [max(0.0, latency) for latency in first.values()]


def machine_info(broker: str) -> dict[str, Any]:
    """Where the run happened."""
    model = ""
    memory_gb = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cores": usable,
        "cpu": model or platform.processor() or platform.machine(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "broker": broker,
    }


# --- the result --------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """Everything a run measured (rates in events per second, latencies in milliseconds)."""

    baseline_events_per_s: float = 0.0
    pipeline_events_per_s: float = 0.0
    ratio: float = 0.0
    flag_latency_ms_p50: float = 0.0
    flag_latency_ms_p99: float = 0.0
    query_latency_ms_p50: float = 0.0
    query_latency_ms_p99: float = 0.0
    replay_events_per_s: float = 0.0
    rss_mb: float = 0.0
    producer_events_per_s: float = 0.0
    pipeline_two_workers_events_per_s: float = 0.0
    pipeline_stage_processes_events_per_s: float = 0.0
    rebuild_events_per_s: float = 0.0
    rocksdb_mb_per_million_events: float = 0.0
    flags_measured: int = 0
    offered_events_per_s: float = 0.0
    queries: int = 0
    query_errors: int = 0
    rss_mb_two_workers: list[float] = field(default_factory=list)
    rss_mb_stage_processes: list[float] = field(default_factory=list)
    rss_mb_api_worker: float = 0.0
    pipeline: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    topic_prefix: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `--format json` prints."""
        return asdict(self)


def render_result(console: Console, result: BenchResult) -> None:
    """The readable table."""
    r = result
    table = Table(title="journeys bench", title_justify="left", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("note")

    def rate(value: float) -> str:
        return f"{value:,.0f} events/s"

    def ms(value: float) -> str:
        return f"{value:,.1f} ms"

    sizes = r.sizes
    table.add_row("raw baseline", rate(r.baseline_events_per_s), "aiokafka + orjson + dict fold")
    table.add_row("producer SDK", rate(r.producer_events_per_s), "validated, acks=all")
    table.add_row("pipeline, 1 worker", rate(r.pipeline_events_per_s), "raw topic to journeys")
    table.add_row("  ratio to baseline", f"{r.ratio:.3f}", "target >= 0.25")
    table.add_row("pipeline, 2 workers", rate(r.pipeline_two_workers_events_per_s), "processes")
    table.add_row(
        "pipeline, 1 worker split",
        rate(r.pipeline_stage_processes_events_per_s),
        "a process per stage (--stages)",
    )
    table.add_row(
        "flag latency p50 / p99",
        f"{ms(r.flag_latency_ms_p50)} / {ms(r.flag_latency_ms_p99)}",
        f"{r.flags_measured} flags at {r.offered_events_per_s:,.0f} events/s offered",
    )
    table.add_row(
        "query latency p50 / p99",
        f"{ms(r.query_latency_ms_p50)} / {ms(r.query_latency_ms_p99)}",
        f"GET /v1/journeys/{{id}}, {r.queries} queries, {r.query_errors} errors",
    )
    table.add_row("replay", rate(r.replay_events_per_s), "read + decode the events topic")
    table.add_row("rebuild", rate(r.rebuild_events_per_s), "fold into a new store + rules")
    table.add_row("worker peak RSS", f"{r.rss_mb:,.0f} MiB", "largest worker process (VmHWM)")
    table.add_row(
        "RocksDB per million events", f"{r.rocksdb_mb_per_million_events:,.0f} MB", "1 worker"
    )
    console.print(table)
    m = r.machine
    console.print(
        f"{sizes.get('events'):,} events, {sizes.get('customers'):,} customers, "
        f"{sizes.get('partitions')} partitions; {m.get('cores')} cores ({m.get('cpu')}), "
        f"Python {m.get('python')}, broker: {m.get('broker')}; {r.seconds:.0f} s in all",
        highlight=False,
    )
    console.print(f"peers: {PEERS}", highlight=False)


# --- phases ------------------------------------------------------------------------------------


def _kafka(settings: Settings, prefix: str) -> KafkaSettings:
    return replace(settings.kafka_settings(), topic_prefix=prefix)


async def _produce_sdk(
    kafka: KafkaSettings, lines: Sequence[bytes], idempotence: Idempotence
) -> tuple[float, dict[int, int]]:
    """Send through the SDK; returns seconds and the next offset per partition."""
    ends: dict[int, int] = {}
    async with JourneyProducer(kafka, enable_idempotence=idempotence) as producer:
        started = time.perf_counter()
        futures = [await producer.send(line) for line in lines]
        await producer.flush()
        seconds = time.perf_counter() - started
    for future in futures:
        delivery = future.result()
        ends[delivery.partition] = max(ends.get(delivery.partition, 0), delivery.offset + 1)
    return seconds, ends


async def _produce_raw(kafka: KafkaSettings, lines: Sequence[bytes]) -> dict[int, int]:
    """Send pre-validated lines keyed by tenant as fast as aiokafka batches allow."""
    topic = TopicNames(kafka.topic_prefix).touchpoints
    producer = AIOKafkaProducer(
        **kafka.client_options(),
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    try:
        sender = BatchSender(producer)
        ends = await sender.send(
            Outgoing(topic, orjson.loads(line)["tenant"].encode(), line) for line in lines
        )
    finally:
        await producer.stop()
    return {partition: end for (_topic, partition), end in ends.items()}


async def _baseline(kafka: KafkaSettings, total: int, timeout_s: float = 120.0) -> float:
    """Raw consume + decode + fold of the touchpoints topic; events per second."""
    topic = TopicNames(kafka.topic_prefix).touchpoints
    consumer = AIOKafkaConsumer(
        **kafka.client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(kafka.partitions)]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        journeys: dict[tuple[str, str], list[str]] = {}
        count = 0
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while count < total:
            batches = await consumer.getmany(timeout_ms=1_000, max_records=kafka.max_batch_records)
            for messages in batches.values():
                count += fold_raw((m.value for m in messages), journeys)
            if time.monotonic() > deadline:
                raise WorkerFailedError(f"the baseline read {count} of {total} records")
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


@dataclass
class _OneWorker:
    seconds: float
    ingest_seconds: float
    journeys_start_s: float
    ingest_records: int
    journey_records: int
    outputs: int
    dead_letters: int
    store_bytes: int


async def _pipeline_one(
    kafka: KafkaSettings,
    settings: Settings,
    data_dir: Path,
    total: int,
    profile: Path | None,
    settle_s: float = 1.0,
    timeout_s: float = 900.0,
) -> _OneWorker:
    """Run a worker in this process until the load is stored; time first to last record."""
    gc.collect()
    gc.freeze()  # the benchmark's own objects stay out of the worker's collections
    worker = Worker(kafka, settings.fold_settings(), data_dir, wall_clock)
    stop = asyncio.Event()
    profiler = cProfile.Profile() if profile is not None else None
    if profiler is not None:
        profiler.enable()
    task = asyncio.create_task(worker.run(stop))
    first: float | None = None
    journeys_first: float | None = None
    ingest_done: float | None = None
    last_seen, changed_at = -1, time.perf_counter()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            await asyncio.sleep(0.02)
            if task.done():
                task.result()  # raises what stopped it
                raise WorkerFailedError("the in-process worker stopped early")
            now = time.perf_counter()
            if first is None and worker.ingest.stats.records:
                first = now
            if journeys_first is None and worker.journeys.stats.records:
                journeys_first = now
            if ingest_done is None and worker.ingest.stats.records >= total:
                ingest_done = now
            seen = worker.journeys.stats.records
            if seen != last_seen:
                last_seen, changed_at = seen, now
            if worker.ingest.stats.records >= total and seen and now - changed_at >= settle_s:
                break
            if time.monotonic() > deadline:
                raise WorkerFailedError(
                    f"the worker did not get through the load within {timeout_s:.0f}s "
                    f"({worker.ingest.stats.records} of {total} ingested)"
                )
    finally:
        stop.set()
        await task
        if profiler is not None:
            profiler.disable()
            assert profile is not None
            profiler.dump_stats(str(profile))
        gc.unfreeze()
    assert first is not None
    assert journeys_first is not None
    assert ingest_done is not None
    return _OneWorker(
        seconds=max(changed_at - first, 1e-9),
        ingest_seconds=ingest_done - first,
        journeys_start_s=journeys_first - first,
        ingest_records=worker.ingest.stats.records,
        journey_records=worker.journeys.stats.records,
        outputs=worker.ingest.stats.outputs + worker.journeys.stats.outputs,
        dead_letters=worker.ingest.stats.dead_letters,
        store_bytes=directory_bytes(data_dir),
    )


async def _pipeline_two(
    settings: Settings,
    kafka: KafkaSettings,
    lines: Sequence[bytes],
    work: Path,
    stages: Sequence[str | None] = (None, None),
) -> tuple[float, list[float]]:
    """Two worker processes, joined first; returns events per second and their peak RSS.

    `stages` gives each process's `--stages`: both stages in each (two workers), or one
    stage in each (one worker split into a process per stage, one per core).
    """
    await create_topics(kafka)
    name = "two" if stages[0] is None else "split"
    config = work / f"{name}.toml"
    config.write_text(worker_config(settings, kafka.topic_prefix), encoding="utf-8")
    workers = [
        WorkerProcess(config, work / f"{name}-{n}", work / f"{name}-{n}.log", stages=only).start()
        for n, only in enumerate(stages)
    ]
    try:
        await wait_for_members(kafka, 2 if stages[0] is None else 1, workers)
        produced = await _produce_raw(kafka, lines)
        completion = await watch_completion(
            kafka,
            produced,
            alive=lambda: all(w.alive() for w in workers),
            on_sample=lambda: _sample(workers),
        )
    finally:
        for w in workers:
            w.stop()
    return len(lines) / completion.seconds, [w.peak_rss_mb or 0.0 for w in workers]


def _sample(workers: Sequence[WorkerProcess]) -> None:
    for worker in workers:
        worker.sample_rss()


@dataclass
class _Live:
    flag_ms: list[float]
    offered_per_s: float
    query_ms: list[float]
    query_errors: int
    rss_mb: float


async def _offer(
    kafka: KafkaSettings,
    lines: Sequence[bytes],
    ids: Sequence[str],
    rate: int,
    idempotence: Idempotence,
) -> tuple[dict[str, float], dict[int, int], float]:
    """Send at a fixed rate through the SDK; returns send times, ends and the achieved rate."""
    sent_at: dict[str, float] = {}
    ends: dict[int, int] = {}
    async with JourneyProducer(kafka, enable_idempotence=idempotence) as producer:
        futures = []
        started = time.perf_counter()
        for n, (event_id, line) in enumerate(zip(ids, lines, strict=True)):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[event_id] = time.time()
            futures.append(await producer.send(line))
        await producer.flush()
        seconds = time.perf_counter() - started
    for future in futures:
        delivery = future.result()
        ends[delivery.partition] = max(ends.get(delivery.partition, 0), delivery.offset + 1)
    return sent_at, ends, len(lines) / seconds


async def _stored_customers(kafka: KafkaSettings) -> list[tuple[str, str]]:
    """(tenant, customer id) of every journey the journey stage's state topic holds."""
    latest: dict[bytes, bool] = {}
    changelog = TopicNames(kafka.topic_prefix).journey_changelog
    async for _partition, records in read_batches(kafka, changelog):
        for record in records:
            if record.key is not None and keys.journey_of(record.key) is not None:
                latest[record.key] = record.value is not None
    found = []
    for key, present in sorted(latest.items()):
        if present:
            ref = keys.journey_of(key)
            if ref is not None:
                found.append(ref)
    return found


async def _query(
    url: str, token: str, customers: Sequence[tuple[str, str]], count: int
) -> tuple[list[float], int]:
    """Time `count` journey queries, sequentially, over one keep-alive connection."""
    if not customers or count < 1:
        return [], 0
    step = max(1, len(customers) // count)
    sample = [customers[(n * step) % len(customers)] for n in range(count)]
    timings: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0) as client:
        for tenant, customer in sample[:10]:  # warm the connection and the code paths
            await client.get(f"/v1/journeys/{customer}", params={"tenant": tenant})
        for tenant, customer in sample:
            started = time.perf_counter()
            response = await client.get(f"/v1/journeys/{customer}", params={"tenant": tenant})
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors += 1
    return timings, errors


async def _live(
    settings: Settings,
    kafka: KafkaSettings,
    lines: Sequence[bytes],
    ids: Sequence[str],
    sizes: BenchSizes,
    idempotence: Idempotence,
    work: Path,
    progress: Progress,
) -> _Live:
    """One worker with the API: flag latency at a fixed offered load, then query latency."""
    await create_topics(kafka)
    token = "bench-" + secrets.token_urlsafe(18)
    host = settings.api.host if settings.api.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    port = find_free_port(host)
    config = work / "live-worker.toml"
    config.write_text(worker_config(settings, kafka.topic_prefix, token), encoding="utf-8")
    worker = WorkerProcess(config, work / "live", work / "live.log", api_port=port).start()
    url = f"http://{host}:{port}"
    try:
        await wait_for_members(kafka, 1, [worker])
        await wait_for_api(url, [worker])
        progress(f"offering {len(lines):,} events at {sizes.rate:,}/s")
        sent_at, produced, offered = await _offer(kafka, lines, ids, sizes.rate, idempotence)
        await watch_completion(
            kafka, produced, alive=worker.alive, on_sample=lambda: _sample([worker])
        )
        flag_records: list[tuple[int, bytes | None]] = []
        async for _partition, records in read_batches(kafka, TopicNames(kafka.topic_prefix).flags):
            flag_records.extend((r.timestamp_ms, r.value) for r in records)
        flag_ms = flag_latencies(flag_records, sent_at)
        customers = await _stored_customers(kafka)
        progress(f"querying {sizes.queries} of {len(customers):,} journeys through the API")
        query_ms, errors = await _query(url, token, customers, sizes.queries)
        worker.sample_rss()
    finally:
        worker.stop()
    return _Live(flag_ms, offered, query_ms, errors, worker.peak_rss_mb or 0.0)


def _p(values: Sequence[float], q: float) -> float:
    return round(percentile(values, q), 2) if values else 0.0


async def run_bench(
    settings: Settings,
    sizes: BenchSizes,
    *,
    broker: str,
    work: Path,
    progress: Progress,
    profile: Path | None = None,
) -> BenchResult:
    """Every phase, in order; returns the measurements."""
    started = time.perf_counter()
    prefix = f"bench-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    base = settings.kafka_settings()
    one = _kafka(settings, f"{prefix}.one")
    two = _kafka(settings, f"{prefix}.two")
    split = _kafka(settings, f"{prefix}.split")
    live = _kafka(settings, f"{prefix}.live")
    idempotence: Idempotence = False if broker.startswith("embedded") else "auto"
    result = BenchResult(topic_prefix=prefix, machine=machine_info(broker))
    result.sizes = {
        "events": sizes.events,
        "customers": sizes.customer_count,
        "seed": sizes.seed,
        "partitions": base.partitions,
        "max_batch_records": base.max_batch_records,
        "latency_events": sizes.latency_events,
        "latency_rate": sizes.rate,
        "latency_seconds": sizes.latency_seconds,
        "queries": sizes.queries,
    }

    progress(f"generating {sizes.events:,} events of {sizes.customer_count:,} customers")
    load = skewed_load(sizes.events, sizes.customer_count, sizes.seed)
    lines = load.lines
    live_load = skewed_load(sizes.latency_events, max(1, sizes.latency_events // 5), sizes.seed + 1)
    live_ids = [orjson.loads(line)["event_id"] for line in live_load.lines]

    progress("producer SDK: sending through JourneyProducer")
    await create_topics(one)
    seconds, ends = await _produce_sdk(one, lines, idempotence)
    result.producer_events_per_s = round(len(lines) / seconds)
    assert sum(ends.values()) >= len(lines)

    progress("raw baseline: aiokafka + orjson + dict fold")
    result.baseline_events_per_s = round(await _baseline(one, len(lines)))

    progress("pipeline with one worker (in this process)")
    single = await _pipeline_one(one, settings, work / "one", len(lines), profile)
    result.pipeline_events_per_s = round(len(lines) / single.seconds)
    result.ratio = round(result.pipeline_events_per_s / max(result.baseline_events_per_s, 1), 4)
    result.rocksdb_mb_per_million_events = round(single.store_bytes / 1e6 / (len(lines) / 1e6), 1)
    result.pipeline = {
        "one_worker_seconds": round(single.seconds, 3),
        "ingest_seconds": round(single.ingest_seconds, 3),
        "journey_stage_started_after_s": round(single.journeys_start_s, 3),
        "ingest_records": single.ingest_records,
        "journey_records": single.journey_records,
        "outputs": single.outputs,
        "dead_letters": single.dead_letters,
        "store_bytes": single.store_bytes,
    }

    progress("replay: reading and decoding the events topic")
    read = ReadStats()
    events = await read_events(one, stats=read)
    result.replay_events_per_s = round(read.events / max(read.seconds, 1e-9))
    del events
    progress("rebuild: folding the events topic into a new journey generation")
    rebuilt = await rebuild(
        one,
        settings.fold_settings(),
        work / "rebuild",
        wall_clock,
        generation=one.journey_generation + 1,
    )
    result.rebuild_events_per_s = round(rebuilt.records / max(rebuilt.seconds, 1e-9))

    progress("pipeline with two worker processes")
    rate_two, rss_two = await _pipeline_two(settings, two, lines, work)
    result.pipeline_two_workers_events_per_s = round(rate_two)
    result.rss_mb_two_workers = [round(r, 1) for r in rss_two]

    progress("pipeline with one worker split into a process per stage")
    rate_split, rss_split = await _pipeline_two(
        settings, split, lines, work, stages=("ingest", "journeys")
    )
    result.pipeline_stage_processes_events_per_s = round(rate_split)
    result.rss_mb_stage_processes = [round(r, 1) for r in rss_split]

    progress("live worker with the API: flag and query latency")
    measured = await _live(
        settings, live, live_load.lines, live_ids, sizes, idempotence, work, progress
    )
    result.flag_latency_ms_p50 = _p(measured.flag_ms, 50)
    result.flag_latency_ms_p99 = _p(measured.flag_ms, 99)
    result.flags_measured = len(measured.flag_ms)
    result.offered_events_per_s = round(measured.offered_per_s)
    result.query_latency_ms_p50 = _p(measured.query_ms, 50)
    result.query_latency_ms_p99 = _p(measured.query_ms, 99)
    result.queries = len(measured.query_ms)
    result.query_errors = measured.query_errors
    result.rss_mb_api_worker = round(measured.rss_mb, 1)
    result.rss_mb = round(max([*rss_two, *rss_split, measured.rss_mb]), 1)
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def bench_command(
    settings: Settings,
    sizes: BenchSizes,
    *,
    as_json: bool,
    profile: Path | None = None,
    keep: bool = False,
) -> int:
    """Run the benchmark and print the table (or JSON); returns the exit status."""
    err = Console(stderr=True, highlight=False)
    broker: EmbeddedBroker | None = None
    if not settings.bootstrap_configured:
        try:
            broker = EmbeddedBroker().start()
        except BrokerError as exc:
            err.print(f"[red]error:[/] {exc}")
            return EXIT_UNAVAILABLE
        settings = settings.with_bootstrap_servers(broker.bootstrap_servers)
        kind = f"embedded Tansu at {broker.bootstrap_servers} (memory)"
    else:
        kind = f"configured at {settings.kafka.bootstrap_servers}"
    work = Path(tempfile.mkdtemp(prefix="journeys-bench-"))
    began = time.perf_counter()

    def progress(message: str) -> None:
        err.print(f"[dim]{time.perf_counter() - began:6.1f}s[/] {message}")

    try:
        # The loop `journeys worker` runs on: the in-process pipeline is measured on it.
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            result = runner.run(
                run_bench(
                    settings, sizes, broker=kind, work=work, progress=progress, profile=profile
                )
            )
    except (JourneyLedgerError, WorkerFailedError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return EXIT_UNAVAILABLE
    finally:
        if broker is not None:
            broker.stop()
        if keep:
            err.print(f"kept the workers' data and logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if as_json:
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        render_result(Console(highlight=False), result)
    return 0
