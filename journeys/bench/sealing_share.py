"""Encryption's share of the pipeline's CPU: the stages chained with sealing on, no broker.

The validate, ingest and journey stages' batch functions run one after the other over the
benchmark's skewed load, on real RocksDB files in a temporary directory, with a master key (ingest
seals every event's personal fields and the identity graph holds keyed hashes, as a worker
with `[privacy] master_key` does). The CPU time
(`time.process_time`) spent inside `Sealer.seal` and `Sealer.seal_note` is accumulated and set
against the CPU of the whole chain. Kafka's own costs (fetching, producing, the changelog) are in
neither figure: with them the share would be smaller.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from journeys.bench.load import skewed_lines
from projections.settings import FoldSettings
from streams.crypto.keys import LocalKeyProvider, Random
from streams.crypto.ring import KeyRing
from streams.crypto.sealing import Sealer
from streams.kafka.records import InRecord, OutRecord
from streams.stages.ingest import ingest
from streams.stages.journey.stage import JourneyCache, process_events
from streams.stages.recent import RecentEvents
from streams.stages.validate import validate
from streams.store.state import BatchState, LocalStore
from streams.worker import tune_gc

SEALED_EVENTS = 8_000
"""Events of the skewed load `encryption_share_of_pipeline_cpu` is measured on."""

BATCH = 500
"""Records per batch: about what one partition's share of a `getmany` holds under load."""

NOW = datetime(2026, 12, 2, tzinfo=UTC)

BENCH_MASTER_KEY = bytes(range(32))
"""A fixed master key: the measurement needs sealing on, not a secret."""


class TimedSealer(Sealer):
    """A `Sealer` that adds up the CPU time spent inside `seal` and `seal_note`."""

    def __init__(self, provider: LocalKeyProvider, random: Random = os.urandom) -> None:
        super().__init__(provider, random=random)
        self.seconds = 0.0
        self.calls = 0

    def seal(
        self,
        state: BatchState,
        tenant: str,
        customer_id: str,
        body: bytes,
        absorbed: Iterable[str] = (),
        links: Mapping[str, str] | None = None,
    ) -> bytes:
        """`Sealer.seal`, timed."""
        started = time.process_time()
        try:
            return super().seal(state, tenant, customer_id, body, absorbed, links)
        finally:
            self.seconds += time.process_time() - started
            self.calls += 1

    def seal_note(self, ring: KeyRing, tenant: str, event_id: str, value: str) -> str:
        """`Sealer.seal_note`, timed."""
        started = time.process_time()
        try:
            return super().seal_note(ring, tenant, event_id, value)
        finally:
            self.seconds += time.process_time() - started
            self.calls += 1


@dataclass(frozen=True, slots=True)
class SealingShare:
    """CPU seconds of the chained stages with sealing on, and of the sealing inside them."""

    events: int
    sealed: int
    """Calls to `seal` and `seal_note` (events and merge records' identifiers)."""
    sealing_s: float
    pipeline_s: float

    @property
    def share(self) -> float:
        """Sealing's share of the pipeline's CPU: sealing ÷ the whole chain; target < 0.15."""
        return self.sealing_s / max(self.pipeline_s, 1e-12)


def _as_input(outs: Sequence[OutRecord], destination: str) -> list[InRecord]:
    """What the stage sent to `destination`, read back in order (one partition)."""
    wanted = [o for o in outs if o.destination == destination]
    return [
        InRecord(destination, 0, offset, o.key, o.value, 0, o.headers)
        for offset, o in enumerate(wanted)
    ]


def _batches(records: Sequence[InRecord]) -> list[list[InRecord]]:
    return [list(records[i : i + BATCH]) for i in range(0, len(records), BATCH)]


def _chain(root: Path, lines: Sequence[bytes], sealer: Sealer, settings: FoldSettings) -> None:
    """Validate, ingest (sealing) and the journey stage, batch by batch, as one process runs
    them: ingest takes the events validate kept, the journey stage those ingest built. The
    identity graph's keys are keyed hashes (`settings`), as a worker with a master key keeps
    them."""
    cache = JourneyCache()
    kept, recent = RecentEvents(), RecentEvents()
    identity, journeys = LocalStore(root / "identity"), LocalStore(root / "journeys")
    try:
        raw = [InRecord("touchpoints", 0, n, None, line) for n, line in enumerate(lines)]
        for batch in _batches(raw):
            valid = _as_input(validate(batch, recent=kept), "validated")
            state = BatchState(identity, 0)
            emitted = ingest(state, valid, settings, recent=recent, sealer=sealer, validated=kept)
            identity.write(0, state.changes)
            state = BatchState(journeys, 0)
            process_events(state, cache, _as_input(emitted, "events"), NOW, settings, recent=recent)
            journeys.write(0, state.changes)
    finally:
        identity.close()
        journeys.close()


def sealing_share(events: int = SEALED_EVENTS, seed: int = 1) -> SealingShare:
    """Run the chained stages with sealing on over `events` of the skewed load; CPU inside
    sealing against the chain's. The collector is tuned as the worker tunes it, then set back."""
    lines = skewed_lines(events, max(1, events // 5), seed)
    provider = LocalKeyProvider(BENCH_MASTER_KEY)
    sealer = TimedSealer(provider)
    hashed = FoldSettings(identity_secret=provider.identity_secret)  # as the worker's graph
    thresholds = gc.get_threshold()
    tune_gc()
    try:
        with tempfile.TemporaryDirectory(prefix="journeys-sealing-") as work:
            started = time.process_time()
            _chain(Path(work), lines, sealer, hashed)
            pipeline_s = time.process_time() - started
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return SealingShare(len(lines), sealer.calls, sealer.seconds, pipeline_s)
