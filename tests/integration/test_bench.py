"""`journeys bench --format json`, small, against the session's broker: every figure is there.

No timed assertions: this machine's speed is the benchmark's output, not a test condition.
"""

from __future__ import annotations

import orjson
import pytest

from journeys.bench.peers import PEERS
from journeys.bench.run import REQUIRED_KEYS, BenchSizes, bench_command
from journeys.settings import Settings

POSITIVE = (
    *REQUIRED_KEYS,
    "producer_events_per_s",
    "pipeline_two_workers_events_per_s",
    "pipeline_stage_processes_events_per_s",
    "rebuild_events_per_s",
    "rocksdb_mb_per_million_events",
    "flags_measured",
    "offered_events_per_s",
    "queries",
    "rss_mb_api_worker",
    "processes_auto_events_per_s",
    "single_tenant_events_per_s",
    "pipeline_vs_peers",
    "encryption_share_of_pipeline_cpu",
)


def test_bench_reports_every_figure_as_json(
    bootstrap_servers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings().with_bootstrap_servers(bootstrap_servers)
    sizes = BenchSizes(events=3_000, rate=300, latency_seconds=3.0, queries=30)

    assert bench_command(settings, sizes, as_json=True) == 0

    result = orjson.loads(capsys.readouterr().out)
    for key in POSITIVE:
        assert isinstance(result[key], int | float), key
        assert result[key] > 0, key
    assert result["query_errors"] == 0
    assert set(result["peers"]) == set(PEERS)
    for name, peer in result["peers"].items():
        assert peer["events_per_s"] > 0, name
        assert peer["records"] == 3_000, name
        assert peer["store"].startswith("rocksdb"), name
    assert result["sizes"]["processes"] >= 1
    assert result["pipeline"]["ingest_records"] == 3_000
    cpu = result["pipeline"]["cpu_us_per_event"]
    assert set(cpu) == {"validate", "ingest", "journeys", "all"}
    assert all(cpu[stage] > 0 for stage in ("validate", "ingest", "journeys"))
    assert cpu["all"] >= cpu["validate"] + cpu["ingest"] + cpu["journeys"]  # the parts of it
    assert len(result["rss_mb_two_workers"]) == 2
    assert all(rss > 0 for rss in result["rss_mb_two_workers"])
    assert len(result["rss_mb_stage_processes"]) == 2
    assert all(rss > 0 for rss in result["rss_mb_stage_processes"])
    assert result["sizes"]["events"] == 3_000
    assert result["sizes"]["customers"] == 600
    assert result["machine"]["cores"] >= 1
    assert result["machine"]["broker"].startswith("configured")
    assert result["topic_prefix"].startswith("bench-")
