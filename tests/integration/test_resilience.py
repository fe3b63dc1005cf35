"""The ledger under crashes, rebalances, empty disks, bad records, late and repeated events.

Every test ends the same way: the journeys in the worker's state topic and the flags standing
on the flag topic equal the pure fold (`journeys check`) of what the touchpoints log holds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from journeys.bench.synthetic import synthetic_lines
from schemas.outputs import HEADER_KIND, KIND_EVENT, FlagChange, FlagSnapshot
from streams.config import KafkaSettings
from tests.integration.ledger_log import (
    CATCH_UP_S,
    EventFlow,
    InProcessWorker,
    WorkerProcess,
    assert_once_each,
    converge,
    create,
    kafka_for_test,
    ledger_state,
    produce,
    pure_fold,
    read_topic_sync,
    sdk_keyed,
    touchpoints_in_log,
    wait_for,
    wait_for_progress,
    write_config,
)

pytestmark = pytest.mark.faults

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return kafka_for_test(bootstrap_servers)


class Workers:
    """Worker subprocesses started by a test; whatever is still running is killed after it."""

    def __init__(self) -> None:
        self.started: list[WorkerProcess] = []

    def start(self, config: Path, data_dir: Path, log: Path) -> WorkerProcess:
        worker = WorkerProcess(config, data_dir, log).start()
        self.started.append(worker)
        return worker


@pytest.fixture
def workers() -> Iterator[Workers]:
    started = Workers()
    yield started
    for worker in started.started:
        if worker.alive():
            worker.kill()


def now() -> datetime:
    return datetime.now(UTC)


def lines_of(first_copy: int, last_copy: int) -> list[bytes]:
    every = list(synthetic_lines(last_copy))
    per_copy = len(every) // last_copy
    return every[first_copy * per_copy :]


def test_kill_nine_five_times_while_events_flow(
    kafka: KafkaSettings, tmp_path: Path, workers: Workers, figures: list[str]
) -> None:
    create(kafka)
    config = write_config(tmp_path / "journeys.toml", kafka)
    pool = lines_of(0, 3000)  # up to 87,000 events: sent until the fifth restart, however slow
    log = tmp_path / "worker.log"
    worker = workers.start(config, tmp_path / "data", log)
    flow = EventFlow(kafka, pool, pause_s=0.4).start()
    rng = random.Random(20261123)
    for restart in range(5):
        wait_for_progress(kafka, 90, f"progress after restart {restart}")
        assert flow.flowing(), "the events ran out before the fifth kill"
        time.sleep(rng.uniform(0.1, 1.5))  # somewhere inside a batch, or between two
        worker.kill()
        worker = workers.start(config, tmp_path / "data", log)
    sent = flow.stop()
    assert sent >= 2_000, "too few events flowed during the kills"

    in_log = touchpoints_in_log(kafka)
    assert len(in_log) == sent
    expected = pure_fold(in_log, now())  # every deadline in the synthetic data has passed
    started = time.monotonic()
    state = converge(kafka, lambda: expected, CATCH_UP_S)
    figures.append(
        f"kill -9 x5 while {len(in_log):,} events flowed: caught up "
        f"{time.monotonic() - started:.1f}s after the last restart; "
        f"{len(expected.journeys):,} journeys equal the pure fold; "
        f"{log.read_text().count('again as one batch')} batch(es) in flight read again with "
        "their first cut"
    )
    assert worker.stop() == 0
    assert_once_each(kafka, state, expected)
    assert log.read_text().count("[^Worker]: Starting...") == 6


def test_two_workers_then_one_then_a_new_one_on_an_empty_disk(
    kafka: KafkaSettings, tmp_path: Path, workers: Workers, figures: list[str]
) -> None:
    names = create(kafka)
    config = write_config(tmp_path / "journeys.toml", kafka)
    first, second, third = lines_of(0, 60), lines_of(60, 120), lines_of(120, 150)
    a = workers.start(config, tmp_path / "a", tmp_path / "a.log")
    b = workers.start(config, tmp_path / "b", tmp_path / "b.log")
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(first)))
    state = converge(kafka, lambda: pure_fold(first, now()), 120)
    assert state == pure_fold(first, now())
    assert "assigned" in a.log_text() + b.log_text()

    assert b.stop() == 0  # its partitions move to a, which restores them from the state topics
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(second)))
    state = converge(kafka, lambda: pure_fold(first + second, now()), 120)
    assert state == pure_fold(first + second, now())
    assert a.stop() == 0

    events_before = {(r.partition, r.offset) for r in read_topic_sync(kafka, names.events)}
    flags_before = {(r.partition, r.offset) for r in read_topic_sync(kafka, names.flags)}
    c = workers.start(config, tmp_path / "c-empty", tmp_path / "c.log")
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(third)))
    everything = first + second + third
    state = converge(kafka, lambda: pure_fold(everything, now()), 120)
    assert c.stop() == 0
    assert state == pure_fold(everything, now())
    assert "restored partition" in c.log_text()
    restores = re.findall(r"restored partition \d+ \((\d+) records in ([\d.]+)s\)", c.log_text())
    figures.append(
        f"empty disk: {sum(int(n) for n, _ in restores):,} state records restored in "
        f"{sum(float(t) for _, t in restores):.2f}s over {len(restores)} partition(s)"
    )
    # Restored, not replayed: the new worker emitted only the new touchpoints' events and flags.
    old_ids = {orjson.loads(line)["event_id"] for line in first + second}
    new_events = [
        r
        for r in read_topic_sync(kafka, names.events)
        if (r.partition, r.offset) not in events_before
    ]
    assert new_events
    for record in new_events:
        if record.headers.get(HEADER_KIND) == KIND_EVENT:
            assert record.value is not None
            assert orjson.loads(record.value)["event_id"] not in old_ids
    # Not only the pure fold's final customers of `third`: its events reach ingest in any order
    # (keyed by event id, spread over partitions), so a customer a later event merges may be
    # flagged on its way. But never an old customer, nor an old event: that would be a replay.
    old_customers = {c for (_, c) in pure_fold(first + second, now()).journeys}
    third_ids = {orjson.loads(line)["event_id"] for line in third}
    new_flags = [
        r
        for r in read_topic_sync(kafka, names.flags)
        if (r.partition, r.offset) not in flags_before
    ]
    assert new_flags
    for record in new_flags:
        assert record.value is not None
        change = FlagChange.from_bytes(record.value)
        assert change.customer_id not in old_customers
        if isinstance(change.flag, FlagSnapshot):
            assert set(change.flag.event_ids) <= third_ids


CARD = "4111 1111 1111 1111"


def test_bad_records_reach_dead_letters_and_the_rest_is_processed(
    kafka: KafkaSettings, tmp_path: Path, figures: list[str]
) -> None:
    names = create(kafka)
    good = lines_of(0, 3)
    invalid = orjson.dumps({"event_id": "bad-1", "type": "order.placed", "tenant": "northwind"})
    with_card = orjson.dumps(
        {"event_id": "bad-2", "type": "call.logged", "note": f"card {CARD}", "tenant": "x"}
    )
    big = orjson.loads(good[0])
    big["event_id"] = "too-big"
    big["payload"]["text"] = "x" * 300_000
    oversized = orjson.dumps(big)
    # Issue 12: records that once stopped the stage for good (a payload nested 300 deep with a
    # `\u` escape; a moment the fold's date arithmetic overflowed on).
    deep: object = "caf\u00e9"
    for _ in range(300):
        deep = {"k": deep}
    nested = orjson.loads(good[1])
    nested["event_id"], nested["payload"]["x"] = "too-deep", deep
    too_deep = json.dumps(nested, separators=(",", ":")).encode()
    last = orjson.loads(good[2])
    last["event_id"], last["occurred_at"] = "too-late", "9999-12-31T23:00:00+00:00"
    too_late = orjson.dumps(last)
    bad: list[tuple[bytes | None, bytes | None]] = [
        (b"northwind", b"\xff\xfe\x00 not text at all"),
        (b"acme-motors", b"this is not JSON"),
        (b"northwind", invalid),
        (b"x", with_card),
        (b"acme-motors", b""),
        (None, b"[1, 2, 3]"),
        (b"acme-motors", oversized),
        (nested["tenant"].encode(), too_deep),
        (last["tenant"].encode(), too_late),
    ]
    items = sdk_keyed(good)
    mixed = [*items[:20], *bad[:3], *items[20:50], *bad[3:], *items[50:]]
    asyncio.run(produce(kafka, names.touchpoints, mixed))

    with InProcessWorker(kafka, tmp_path, clock=lambda: NOW):
        expected = pure_fold(good, NOW)
        state = converge(kafka, lambda: expected, 60)
        wait_for(
            lambda: len(read_topic_sync(kafka, names.dead_letters)) >= len(bad),
            30,
            "dead letters",
            0.5,
        )
    assert state == expected

    letters = [orjson.loads(r.value or b"") for r in read_topic_sync(kafka, names.dead_letters)]
    assert len(letters) == len(bad)
    figures.append(f"poison records: {len(bad)} injected, {len(letters)} dead letters")
    raw_log = {(r.partition, r.offset): r.value for r in read_topic_sync(kafka, names.touchpoints)}
    originals = set()
    for letter in letters:
        assert letter["topic"] == names.touchpoints
        assert letter["reason"]
        source = raw_log[(letter["partition"], letter["offset"])]
        assert source is not None
        original = (
            letter["original"].encode()
            if "original" in letter
            else base64.b64decode(letter["original_base64"])
        )
        assert original == source.replace(CARD.encode(), b"**** **** **** 1111")
        originals.add(source)
    assert originals == {value for _, value in bad}
    reasons = " | ".join(letter["reason"] for letter in letters)
    for field in ("occurred_at", "source", "customer", "payload"):
        assert field in reasons
    assert "record too large: 300," in reasons
    assert "nested too deep" in reasons
    assert "occurred_at: 9999-12-31T23:00:00+00:00 must lie in the years 1970 to 2999" in reasons
    assert CARD not in orjson.dumps(letters).decode()
    assert CARD.replace(" ", "") not in orjson.dumps(letters).decode()


def test_late_and_repeated_events_give_the_same_journeys(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    names = create(kafka)
    lines = lines_of(0, 30)
    rng = random.Random(7)
    shuffled = lines[:]
    rng.shuffle(shuffled)  # occurred_at order is lost: some events arrive days late
    repeats = rng.sample(lines, len(lines) // 5)  # producer retries: same ids, same content
    items = sdk_keyed(shuffled + repeats)
    items += [(None, line) for line in rng.sample(lines, 20)]  # unkeyed: re-keyed by tenant
    asyncio.run(produce(kafka, names.touchpoints, items))
    expected = pure_fold(lines, NOW)
    with InProcessWorker(kafka, tmp_path, clock=lambda: NOW):
        state = converge(kafka, lambda: expected, 60)
    assert state == expected
    assert ledger_state(kafka) == expected
    assert read_topic_sync(kafka, names.dead_letters) == []
