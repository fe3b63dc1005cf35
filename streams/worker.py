"""A worker: the three stages in one process, sharing a producer; several workers share partitions."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from projections.rules import Detector
from projections.settings import FoldSettings
from streams.collector import Collector
from streams.config import KafkaSettings
from streams.crypto.sealing import Sealer
from streams.crypto.suppression import Suppression
from streams.graph_health import GraphHealthCache
from streams.kafka.records import InRecord, OutRecord
from streams.stages.identity.dead_letters import count_erased
from streams.stages.identity.retention import RETENTION_MAX_LAG, RETENTION_PASS_S, expire
from streams.stages.ingest import ingest
from streams.stages.journey.stage import (
    RECORD_FRAMING_BYTES,
    DeadlineIndex,
    JourneyCache,
    process_events,
    reevaluate,
)
from streams.stages.recent import RecentEvents
from streams.stages.runner import Stage, StageRunner
from streams.stages.stateless import StatelessRunner, StatelessStage
from streams.stages.validate import validate_poll
from streams.store import keys
from streams.store.state import BatchState, LocalStore

Clock = Callable[[], datetime]
"""The wall clock, given by the entry point (the pure code never reads it)."""


@dataclass
class Worker:
    """The validate, ingest and journey stages, with their stores under one data directory."""

    kafka: KafkaSettings
    fold: FoldSettings
    data_dir: Path
    clock: Clock
    stages: tuple[str, ...] = ("validate", "ingest", "journeys")
    extra_rules: Mapping[str, Detector] | None = None
    """Rules beyond the built-in ones (a rebuild trying a new rule)."""
    sealer: Sealer | None = None
    """Encrypts events' personal fields at ingest (None: no master key, stored in clear)."""
    retention_days: Mapping[str, int] = field(default_factory=dict)
    """Tenant -> days after its last event a customer is forgotten (tenants with a retention)."""
    suppression: Suppression | None = None
    """The tenants whose erased customers' identifiers ingest suppresses."""

    def __post_init__(self) -> None:
        names = self.kafka.names()
        self.cache = JourneyCache()
        self.recent = RecentEvents()
        self.validated = RecentEvents()
        """Events the validate stage decoded, for ingest in this process to take (not decode)."""
        self.refused_links: dict[str, int] = {"junk": 0, "blocked": 0, "limit": 0}
        """Identifiers ingest refused for linking since this process started, by reason."""
        self.retention_erased: dict[str, int] = {}
        """Customers the retention timer erased since this process started, by tenant."""
        self.suppressed: dict[tuple[str, str], int] = {}
        """Events dropped for an erased customer's identifier, by tenant and field."""
        self.dead_letters_erased: dict[str, int] = {}
        """Dead letters erasure superseded with a tombstone since this process started, by
        tenant (`-` for a dead letter that named none)."""
        self.deadlines = DeadlineIndex()
        self.runners: dict[str, StageRunner | StatelessRunner] = {}
        self.identity_store = LocalStore(self.data_dir / "identity")
        self.graph_health = GraphHealthCache(self.identity_store, lambda: self.owned("ingest"))
        """The identity graph's health figures, read from the state when a scrape asks."""
        # A generation's store follows its own changelog: positions never mix across them.
        generation = self.kafka.journey_generation
        journeys_dir = "journeys" if generation == 0 else f"journeys.g{generation}"
        self.journey_store = LocalStore(self.data_dir / journeys_dir)
        self.validate = StatelessStage(
            "validate", names.touchpoints, partial(validate_poll, recent=self.validated)
        )
        self.ingest = Stage(
            "ingest",
            names.validated,
            names.identity_changelog,
            self.identity_store,
            partial(
                _ingest,
                settings=self.fold,
                recent=self.recent,
                refused=self.refused_links,
                sealer=self.sealer,
                validated=self.validated,
                suppression=self.suppression,
                suppressed=self.suppressed,
                dead_letters_erased=self.dead_letters_erased,
            ),
            tick=self._expire if self.retention_days else None,
            tick_interval_s=RETENTION_PASS_S,
            tick_max_lag=RETENTION_MAX_LAG,  # never forget a customer whose events wait unread
            durable_first=keys.is_ring_key,  # a ring reaches the changelog before its events
        )
        self.journeys = Stage(
            "journeys",
            names.events,
            names.journey_changelog,
            self.journey_store,
            self._process_events,
            tick=self._tick,
            on_revoke=self._forget,
            on_assign=self._load_deadlines,
            same_cut=True,
            group=names.journey_group,
        )

    def _process_events(self, state: BatchState, records: list[InRecord]) -> list[OutRecord]:
        return process_events(
            state,
            self.cache,
            records,
            self.clock(),
            self.fold,
            self.deadlines,
            self.extra_rules,
            self.recent,
            self.kafka.max_record_bytes,
            None if self.sealer is None else self.sealer.peer_rings.drop,
        )

    def _tick(self, state: BatchState) -> list[OutRecord]:
        now = self.clock()
        due = self.deadlines.due(state.partition, now)
        if not due:
            return []
        return reevaluate(state, self.cache, due, now, self.fold, self.deadlines, self.extra_rules)

    def _expire(self, state: BatchState) -> list[OutRecord]:
        outs = expire(state, self.retention_days, self.clock(), self.sealer, self.retention_erased)
        count_erased(outs, self.dead_letters_erased)
        return outs

    def owned(self, stage: str) -> frozenset[int]:
        """The partitions of a stage ("validate", "ingest", "journeys") this worker processes now."""
        runner = self.runners.get(stage)
        return frozenset(runner.owned) if runner is not None else frozenset()

    def tenants(self) -> frozenset[str]:
        """The tenants whose touchpoints this worker's ingest partitions hold."""
        found: set[str] = set()
        for partition in self.owned("ingest"):
            for key, _ in self.identity_store.items(partition, keys.Prefix.TENANT.value):
                found.add(keys.tenant_of(key))
        return frozenset(found)

    def _forget(self, partition: int) -> None:
        self.cache.forget(partition)
        self.deadlines.forget(partition)

    def _load_deadlines(self, partition: int) -> None:
        self.deadlines.load(
            partition, self.journey_store.items(partition, keys.Prefix.DEADLINE.value)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run the stages until `stop` is set, then close the stores."""
        tune_gc()
        producer = AIOKafkaProducer(
            **self.kafka.client_options(),
            acks="all",
            enable_idempotence=False,
            linger_ms=5,
            max_request_size=max(1_048_576, self.kafka.max_record_bytes + RECORD_FRAMING_BYTES),
        )
        await producer.start()
        try:
            self.runners = {
                s.name: StageRunner(s, self.kafka, producer)
                for s in (self.ingest, self.journeys)
                if s.name in self.stages
            }
            if self.validate.name in self.stages:
                self.runners[self.validate.name] = StatelessRunner(
                    self.validate, self.kafka, producer
                )
            stopped = asyncio.Event()
            collector = asyncio.create_task(Collector().run(stopped))
            try:
                await asyncio.gather(*(runner.run(stop) for runner in self.runners.values()))
            finally:
                stopped.set()  # the automatic collector is back once no worker here runs
                await collector
        finally:
            await producer.stop()
            await self.graph_health.close()  # no read of the state in a thread once it closes
            self.identity_store.close()
            self.journey_store.close()


def tune_gc() -> None:
    """Never walk what exists at start-up again; collect rarely while running.

    The journey cache holds tens of thousands of long-lived objects with no cycles; with the
    default thresholds the collector walks them over and over (measured: +30% throughput).
    While the stages run, `streams.collector.Collector` collects on a budget instead; these
    thresholds are for whatever else the process does.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (measured: +12% events/s), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def use_uvloop() -> None:
    """Make every new event loop of this process a uvloop one (for faust, which makes its own)."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _ingest(
    state: BatchState,
    records: list[InRecord],
    settings: FoldSettings,
    recent: RecentEvents,
    refused: dict[str, int],
    sealer: Sealer | None,
    validated: RecentEvents,
    suppression: Suppression | None,
    suppressed: dict[tuple[str, str], int],
    dead_letters_erased: dict[str, int],
) -> list[OutRecord]:
    outs = ingest(
        state,
        records,
        settings,
        recent=recent,
        refused=refused,
        sealer=sealer,
        validated=validated,
        suppression=suppression,
        suppressed=suppressed,
    )
    count_erased(outs, dead_letters_erased)
    return outs
