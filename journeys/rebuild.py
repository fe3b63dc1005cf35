"""`journeys rebuild`: fold the whole ledger again into a fresh journey store.

For a new or changed rule, or after a bug fix. The events topic is read from the start with no
consumer group (see `journeys.replay_source`), and folded per partition by the journey stage's
own code (`streams.journey_stage.JourneyBatch`) into a NEW RocksDB (`streams.state.LocalStore`)
under `<output>/journeys`, with the worker's key layout: `j/{tenant}/{customer}` (the journey,
`encode_journey`), `fw/…` (merged into), `f/…` (flag id -> status), `d/…` (next deadline), and
each partition's `__offset__` (the next events offset to read). Nothing is produced, no offset
is committed and the live workers' state is not touched.

Differences from the live stage, on purpose:
- Journeys are evaluated once, at the end, as of `now`, instead of after every batch.
- Events a merge forwards to another customer are routed to that customer's partition in
  memory, so the result does not depend on how far the live worker had got; the copies the
  live worker wrote to the log are then no-ops (a journey holds an event id once).

At the end the rebuilt flags are compared with the flags the live flag topic leaves standing
(repeats dropped by change id, withdrawn flags removed).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped]

from journeys.replay_source import Progress, ReadStats, bulk_decoding, read_batches
from projections.detectors import Detector, detect, next_deadline
from projections.flags import Flag
from projections.settings import FoldSettings
from schemas.codec import decode_trusted
from schemas.errors import JourneyLedgerError
from streams.config import KafkaSettings, TopicNames
from streams.ingest import KIND_EVENT, KIND_MERGE
from streams.journey_stage import JourneyBatch, JourneyCache, decode_journey, encode_journey
from streams.records import InRecord, customer_key
from streams.state import OFFSET_KEY, BatchState, LocalStore

_PARTITIONER = DefaultPartitioner()

FlagKey = tuple[str, str]
"""(customer id, flag id), as the flag topic identifies a flag."""

STATUS_OF_CHANGE = {"opened": "open", "reopened": "open", "resolved": "resolved"}


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
    read: ReadStats
    journeys: int = 0
    evaluate_seconds: float = 0.0
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


def standing_flags(changes: Iterable[dict[str, Any]]) -> dict[FlagKey, StandingFlag]:
    """Each customer's flags as a sequence of flag-topic changes leaves them."""
    seen: set[str] = set()
    standing: dict[FlagKey, StandingFlag] = {}
    for change in changes:
        change_id = str(change.get("change_id"))
        if change_id in seen:
            continue
        seen.add(change_id)
        flag = change["flag"]
        key = (change["customer_id"], flag["flag_id"])
        if change["change"] == "withdrawn":
            standing.pop(key, None)
            continue
        status = STATUS_OF_CHANGE.get(change["change"])
        if status is None:
            continue
        standing[key] = StandingFlag(
            change["tenant"], flag.get("rule", "?"), status, flag.get("message", "")
        )
    return standing


class _Folder:
    """Folds records into the new store, one partition batch at a time."""

    def __init__(self, store: LocalStore, partitions: list[int]) -> None:
        self.store = store
        self.partitions = partitions
        self.cache = JourneyCache()

    def fold(self, partition: int, records: list[InRecord], next_offset: int | None) -> None:
        pending: list[tuple[int, list[InRecord]]] = [(partition, records)]
        first = True
        while pending:
            target, batch_records = pending.pop(0)
            routed = self._fold_one(target, batch_records, next_offset if first else None)
            first = False
            pending.extend(sorted(routed.items()))

    def _fold_one(
        self, partition: int, records: list[InRecord], next_offset: int | None
    ) -> dict[int, list[InRecord]]:
        state = BatchState(self.store, partition)
        batch = JourneyBatch(state, self.cache)
        for record in records:
            kind = record.header("kind")
            if kind == KIND_EVENT and record.value is not None:
                customer = record.header("customer_id")
                if customer is None:
                    continue
                event = decode_trusted(record.value)
                batch.on_event((event.tenant, customer.decode()), event)
            elif kind == KIND_MERGE and record.value is not None:
                merge = orjson.loads(record.value)
                tenant = merge["tenant"]
                batch.on_merge((tenant, merge["from"]), (tenant, merge["into"]))
        for ref, journey in batch.dirty.items():
            if journey is None:
                for prefix in (b"j/", b"f/", b"d/"):
                    state.delete(prefix + customer_key(*ref))
                self.cache.forget(partition, ref)
            else:
                state.put(b"j/" + customer_key(*ref), encode_journey(journey))
                self.cache.put(partition, journey)
        if next_offset is not None:
            state.put(OFFSET_KEY, str(next_offset).encode())
        self.store.write(partition, state.changes)
        routed: dict[int, list[InRecord]] = defaultdict(list)
        for out in batch.out:  # events forwarded to the customer they merged into
            target = int(_PARTITIONER(out.key, self.partitions, self.partitions))
            routed[target].append(
                InRecord("routed", target, -1, out.key, out.value, 0, out.headers)
            )
        return routed

    def evaluate(
        self,
        now: datetime,
        settings: FoldSettings,
        extra: dict[str, Detector] | None,
        found: dict[FlagKey, StandingFlag],
    ) -> int:
        """Run the rules on every journey as of `now`; write `f/` and `d/`; count journeys."""
        count = 0
        for partition in self.partitions:
            changes: dict[bytes, bytes | None] = {}
            for key, value in self.store.items(partition, b"j/"):
                tenant, _, customer = key[2:].decode().partition("/")
                ref = (tenant, customer)
                journey = self.cache.get(partition, ref) or decode_journey(ref, value)
                flags: tuple[Flag, ...] = detect(journey.events, now, settings.rules, extra)
                suffix = customer_key(tenant, customer)
                changes[b"f/" + suffix] = orjson.dumps({f.flag_id: f.status for f in flags})
                deadline = next_deadline(journey.events, now, settings.rules)
                changes[b"d/" + suffix] = (
                    None if deadline is None else deadline.isoformat().encode()
                )
                for flag in flags:
                    found[(customer, flag.flag_id)] = StandingFlag(
                        tenant, flag.rule, flag.status, flag.message
                    )
                count += 1
            self.store.write(partition, changes)
        return count


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


async def _fold_log(
    kafka: KafkaSettings, store: LocalStore, read: ReadStats, progress: Progress | None
) -> None:
    folder: _Folder | None = None
    async for partition, records in read_batches(kafka, stats=read, progress=progress):
        if folder is None:
            folder = _Folder(store, list(range(read.partitions)))
        read.events += sum(1 for r in records if r.header("kind") == KIND_EVENT)
        read.merges += sum(1 for r in records if r.header("kind") == KIND_MERGE)
        folder.fold(partition, records, records[-1].offset + 1)


async def rebuild(
    kafka: KafkaSettings,
    settings: FoldSettings,
    output: Path,
    now: datetime,
    *,
    extra_rules: dict[str, Detector] | None = None,
    progress: Progress | None = None,
) -> RebuildResult:
    """Fold the events topic into a new journey store under `output` and compare the flags.

    `output` must not exist or be empty (see `check_target`). Raises the errors of
    `journeys.replay_source.read_batches`.
    """
    target = check_target(output)
    read = ReadStats()
    result = RebuildResult(output=target, read=read)
    store = LocalStore(target / "journeys")
    try:
        with bulk_decoding():
            await _fold_log(kafka, store, read, progress)
        started = time.perf_counter()
        result.journeys = _Folder(store, list(range(read.partitions))).evaluate(
            now, settings, extra_rules, result.flags
        )
        result.evaluate_seconds = time.perf_counter() - started
    finally:
        store.close()
    names = TopicNames(kafka.topic_prefix)
    flag_changes: list[dict[str, Any]] = []
    async for _partition, records in read_batches(kafka, names.flags):
        flag_changes.extend(orjson.loads(r.value) for r in records if r.value)
    result.live = standing_flags(flag_changes)
    result.changes = compare_flags(result.flags, result.live)
    return result


def describe_rebuild(result: RebuildResult) -> list[str]:
    """What the rebuild found, for people: totals, then each difference with the live flags."""
    lines = [
        f"rebuilt {result.journeys} journey(s) with {len(result.flags)} flag(s) "
        f"({result.open_flags} open) into {result.output / 'journeys'}",
    ]
    missed, gone, status = (result.of_kind(k) for k in ("missed", "gone", "status"))
    if not result.changes:
        lines.append(f"no differences with the live flag topic ({len(result.live)} flag(s))")
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
    return lines
