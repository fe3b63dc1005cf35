"""The benchmark's sizes, its pure parts (percentiles, the baseline fold, flag latencies) and its result."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from schemas.outputs import FlagChange, FlagSnapshot

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
"""The peers' figures from issue 6, printed when a run measured none."""


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
    check_events_per_s: float = 0.0
    """`journeys check` on a generated 50,000-event file (decode, fold, rules, views)."""
    hot_customer_cost_ratio: float = 0.0
    """CPU per event (fold + rules) of a customer holding 10,000 events ÷ fresh customers'."""
    shared_value_check_events_per_s: float = 0.0
    """`journeys check` per CPU second, 2,000 customers sharing one phone (one component)."""
    encryption_share_of_event_cpu: float = 0.0
    """Encrypt + decrypt of personal fields ÷ (that + `journeys check`'s work), same events."""
    encryption_share_of_pipeline_cpu: float = 0.0
    """CPU inside sealing ÷ the stages chained with sealing on (`bench.sealing_share`)."""
    processes_auto_events_per_s: float = 0.0
    """The load through `journeys worker --processes auto` (a child worker per core)."""
    single_tenant_events_per_s: float = 0.0
    """The skewed load with one tenant through `journeys worker --processes auto`."""
    peers: dict[str, Any] = field(default_factory=dict)
    """Per peer (faust, quixstreams): events/s, records, seconds and the store it wrote to."""
    pipeline_vs_peers: float = 0.0
    """The one-worker pipeline's events/s ÷ the best peer's, measured in the same run."""
    trusted_decode_events_per_s: float = 0.0
    """The ledger's own events read back by the trusted reader (CPU, 20,000 events)."""
    pydantic_decode_events_per_s: float = 0.0
    """The same events read back by pydantic validation, as before the trusted reader."""
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
    table.add_row(
        "pipeline, 1 worker",
        rate(r.pipeline_events_per_s),
        "raw topic to journeys; target >= 10,000",
    )
    table.add_row("  ratio to baseline", f"{r.ratio:.3f}", "target >= 0.25")
    table.add_row("pipeline, 2 workers", rate(r.pipeline_two_workers_events_per_s), "processes")
    table.add_row(
        "pipeline, 1 worker split",
        rate(r.pipeline_stage_processes_events_per_s),
        "a process per stage (--stages)",
    )
    table.add_row(
        "pipeline, --processes auto",
        rate(r.processes_auto_events_per_s),
        f"{r.sizes.get('processes', '?')} processes; target >= 15,000",
    )
    table.add_row(
        "  one tenant",
        rate(r.single_tenant_events_per_s),
        "the skewed load with one tenant; target >= 1.6 x 1 worker",
    )
    for name, peer in sorted(r.peers.items()):
        note = peer.get("missing") or f"decode + fold per customer, {peer.get('store')}"
        table.add_row(f"peer: {name}", rate(peer.get("events_per_s", 0)), note)
    if r.peers:
        table.add_row("  pipeline / best peer", f"{r.pipeline_vs_peers:.2f}", "target >= 1.0")
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
    table.add_row("journeys check", rate(r.check_events_per_s), "generated 50,000-event file")
    table.add_row(
        "check, one shared phone",
        rate(r.shared_value_check_events_per_s),
        "2,000 customers on one switchboard number (CPU)",
    )
    table.add_row(
        "hot customer cost ratio",
        f"{r.hot_customer_cost_ratio:,.1f}",
        "fold + rules per event at 10,000 events ÷ fresh; target <= 1.5",
    )
    table.add_row(
        "trusted decode",
        rate(r.trusted_decode_events_per_s),
        f"own events read back (CPU); pydantic {rate(r.pydantic_decode_events_per_s)}",
    )
    table.add_row(
        "encryption share of event CPU",
        f"{r.encryption_share_of_event_cpu:.1%}",
        "personal fields, AES-GCM alone ÷ (that + check)",
    )
    table.add_row(
        "encryption share of pipeline CPU",
        f"{r.encryption_share_of_pipeline_cpu:.1%}",
        "sealing inside the stages chained over RocksDB; target < 15%",
    )
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
    if not r.peers:
        console.print(f"peers (issue 6, not measured in this run): {PEERS}", highlight=False)
