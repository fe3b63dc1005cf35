"""`journeys rebuild`: the journey projection built again, as a new generation beside the live one.

For a new or changed rule, or after a bug fix. The rebuild runs the journey stage itself (the
same code the workers run) in a consumer group, changelog topic and flag topic of its own,
`<prefix>.journeys.g<N>`, `<prefix>.journey-state.v1.g<N>` and `<prefix>.flags.v1.g<N>`,
reading the events topic from the start into a new local store, until it has caught up. The
live generation keeps serving, untouched. It then compares the flags the new generation leaves
standing with the live ones.

Switching over is a rolling restart with `[worker] journey_generation = N`: each worker joins
the new generation's group and restores its partitions from the new changelog (no re-fold),
and the API serves the new generation's flag topic. Flag consumers switch to that topic too;
an unchanged flag carries the same change ids in both generations, so they drop what they
have seen and get only what the new rules changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from journeys.forensics.source import Progress, read_batches
from projections.rules import Detector
from projections.settings import FoldSettings
from schemas import outputs
from schemas.errors import JourneyLedgerError
from streams.config import KafkaSettings
from streams.flag_index import FlagIndex
from streams.topics import create_topics
from streams.worker import Worker

FlagKey = tuple[str, str]
"""(customer id, flag id), as the flag topic identifies a flag."""


class RebuildTargetError(JourneyLedgerError):
    """The rebuild's output directory is unsafe to write (not empty, or the live state)."""

    hint = "give --output a new directory, away from the workers' [worker] data_dir"


@dataclass(frozen=True, slots=True)
class StandingFlag:
    """A flag as one side leaves it: tenant, rule, status and message."""

    tenant: str
    rule: str
    status: str
    message: str


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One difference between the rebuilt flags and the live flag topic."""

    customer_id: str
    flag_id: str
    rebuilt: StandingFlag | None
    live: StandingFlag | None

    @property
    def kind(self) -> str:
        """missed (the live projections never raised it), gone, or status."""
        if self.live is None:
            return "missed"
        if self.rebuilt is None:
            return "gone"
        return "status"


@dataclass(slots=True)
class RebuildResult:
    """What a rebuild read, wrote and found."""

    output: Path
    generation: int
    records: int = 0
    """Event and merge records the new generation processed."""
    seconds: float = 0.0
    journeys: int = 0
    """Customers with at least one flag in the new generation."""
    flags: dict[FlagKey, StandingFlag] = field(default_factory=dict)
    live: dict[FlagKey, StandingFlag] = field(default_factory=dict)
    changes: list[FlagChange] = field(default_factory=list)

    @property
    def open_flags(self) -> int:
        """How many rebuilt flags are open."""
        return sum(1 for f in self.flags.values() if f.status == "open")

    def of_kind(self, kind: str) -> list[FlagChange]:
        """The changes of one kind: missed, gone or status."""
        return [c for c in self.changes if c.kind == kind]


def check_target(output: Path, live_data_dir: Path | None = None) -> Path:
    """The output directory, refused when not empty or when it is (in) the live state."""
    target = output.resolve()
    if live_data_dir is not None:
        live = live_data_dir.resolve()
        if target == live or target.is_relative_to(live) or live.is_relative_to(target):
            raise RebuildTargetError(
                f"{output} is the live worker's data directory {live_data_dir} or overlaps it"
            )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RebuildTargetError(f"{output} exists and is not an empty directory")
    return target


def standing_flags(changes: Iterable[outputs.FlagChange]) -> dict[FlagKey, StandingFlag]:
    """Each customer's flags as a sequence of flag-topic changes leaves them (as the API does)."""
    index = FlagIndex()
    for change in changes:
        index.apply(change)
    return {
        (customer_id, flag_id): StandingFlag(tenant, flag.rule, flag.status, flag.message)
        for (tenant, customer_id, flag_id), flag in index.standing()
    }


def compare_flags(
    rebuilt: dict[FlagKey, StandingFlag], live: dict[FlagKey, StandingFlag]
) -> list[FlagChange]:
    """Flags only one side holds, and flags whose status differs, in a stable order."""
    changes = []
    for key in sorted(rebuilt.keys() | live.keys()):
        mine, theirs = rebuilt.get(key), live.get(key)
        if mine is None or theirs is None or mine.status != theirs.status:
            changes.append(FlagChange(key[0], key[1], mine, theirs))
    return changes


def _live_generation_error(generation: int) -> RebuildTargetError:
    return RebuildTargetError(
        f"generation {generation} is the one the workers serve",
        hint="rebuild into a new generation: --generation N with N above [worker] "
        "journey_generation",
    )


async def _caught_up(worker: Worker, partitions: int, quiet_s: float = 1.0) -> bool:
    runner = worker.runners.get("journeys")
    if runner is None or len(runner.owned) < partitions:
        return False
    lags = runner.lag()
    if len(lags) < partitions or any(lags.values()):
        return False
    before = worker.journeys.stats.records
    await asyncio.sleep(quiet_s)
    return worker.journeys.stats.records == before and not any(runner.lag().values())


async def _events_in_log(kafka: KafkaSettings) -> int:
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        topic = kafka.names().events
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return int(sum((await consumer.end_offsets(tps)).values()))
    finally:
        await consumer.stop()


async def _standing(kafka: KafkaSettings, topic: str) -> dict[FlagKey, StandingFlag]:
    changes: list[outputs.FlagChange] = []
    async for _partition, records in read_batches(kafka, topic):
        changes.extend(outputs.FlagChange.from_bytes(r.value) for r in records if r.value)
    return standing_flags(changes)


async def rebuild(
    kafka: KafkaSettings,
    settings: FoldSettings,
    output: Path,
    clock: Callable[[], datetime],
    *,
    generation: int,
    extra_rules: dict[str, Detector] | None = None,
    progress: Progress | None = None,
    timeout_s: float = 3_600.0,
) -> RebuildResult:
    """Build journey generation `generation` in `output` until caught up; compare the flags.

    `output` must not exist or be empty (see `check_target`); `generation` must not be the
    live one. Raises `RebuildTargetError`, or `TimeoutError` after `timeout_s`.
    """
    target = check_target(output)
    if generation == kafka.journey_generation:
        raise _live_generation_error(generation)
    new = replace(kafka, journey_generation=generation)
    await create_topics(new)
    total = await _events_in_log(kafka)
    worker = Worker(new, settings, target, clock, stages=("journeys",), extra_rules=extra_rules)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout_s):
            while not await _caught_up(worker, kafka.partitions):
                if task.done():
                    await task  # a failed stage: raise its error
                if progress is not None:
                    progress(min(worker.journeys.stats.records, total), total)
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task
    if progress is not None:
        progress(total, total)
    result = RebuildResult(output=target, generation=generation)
    result.records = worker.journeys.stats.records
    result.seconds = time.perf_counter() - started
    result.flags = await _standing(new, new.names().flags)
    result.live = await _standing(kafka, kafka.names().flags)
    result.journeys = len({(f.tenant, k[0]) for k, f in result.flags.items()})
    result.changes = compare_flags(result.flags, result.live)
    return result


def describe_rebuild(result: RebuildResult) -> list[str]:
    """What the rebuild found, for people: totals, then each difference with the live flags."""
    rate = result.records / result.seconds if result.seconds else 0.0
    lines = [
        f"generation {result.generation}: {result.records} record(s) folded in "
        f"{result.seconds:.1f}s ({rate:,.0f}/s); {len(result.flags)} flag(s) "
        f"({result.open_flags} open) standing; local store in {result.output}",
    ]
    missed, gone, status = (result.of_kind(k) for k in ("missed", "gone", "status"))
    switch = (
        f"to switch: set [worker] journey_generation = {result.generation} and restart the "
        "workers one by one; flag consumers move to the new generation's flag topic"
    )
    if not result.changes:
        lines.append(f"no differences with the live flag topic ({len(result.live)} flag(s))")
        lines.append(switch)
        return lines
    lines.append(
        f"versus the live flag topic: {len(missed)} flag(s) the live projections missed, "
        f"{len(gone)} no longer raised, {len(status)} with another status"
    )
    for change in result.changes:
        flag = change.rebuilt or change.live
        assert flag is not None
        if change.kind == "missed":
            what = f"missed  {flag.status}"
        elif change.kind == "gone":
            what = f"gone    live {flag.status}"
        else:
            assert change.live is not None
            assert change.rebuilt is not None
            what = f"status  live {change.live.status}, rebuilt {change.rebuilt.status}"
        lines.append(
            f"  {what}  {flag.rule}  {flag.tenant}/{change.customer_id}  {change.flag_id}"
            + (f": {flag.message}" if flag.message else "")
        )
    lines.append(switch)
    return lines
