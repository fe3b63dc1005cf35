"""Peers measured in the same run: faust-streaming and quixstreams folding the load per customer.

Each peer gets a topic of its own, pre-filled with the run's lines keyed by customer (tenant and
first identifier: peers do not stitch), and runs in a subprocess of its own (`peer_apps`), so
it has a core and a GIL to itself and cannot slow the benchmark's process. The subprocess
decodes every record with the ledger's pydantic model (`schemas.codec.decode_event`), folds it
into the customer's state in RocksDB (`fold_customer`), and times itself from its first record
to its last, the final commit and flush included; it writes what it measured to a JSON file.

Peers do less per event than the ledger's pipeline: no stitching, no rules, no canonical
event produced, no journey view; the comparison flatters them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from journeys.bench.workers import WorkerFailedError, send_raw
from schemas.events import Event
from streams.admin import ensure_topics
from streams.config import KafkaSettings
from streams.kafka.sender import Outgoing

PEERS: tuple[str, ...] = ("faust", "quixstreams")
"""The peers a run measures, in the order they run."""

MODULES: dict[str, str] = {"faust": "faust", "quixstreams": "quixstreams"}
"""The module each peer needs (quixstreams comes with the `bench` extra)."""

MISSING = "not installed: uv sync --extra bench"
"""What the output says of a peer whose module is missing."""

SESSION_TIMEOUT_MS = 6_000
"""The peers' consumer-group session timeout: Tansu completes a join in about half of it."""


def peer_key(line: bytes) -> bytes:
    """The record key of a line on a peer's topic: its tenant and its first customer identifier."""
    document = orjson.loads(line)
    customer = document.get("customer") or {}
    kind, value = next(iter(customer.items()), ("", ""))
    return f"{document.get('tenant', '')}/{kind}:{value}".encode()


def fold_customer(state: Mapping[str, Any] | None, event: Event) -> dict[str, Any]:
    """A customer's state after `event`: event ids in arrival order, counts by type, the latest time.

    A new dict every time (peers write it back to their store), JSON-compatible.
    """
    at = event.occurred_at.isoformat()
    if not state:
        return {"events": [event.event_id], "types": {event.type: 1}, "latest": at}
    types = dict(state["types"])
    types[event.type] = types.get(event.type, 0) + 1
    return {
        "events": [*state["events"], event.event_id],
        "types": types,
        "latest": max(str(state["latest"]), at),
    }


@dataclass(frozen=True, slots=True)
class PeerRun:
    """What a peer measured: the records it folded, in how long, and the store it wrote to."""

    name: str
    records: int
    seconds: float
    store: str

    @property
    def events_per_s(self) -> float:
        """Records folded per second, first record to last commit."""
        return self.records / max(self.seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        """The peer's part of the JSON output."""
        return {
            "events_per_s": round(self.events_per_s),
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "store": self.store,
        }


def installed(name: str) -> bool:
    """Whether peer `name` can run here (its module is importable)."""
    module = MODULES[name]
    if module in sys.modules:  # imported already (find_spec refuses some imported modules)
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def peers_summary(
    pipeline_events_per_s: float, runs: Sequence[PeerRun], missing: Sequence[str] = ()
) -> tuple[dict[str, Any], float]:
    """The `peers` object of the output and `pipeline_vs_peers` (our one worker ÷ the best peer).

    A peer in `missing` is named with no figure (a run without the `bench` extra still runs).
    """
    best = max((run.events_per_s for run in runs), default=0.0)
    ratio = round(pipeline_events_per_s / best, 3) if best > 0 else 0.0
    found: dict[str, Any] = {name: {"events_per_s": 0, "missing": MISSING} for name in missing}
    found.update((run.name, run.to_dict()) for run in runs)
    return found, ratio


async def fill_peer_topic(kafka: KafkaSettings, topic: str, lines: Sequence[bytes]) -> None:
    """Create `topic` (the run's partition count) and send every line to it, keyed by customer."""
    await ensure_topics(
        kafka.bootstrap_servers,
        # quixstreams derives its changelog's retention from the input topic's, so say it.
        [(topic, kafka.partitions, {"retention.ms": "-1"})],
        replication_factor=kafka.replication_factor,
        client_options=kafka.client_options(),
    )
    await send_raw(kafka, (Outgoing(topic, peer_key(line), line) for line in lines))


async def run_peer(
    name: str,
    kafka: KafkaSettings,
    topic: str,
    total: int,
    work: Path,
    timeout_s: float = 600.0,
) -> PeerRun:
    """Run peer `name` in a subprocess over `topic` until it folded `total` records."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{name}.json"
    command = [sys.executable, "-m", "journeys.bench.peer_apps", name]
    command += ["--bootstrap-servers", kafka.bootstrap_servers, "--topic", topic]
    command += ["--group", f"{topic}.{name}", "--expect", str(total)]
    command += ["--partitions", str(kafka.partitions), "--data-dir", str(work / name)]
    command += ["--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    log = work / f"{name}.log"
    with log.open("ab") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    if not out.is_file():
        tail = log.read_bytes()[-2_000:].decode("utf-8", "replace")
        raise WorkerFailedError(
            f"the {name} peer measured nothing (exit {proc.returncode}):\n{tail}"
        )
    found = orjson.loads(out.read_bytes())
    return PeerRun(name, int(found["records"]), float(found["seconds"]), str(found["store"]))
