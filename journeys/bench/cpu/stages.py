"""CPU per event of each live stage, without a broker: `python -m journeys.bench.cpu.stages`.

Drives ingest and the journey stage over real RocksDB files the way a worker does (records
routed by key to 4 partitions, batches of up to `--batch` records per partition, one
`BatchState` and one store write per batch, `RecentEvents` shared as in a one-worker process)
with the worker's garbage collection (`streams.worker.tune_gc`, `streams.collector`) and reports
`time.process_time()` per event of each stage, so that figures from a shared
machine can be compared. `--profile FILE` also writes a cProfile of the whole drain, and
`--top N` prints its top functions by own time. `--lines FILE` reads the load (one JSON
touchpoint a line) instead of generating `skewed_load(events, customers, seed)`; written with
`--save`, the same file can be fed to older code (the harness only imports names that have
kept their meaning, under either layout).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import importlib
import io
import pstats
import sys
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

PARTITIONS = 4
NOW = datetime(2026, 11, 22, tzinfo=UTC)


_NAMES = {
    "InRecord": ("streams.kafka.records", "streams.records"),
    "ingest": ("streams.stages.ingest", "streams.ingest"),
    "JourneyCache": ("streams.stages.journey.stage", "streams.journey_stage"),
    "DeadlineIndex": ("streams.stages.journey.stage", "streams.journey_stage"),
    "process_events": ("streams.stages.journey.stage", "streams.journey_stage"),
    "RecentEvents": ("streams.stages.recent", "streams.recent"),
    "BatchState": ("streams.store.state", "streams.state"),
    "LocalStore": ("streams.store.state", "streams.state"),
}
"""Each name the harness drives: its module now, then in session 3's flat layout."""


def _stage_api() -> dict[str, Any]:
    """The stages' names under the current layout, or under the older flat one."""
    found: dict[str, Any] = {}
    for name, modules in _NAMES.items():
        for module in modules:
            try:
                found[name] = getattr(importlib.import_module(module), name)
                break
            except ImportError:
                continue
    return found


class StageRun:
    """Both stages chained over in-memory topics, timing each stage's CPU."""

    def __init__(self, root: Path, batch: int) -> None:
        from projections.settings import FoldSettings

        self.api = _stage_api()
        self.settings = FoldSettings()
        self.batch = batch
        self.identity = self.api["LocalStore"](root / "identity")
        self.journeys = self.api["LocalStore"](root / "journeys")
        self.cache = self.api["JourneyCache"]()
        self.recent = self.api["RecentEvents"]()
        self.deadlines = self.api["DeadlineIndex"]()  # the worker keeps one, as here
        self.logs: dict[str, dict[int, list[Any]]] = {
            "touchpoints": defaultdict(list),
            "events": defaultdict(list),
        }
        self.read: dict[str, dict[int, int]] = {
            "touchpoints": defaultdict(int),
            "events": defaultdict(int),
        }
        self.cpu = {"touchpoints": 0.0, "events": 0.0}
        self.records = {"touchpoints": 0, "events": 0}
        self.batches = {"touchpoints": 0, "events": 0}
        self.outputs: dict[str, int] = defaultdict(int)

    def append(self, topic: str, key: bytes | None, value: bytes | None, headers: Any = ()) -> None:
        """Add a record to a topic's partition for its key."""
        log = self.logs[topic]
        partition = zlib.crc32(key or b"") % PARTITIONS
        offset = len(log[partition])
        log[partition].append(
            self.api["InRecord"](topic, partition, offset, key, value, 0, headers)
        )

    def step(self) -> bool:
        """One `getmany`: a batch of every partition of ingest, then of the journey stage."""
        moved = False
        for name in ("touchpoints", "events"):
            for partition, records in sorted(self.logs[name].items()):
                start = self.read[name][partition]
                batch = records[start : start + self.batch]
                if not batch:
                    continue
                moved = True
                self.read[name][partition] = start + len(batch)
                store = self.identity if name == "touchpoints" else self.journeys
                began = time.process_time()
                state = self.api["BatchState"](store, partition)
                if name == "touchpoints":
                    outs = self.api["ingest"](state, batch, self.settings, recent=self.recent)
                else:
                    outs = self.api["process_events"](
                        state,
                        self.cache,
                        batch,
                        NOW,
                        self.settings,
                        deadlines=self.deadlines,
                        recent=self.recent,
                    )
                if hasattr(state, "drop_unchanged"):  # as the runner does (older code: no)
                    state.drop_unchanged()
                store.write(partition, state.changes)
                self.cpu[name] += time.process_time() - began
                self.records[name] += len(batch)
                self.batches[name] += 1
                for out in outs:
                    self.outputs[out.destination] += 1
                    if out.destination in ("touchpoints", "events"):
                        self.append(out.destination, out.key, out.value, out.headers)
        return moved

    def drain(self, between: Callable[[], object] = lambda: None) -> None:
        """Run until both topics are read to their ends, calling `between` after each step."""
        while self.step():
            between()


def load_lines(args: argparse.Namespace) -> list[bytes]:
    """The touchpoints to feed: from `--lines`, or generated."""
    if args.lines:
        return [line for line in Path(args.lines).read_bytes().splitlines() if line.strip()]
    from journeys.bench.load import skewed_load

    return skewed_load(args.events, args.customers, args.seed).lines


class Sampler:
    """A statistical profile of the main thread: its stack every millisecond or so, counted
    per function (each function once a sample, whatever its depth), which unlike cProfile does
    not slow down code that makes many small calls more than code that makes few."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.samples = 0
        self.counts: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._main = threading.get_ident()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(self.interval_s)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._switch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            frame = sys._current_frames().get(self._main)
            seen: set[str] = set()
            while frame is not None:
                code = frame.f_code
                seen.add(f"{Path(code.co_filename).name}:{code.co_firstlineno}({code.co_name})")
                frame = frame.f_back
            self.samples += 1
            for name in seen:
                self.counts[name] += 1

    def report(self, top: int) -> str:
        """The `top` functions by share of samples (inclusive)."""
        ranked = sorted(self.counts.items(), key=lambda item: -item[1])[:top]
        total = max(1, self.samples)
        return "\n".join(f"{100 * n / total:5.1f}%  {name}" for name, n in ranked)


def _one_run(
    lines: list[bytes],
    batch: int,
    profiler: cProfile.Profile | None,
    sampler: Sampler | None = None,
) -> StageRun:
    """Both stages over `lines` on fresh stores; profiled when a profiler is given.

    Every `lru_cache` is emptied first, so that a run does not profit from the one before.
    """
    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper):
            obj.cache_clear()
    with tempfile.TemporaryDirectory(prefix="profile-stages-") as root:
        run = StageRun(Path(root), batch)
        for line in lines:
            tenant = orjson.loads(line).get("tenant", "")
            run.append("touchpoints", str(tenant).encode(), line)
        gc.collect()
        gc.freeze()  # as `streams.worker.tune_gc` does in a worker
        gc.set_threshold(50_000, 20, 100)
        between = _worker_collector()
        if profiler is not None:
            profiler.enable()
        try:
            if sampler is not None:
                with sampler:
                    run.drain(between)
            else:
                run.drain(between)
        finally:
            gc.enable()
        if profiler is not None:
            profiler.disable()
    return run


def _worker_collector() -> Callable[[], object]:
    """What a worker does about garbage between batches: `streams.collector.Collector`, its
    automatic collector off (older code: the thresholds above, nothing between batches)."""
    try:
        from streams.collector import Collector
    except ImportError:
        return lambda: None
    gc.disable()
    return Collector().tick


def main(argv: list[str] | None = None) -> None:
    """Run the harness and print CPU per event per stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=500, help="records per partition batch")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the best CPU is shown")
    parser.add_argument("--lines", help="read the load from this file (JSON lines)")
    parser.add_argument("--save", help="write the load to this file and stop")
    parser.add_argument("--profile", help="write a cProfile of the drain to this file")
    parser.add_argument("--sample", type=int, default=0, help="sample; print the top N")
    parser.add_argument("--top", type=int, default=0, help="print the top N functions (own time)")
    args = parser.parse_args(argv)
    lines = load_lines(args)
    if args.save:
        Path(args.save).write_bytes(b"\n".join(lines) + b"\n")
        return
    profiler = cProfile.Profile() if (args.profile or args.top) else None
    sampler = Sampler() if args.sample else None
    runs = [
        _one_run(lines, args.batch, profiler if i == 0 else None, sampler if i == 0 else None)
        for i in range(args.repeat)
    ]
    events = len(lines)
    run = runs[0]
    print(f"touchpoints {events}, outputs {dict(run.outputs)}; best of {len(runs)} runs")
    for name, label in (("touchpoints", "ingest"), ("events", "journey stage")):
        best = min(r.cpu[name] for r in runs)
        print(
            f"{label:14s} {best:7.2f} s CPU  {best / max(1, events) * 1e6:7.1f} us per touchpoint"
            f"  ({run.records[name]} records, {run.batches[name]} batches)"
        )
    total = min(r.cpu["touchpoints"] + r.cpu["events"] for r in runs)
    print(f"{'both':14s} {total:7.2f} s CPU  {total / max(1, events) * 1e6:7.1f} us per touchpoint")
    if sampler is not None:
        print(f"{sampler.samples} samples, share of the drain (inclusive):")
        print(sampler.report(args.sample))
    if profiler is not None:
        if args.profile:
            profiler.dump_stats(args.profile)
        if args.top:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())


if __name__ == "__main__":
    main()
