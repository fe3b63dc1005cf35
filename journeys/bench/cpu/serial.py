"""How small one tenant's serial section is: CPU per event of each stage, without a broker.

`python -m journeys.bench.cpu.serial [events]` runs the three stages' batch functions over the
benchmark's skewed load with all its customers in one tenant, in batches as the worker takes
them, on real RocksDB files in a temporary directory, and prints CPU microseconds per event of
each (`time.process_time`): the validate stage (any number of workers share it), ingest (one
writer per tenant: the serial section), ingest taking the events a validate stage in its
process kept, and the journey stage (keyed by customer, spread over partitions). Kafka's own
costs (fetching, producing, the changelog) are not in these figures.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from journeys.bench.load import BENCH_TENANTS, skewed_load
from projections.settings import FoldSettings
from streams.kafka.records import InRecord, OutRecord
from streams.stages.ingest import ingest
from streams.stages.journey.stage import JourneyCache, process_events
from streams.stages.recent import RecentEvents
from streams.stages.validate import validate
from streams.store.state import BatchState, LocalStore
from streams.worker import tune_gc

BATCH = 500
"""Records per batch: about what one partition's share of a `getmany` holds under load."""

NOW = datetime(2026, 12, 2, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SerialCost:
    """CPU microseconds per event of each stage over the same load."""

    events: int
    validate_us: float
    ingest_us: float
    ingest_kept_us: float
    """Ingest taking the events the validate stage kept (both stages in one process)."""
    journeys_us: float

    @property
    def serial_share(self) -> float:
        """Ingest's share of the validate + ingest CPU: what stays behind one writer per tenant."""
        return self.ingest_us / max(self.validate_us + self.ingest_us, 1e-12)


def _batches(records: Sequence[InRecord]) -> list[list[InRecord]]:
    return [list(records[i : i + BATCH]) for i in range(0, len(records), BATCH)]


def _as_input(outs: Sequence[OutRecord], topic: str, destination: str) -> list[InRecord]:
    wanted = [o for o in outs if o.destination == destination]
    return [
        InRecord(topic, 0, offset, o.key, o.value, 0, o.headers) for offset, o in enumerate(wanted)
    ]


def _timed(run: Callable[[], list[OutRecord]]) -> tuple[float, list[OutRecord]]:
    started = time.process_time()
    outs = run()
    return time.process_time() - started, outs


def _validate_all(records: Sequence[InRecord]) -> list[OutRecord]:
    return [out for batch in _batches(records) for out in validate(batch)]


def _ingest_all(
    store: LocalStore, records: Sequence[InRecord], kept: RecentEvents | None
) -> list[OutRecord]:
    settings = FoldSettings()
    outs: list[OutRecord] = []
    for batch in _batches(records):
        state = BatchState(store, 0)
        outs.extend(ingest(state, batch, settings, recent=RecentEvents(), validated=kept))
        store.write(0, state.changes)
    return outs


def _journeys_all(store: LocalStore, records: Sequence[InRecord]) -> list[OutRecord]:
    settings, cache = FoldSettings(), JourneyCache()
    outs: list[OutRecord] = []
    for batch in _batches(records):
        state = BatchState(store, 0)
        outs.extend(process_events(state, cache, batch, NOW, settings))
        store.write(0, state.changes)
    return outs


def serial_cost(events: int = 20_000, seed: int = 1, repeat: int = 3) -> SerialCost:
    """Run the three stages over `events` of one tenant's skewed load; CPU per event of each.

    Each stage runs `repeat` times on fresh stores, taking turns, and keeps its best run: on a
    shared machine the least disturbed run is the closest to its cost, and the first round
    also fills the caches (identifier normalisation) that a live worker has warm. The garbage
    collector is tuned as the worker tunes it (`streams.worker.tune_gc`), then set back.
    """
    lines = skewed_load(events, max(1, events // 5), seed, tenants=BENCH_TENANTS[:1]).lines
    raw = [InRecord("touchpoints", 0, n, None, line) for n, line in enumerate(lines)]
    thresholds = gc.get_threshold()
    tune_gc()  # the collector as a worker sets it: the load itself is frozen, not walked
    try:
        best = dict.fromkeys(("validate", "ingest", "kept", "journeys"), float("inf"))
        with tempfile.TemporaryDirectory() as work:
            for round_ in range(repeat):
                kept = RecentEvents(capacity=len(raw) + 1)
                seconds, door = _timed(partial(_validate_all, raw))
                best["validate"] = min(best["validate"], seconds)
                validate(raw, recent=kept)  # untimed: the events ingest may take
                validated = _as_input(door, "validated", "validated")
                stores = {name: LocalStore(Path(work) / f"{name}-{round_}") for name in best}
                try:
                    seconds, emitted = _timed(
                        partial(_ingest_all, stores["ingest"], validated, None)
                    )
                    best["ingest"] = min(best["ingest"], seconds)
                    seconds, _ = _timed(partial(_ingest_all, stores["kept"], validated, kept))
                    best["kept"] = min(best["kept"], seconds)
                    stream = _as_input(emitted, "events", "events")
                    seconds, _ = _timed(partial(_journeys_all, stores["journeys"], stream))
                    best["journeys"] = min(best["journeys"], seconds)
                finally:
                    for store in stores.values():
                        store.close()
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    per_event = {name: seconds / max(len(raw), 1) * 1e6 for name, seconds in best.items()}
    return SerialCost(
        events=len(raw),
        validate_us=per_event["validate"],
        ingest_us=per_event["ingest"],
        ingest_kept_us=per_event["kept"],
        journeys_us=per_event["journeys"],
    )


def main(argv: Sequence[str]) -> None:
    """Print the figures of one run."""
    cost = serial_cost(int(argv[0]) if argv else 20_000)
    print(
        f"{cost.events:,} events, one tenant, CPU per event: validate {cost.validate_us:.1f} µs, "
        f"ingest {cost.ingest_us:.1f} µs (taking kept events {cost.ingest_kept_us:.1f} µs), "
        f"journeys {cost.journeys_us:.1f} µs; ingest's share of validate + ingest "
        f"{cost.serial_share:.0%}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
