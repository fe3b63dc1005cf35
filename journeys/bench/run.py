"""`journeys bench`: the ledger's throughput and latencies next to the raw Kafka + Python limit.

One run, against the configured broker or an embedded Tansu it starts itself, each phase on
topics of its own under a fresh prefix (runs never mix):

1. load: `journeys.bench.load.skewed_load` (many customers, heavy-tailed events per customer,
   the whole type catalogue, a share contradictory, identifiers that need stitching);
2. producer SDK: `JourneyProducer.send` of every event (validated) to the touchpoints topic;
3. raw baseline on the same records: aiokafka `getmany` (no group, all partitions assigned),
   orjson decode and a dict fold; no validation, no RocksDB, nothing produced;
4. pipeline, one worker: `streams.worker.Worker` in this process, from its first processed
   record to the last event stored by the journey stage (which also processes merges);
5. replay (`journeys.forensics.source.read_events`) and rebuild (`journeys.forensics.rebuild.rebuild`) of
   the events topic phase 4 wrote; RocksDB bytes of phase 4's worker per million events;
6. pipeline, two workers: two `journeys worker` subprocesses, joined before the load is sent,
   from the first validate commit to the journey stage's last; then one worker split into
   two processes (`--stages validate,ingest`, `--stages journeys`), timed the same way;
7. `journeys worker --processes auto` (a supervisor, a child worker per core) on the load, then
   on the same skewed load with one tenant, timed like phase 6;
8. peers: the load on a topic of its own per peer, keyed by customer, folded per customer with
   the same pydantic model by a faust-streaming agent into a RocksDB table and by a
   quixstreams application into its RocksDB state, each in a subprocess (`journeys.bench.peers`);
9. live: one `journeys worker --api-port` subprocess; events offered at a fixed rate, the
   time from each send to the flag record it caused (the flag topic's record timestamp), then
   `GET /v1/journeys/{customer_id}` latencies for a sample of customers.

Peak RSS comes from the worker subprocesses (`VmHWM`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.console import Console

from journeys.bench.load import BENCH_TENANTS, skewed_load
from journeys.bench.offline import (
    CHECK_EVENTS,
    CRYPTO_EVENTS,
    DECODE_EVENTS,
    HOT_EVENTS,
    SHARED_EVENTS,
    check_rate,
    decode_rates,
    encryption_cost,
    hot_customer_cost_ratio,
    shared_value_check_rate,
)
from journeys.bench.peers import PEERS, fill_peer_topic, installed, peers_summary, run_peer
from journeys.bench.phases import (
    Progress,
    baseline,
    kafka_for,
    live_phase,
    pipeline_auto,
    pipeline_one,
    pipeline_two,
    produce_sdk,
)
from journeys.bench.result import (
    REQUIRED_KEYS,
    BenchResult,
    BenchSizes,
    machine_info,
    percentile,
    render_result,
)
from journeys.bench.sealing_share import SEALED_EVENTS, sealing_share
from journeys.bench.workers import WorkerFailedError
from journeys.cli.errors import EXIT_UNAVAILABLE, print_error
from journeys.clock import wall_clock
from journeys.devbroker import BrokerError, EmbeddedBroker
from journeys.forensics.rebuild import rebuild
from journeys.forensics.source import ReadStats, read_events
from journeys.sdk.producer import Idempotence
from journeys.settings import Settings
from journeys.supervisor import process_count
from schemas.errors import JourneyLedgerError
from streams.topics import create_topics
from streams.worker import loop_factory

__all__ = ["REQUIRED_KEYS", "BenchResult", "BenchSizes", "bench_command", "run_bench"]


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
    one = kafka_for(settings, f"{prefix}.one")
    two = kafka_for(settings, f"{prefix}.two")
    split = kafka_for(settings, f"{prefix}.split")
    live = kafka_for(settings, f"{prefix}.live")
    auto = kafka_for(settings, f"{prefix}.auto")
    tenant = kafka_for(settings, f"{prefix}.tenant")
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
        "processes": process_count("auto"),
    }

    progress(f"generating {sizes.events:,} events of {sizes.customer_count:,} customers")
    load = skewed_load(sizes.events, sizes.customer_count, sizes.seed)
    lines = load.lines
    live_load = skewed_load(sizes.latency_events, max(1, sizes.latency_events // 5), sizes.seed + 1)
    live_ids = [orjson.loads(line)["event_id"] for line in live_load.lines]

    progress("producer SDK: sending through JourneyProducer")
    await create_topics(one)
    seconds, ends = await produce_sdk(one, lines, idempotence)
    result.producer_events_per_s = round(len(lines) / seconds)
    assert sum(ends.values()) >= len(lines)

    progress("raw baseline: aiokafka + orjson + dict fold")
    result.baseline_events_per_s = round(await baseline(one, len(lines)))

    progress("pipeline with one worker (in this process)")
    single = await pipeline_one(one, settings, work / "one", len(lines), profile)
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
        "cpu_us_per_event": single.cpu_us,
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
    rate_two, rss_two = await pipeline_two(settings, two, lines, work)
    result.pipeline_two_workers_events_per_s = round(rate_two)
    result.rss_mb_two_workers = [round(r, 1) for r in rss_two]

    progress("pipeline with one worker split into a process per stage")
    rate_split, rss_split = await pipeline_two(
        settings, split, lines, work, stages=("validate,ingest", "journeys")
    )
    result.pipeline_stage_processes_events_per_s = round(rate_split)
    result.rss_mb_stage_processes = [round(r, 1) for r in rss_split]

    progress("pipeline with --processes auto")
    result.processes_auto_events_per_s = round(
        await pipeline_auto(settings, auto, lines, work, "auto")
    )
    progress("pipeline with --processes auto, the skewed load with one tenant")
    single_tenant = skewed_load(
        sizes.events, sizes.customer_count, sizes.seed, tenants=BENCH_TENANTS[:1]
    ).lines
    rate_tenant = await pipeline_auto(settings, tenant, single_tenant, work, "tenant")
    result.single_tenant_events_per_s = round(rate_tenant)
    del single_tenant

    runs, missing = [], []
    for name in PEERS:
        if not installed(name):
            progress(f"peer: {name} is not installed (uv sync --extra bench): not measured")
            missing.append(name)
            continue
        progress(f"peer: {name}, decode and fold per customer into RocksDB")
        topic = f"{prefix}.peer.{name}"
        await fill_peer_topic(base, topic, lines)
        runs.append(await run_peer(name, base, topic, len(lines), work / "peers"))
    result.peers, result.pipeline_vs_peers = peers_summary(
        result.pipeline_events_per_s, runs, missing
    )

    progress("live worker with the API: flag and query latency")
    measured = await live_phase(
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

    progress(f"journeys check on a generated {CHECK_EVENTS:,}-event file")
    result.check_events_per_s = round(check_rate(CHECK_EVENTS, sizes.seed).events_per_s)
    progress(f"journeys check on {SHARED_EVENTS:,} customers sharing one phone")
    result.shared_value_check_events_per_s = round(shared_value_check_rate(SHARED_EVENTS))
    progress(f"cost per event of a customer holding {HOT_EVENTS:,} events (fold + rules)")
    result.hot_customer_cost_ratio = round(hot_customer_cost_ratio(HOT_EVENTS, seed=sizes.seed), 2)
    progress(f"reading {DECODE_EVENTS:,} of the ledger's own events back: trusted and pydantic")
    decoding = decode_rates(DECODE_EVENTS, seed=sizes.seed)
    result.trusted_decode_events_per_s = round(decoding.trusted_events_per_s)
    result.pydantic_decode_events_per_s = round(decoding.pydantic_events_per_s)
    progress(f"encrypting personal fields of {CRYPTO_EVENTS:,} events, against checking them")
    result.encryption_share_of_event_cpu = round(
        encryption_cost(CRYPTO_EVENTS, sizes.seed).share, 3
    )
    progress(f"the stages chained over RocksDB, sealing {SEALED_EVENTS:,} events: its CPU share")
    result.encryption_share_of_pipeline_cpu = round(
        sealing_share(SEALED_EVENTS, sizes.seed).share, 3
    )
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
            print_error(exc)
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
        print_error(exc)
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
