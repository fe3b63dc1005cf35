"""The benchmark's phases: producing, the raw baseline, the pipeline in and out of process, live."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import orjson
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    TopicPartition,
)

from journeys.bench.result import BenchSizes, flag_latencies, fold_raw
from journeys.bench.workers import (
    WorkerFailedError,
    WorkerProcess,
    directory_bytes,
    send_raw,
    wait_for_api,
    wait_for_members,
    watch_completion,
    worker_config,
)
from journeys.clock import wall_clock
from journeys.devbroker import find_free_port
from journeys.forensics.source import read_batches
from journeys.sdk.producer import Delivery, Idempotence, JourneyProducer
from journeys.settings import Settings
from journeys.supervisor import process_count
from streams.config import KafkaSettings, TopicNames
from streams.kafka.sender import Outgoing
from streams.store import keys
from streams.topics import create_topics
from streams.worker import Worker

Progress = Callable[[str], None]
"""Called with a line saying what the run is doing."""


def _ends(futures: Sequence[asyncio.Future[Delivery]]) -> dict[int, int]:
    """The next offset per partition after the deliveries (all done)."""
    ends: dict[int, int] = {}
    for future in futures:
        delivery = future.result()
        ends[delivery.partition] = max(ends.get(delivery.partition, 0), delivery.offset + 1)
    return ends


def kafka_for(settings: Settings, prefix: str) -> KafkaSettings:
    """The run's Kafka settings with topics of their own under `prefix`."""
    return replace(settings.kafka_settings(), topic_prefix=prefix)


async def produce_sdk(
    kafka: KafkaSettings, lines: Sequence[bytes], idempotence: Idempotence
) -> tuple[float, dict[int, int]]:
    """Send through the SDK; returns seconds and the next offset per partition."""
    async with JourneyProducer(kafka, enable_idempotence=idempotence) as producer:
        started = time.perf_counter()
        futures = [await producer.send(line) for line in lines]
        await producer.flush()
        seconds = time.perf_counter() - started
    ends = _ends(futures)
    return seconds, ends


async def _produce_raw(kafka: KafkaSettings, lines: Sequence[bytes]) -> dict[int, int]:
    """Send pre-validated lines keyed by event id (as the SDK does) as fast as aiokafka
    batches allow."""
    topic = TopicNames(kafka.topic_prefix).touchpoints
    ends = await send_raw(
        kafka, (Outgoing(topic, orjson.loads(line)["event_id"].encode(), line) for line in lines)
    )
    return {partition: end for (_topic, partition), end in ends.items()}


async def baseline(kafka: KafkaSettings, total: int, timeout_s: float = 120.0) -> float:
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
class OneWorker:
    """What the in-process worker took for the load, and what it left on disk."""

    seconds: float
    ingest_seconds: float
    journeys_start_s: float
    ingest_records: int
    journey_records: int
    outputs: int
    dead_letters: int
    store_bytes: int
    cpu_us: dict[str, float]
    """CPU time per event of the load (µs, `time.thread_time` of the worker's thread): each
    stage's batch function, and `all` of it, the Kafka client, event loop and persisting too."""


_QUIET_POLLS = 10
"""Polls in a row that must see the journey stage idle before the one-worker phase ends."""


async def pipeline_one(
    kafka: KafkaSettings,
    settings: Settings,
    data_dir: Path,
    total: int,
    profile: Path | None,
    settle_s: float = 1.0,
    timeout_s: float = 900.0,
) -> OneWorker:
    """Run a worker in this process until the load is stored; time first to last record."""
    gc.collect()
    gc.freeze()  # the benchmark's own objects stay out of the worker's collections
    worker = Worker(kafka, settings.fold_settings(), data_dir, wall_clock)
    stop = asyncio.Event()
    profiler = cProfile.Profile() if profile is not None else None
    if profiler is not None:
        profiler.enable()
    cpu_began = time.thread_time()
    task = asyncio.create_task(worker.run(stop))
    first: float | None = None
    journeys_first: float | None = None
    ingest_done: float | None = None
    last_seen, changed_at, quiet = -1, time.perf_counter(), 0
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            await asyncio.sleep(0.02)
            if task.done():
                task.result()  # raises what stopped it
                raise WorkerFailedError("the in-process worker stopped early")
            now = time.perf_counter()
            if first is None and worker.validate.stats.records:
                first = now
            if journeys_first is None and worker.journeys.stats.records:
                journeys_first = now
            # every touchpoint stitched, or refused by the validate stage
            stitched = worker.ingest.stats.records + worker.validate.stats.dead_letters
            if ingest_done is None and stitched >= total:
                ingest_done = now
            seen = worker.journeys.stats.records
            quiet += 1
            if seen != last_seen:
                last_seen, changed_at, quiet = seen, now, 0
            # quiet for a while and for some polls: a pause of the whole loop (a full garbage
            # collection) is no quiet time, the journey stage had no turn in it
            if (
                stitched >= total
                and seen
                and now - changed_at >= settle_s
                and quiet >= _QUIET_POLLS
            ):
                break
            if time.monotonic() > deadline:
                raise WorkerFailedError(
                    f"the worker did not get through the load within {timeout_s:.0f}s "
                    f"({worker.ingest.stats.records} of {total} ingested)"
                )
    finally:
        stop.set()
        await task
        cpu_all = time.thread_time() - cpu_began
        if profiler is not None:
            profiler.disable()
            assert profile is not None
            profiler.dump_stats(str(profile))
        gc.unfreeze()
    assert first is not None
    assert journeys_first is not None
    assert ingest_done is not None
    return OneWorker(
        seconds=max(changed_at - first, 1e-9),
        ingest_seconds=ingest_done - first,
        journeys_start_s=journeys_first - first,
        ingest_records=worker.ingest.stats.records,
        journey_records=worker.journeys.stats.records,
        outputs=worker.ingest.stats.outputs + worker.journeys.stats.outputs,
        dead_letters=worker.validate.stats.dead_letters + worker.ingest.stats.dead_letters,
        store_bytes=directory_bytes(data_dir),
        cpu_us={
            **{
                stage.name: round(stage.stats.cpu_seconds / total * 1e6, 1)
                for stage in (worker.validate, worker.ingest, worker.journeys)
            },
            "all": round(cpu_all / total * 1e6, 1),
        },
    )


async def pipeline_two(
    settings: Settings,
    kafka: KafkaSettings,
    lines: Sequence[bytes],
    work: Path,
    stages: Sequence[str | None] = (None, None),
) -> tuple[float, list[float]]:
    """Two worker processes, joined first; returns events per second and their peak RSS.

    `stages` gives each process's `--stages`: every stage in each (two workers), or the
    stages split over them (one worker split into two processes, one per core).
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


async def pipeline_auto(
    settings: Settings, kafka: KafkaSettings, lines: Sequence[bytes], work: Path, name: str
) -> float:
    """`journeys worker --processes auto` (a supervisor and a child per core), joined first;
    events per second from the first validate commit to the journey stage's last."""
    await create_topics(kafka)
    config = work / f"{name}.toml"
    config.write_text(worker_config(settings, kafka.topic_prefix), encoding="utf-8")
    supervisor = WorkerProcess(config, work / name, work / f"{name}.log", processes="auto").start()
    try:
        await wait_for_members(kafka, process_count("auto"), [supervisor])
        produced = await _produce_raw(kafka, lines)
        completion = await watch_completion(kafka, produced, alive=supervisor.alive)
    finally:
        supervisor.stop()
    return len(lines) / completion.seconds


def _sample(workers: Sequence[WorkerProcess]) -> None:
    for worker in workers:
        worker.sample_rss()


@dataclass
class LiveFigures:
    """What the live phase measured: flag and query latencies, the rate offered, memory."""

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
    ends = _ends(futures)
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


async def live_phase(
    settings: Settings,
    kafka: KafkaSettings,
    lines: Sequence[bytes],
    ids: Sequence[str],
    sizes: BenchSizes,
    idempotence: Idempotence,
    work: Path,
    progress: Progress,
) -> LiveFigures:
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
    return LiveFigures(flag_ms, offered, query_ms, errors, worker.peak_rss_mb or 0.0)
