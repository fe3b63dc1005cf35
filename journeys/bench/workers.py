"""Benchmark support: `journeys worker` subprocesses, their memory, and watching their groups.

The benchmark runs its multi-worker and API phases against real `journeys worker` processes
(faust-hosted, as deployed). Progress is read from the outside: the stages commit each batch's
next offset to their consumer group, so a group's committed offsets say how far it got without
joining it. Tansu undercounts a partition's end offset (its last batch's first offset + 1),
so "done" for a stage fed by the ledger itself means: committed at least up to the reported
ends, and no commit for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]

from journeys.settings import Settings
from streams.config import KafkaSettings, TopicNames
from streams.kafka.sender import BatchSender, Outgoing


async def send_raw(kafka: KafkaSettings, records: Iterable[Outgoing]) -> dict[tuple[str, int], int]:
    """Send records as fast as aiokafka batches allow (acks=all, no idempotence: Tansu has
    none); returns each partition's next offset."""
    producer = AIOKafkaProducer(
        **kafka.client_options(),
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    try:
        return await BatchSender(producer).send(records)
    finally:
        await producer.stop()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return orjson.dumps(str(value)).decode()  # a JSON string is a TOML basic string


def worker_config(settings: Settings, topic_prefix: str, token: str | None = None) -> str:
    """A settings file for a benchmark worker: the run's broker and rules, its own topics."""
    kafka = settings.kafka.model_dump(exclude_none=True)
    kafka["topic_prefix"] = topic_prefix
    lines = ["[kafka]", *(f"{k} = {_toml_value(v)}" for k, v in sorted(kafka.items()))]
    rules = settings.rules.model_dump()
    lines += ["[rules]", *(f"{k} = {_toml_value(v)}" for k, v in sorted(rules.items()))]
    lines += ["[worker]", f"max_batch_records = {settings.worker.max_batch_records}"]
    for tenant, section in sorted(settings.tenants.items()):
        if section.default_region:
            lines += [f"[tenants.{orjson.dumps(tenant).decode()}]"]
            lines += [f"default_region = {_toml_value(section.default_region)}"]
    if token is not None:
        lines += ["[api]", f'tokens = [{{token = {_toml_value(token)}, tenants = ["*"]}}]']
    return "\n".join(lines) + "\n"


def peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident set (VmHWM), in MiB; None when unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def directory_bytes(path: Path) -> int:
    """Bytes of the files under `path` (like `du --apparent-size`)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


@dataclass
class WorkerProcess:
    """A `journeys worker` subprocess with its own settings file, data directory and log."""

    config: Path
    data_dir: Path
    log: Path
    api_port: int | None = None
    stages: str | None = None
    """`--stages` to pass (default: both stages in the one process)."""
    processes: str | None = None
    """`--processes` to pass (default: the worker's own, one process)."""
    proc: subprocess.Popen[bytes] | None = None
    peak_rss_mb: float | None = None

    def start(self) -> WorkerProcess:
        """Start it; it creates missing topics, joins the groups, then processes."""
        command = [sys.executable, "-c", "from journeys.cli import main; main()"]
        command += ["--config", str(self.config), "worker", "--data-dir", str(self.data_dir)]
        command += ["--log-level", "info"]
        if self.api_port is not None:
            command += ["--api-port", str(self.api_port)]
        if self.stages is not None:
            command += ["--stages", self.stages]
        if self.processes is not None:
            command += ["--processes", self.processes]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def alive(self) -> bool:
        """Still running?"""
        return self.proc is not None and self.proc.poll() is None

    def sample_rss(self) -> float | None:
        """Read the peak RSS so far (kept for after the process is gone)."""
        if self.proc is not None and self.alive():
            found = peak_rss_mb(self.proc.pid)
            if found is not None:
                self.peak_rss_mb = max(found, self.peak_rss_mb or 0.0)
        return self.peak_rss_mb

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Note the peak RSS, then SIGTERM and wait (SIGKILL after `timeout_s`); the exit code.

        The code is None when it never started, and -9 when it had to be killed.
        """
        if self.proc is None:
            return None
        self.sample_rss()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def log_tail(self, max_bytes: int = 2_000) -> str:
        """The end of the worker's log, for error messages."""
        try:
            data = self.log.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode("utf-8", "replace")


class WorkerFailedError(RuntimeError):
    """A benchmark worker exited or did not become ready."""


def _groups(prefix: str) -> list[str]:
    return [f"{prefix}.validate", f"{prefix}.ingest", f"{prefix}.journeys"]


async def wait_for_members(
    kafka: KafkaSettings,
    members: int,
    workers: list[WorkerProcess],
    timeout_s: float = 90.0,
) -> None:
    """Wait until the stage groups are stable with `members` members each."""
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for worker in workers:
                if not worker.alive():
                    raise WorkerFailedError(f"a worker exited:\n{worker.log_tail()}")
            ready = True
            for name in _groups(kafka.topic_prefix):
                # One group per request: Tansu garbles a DescribeGroups answer for several.
                try:
                    responses = await admin.describe_consumer_groups([name])
                except Exception:  # a coordinator not ready yet: ask again
                    ready = False
                    continue
                found = [g for r in responses for g in r.groups]
                # (error_code, group, state, protocol_type, protocol, members, ...)
                if not found or any(
                    g[0] != 0 or g[2] != "Stable" or len(g[5]) != members for g in found
                ):
                    ready = False
            if ready:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(w.log_tail() for w in workers)
                raise WorkerFailedError(
                    f"the workers did not join their groups within {timeout_s:.0f}s:\n{tails}"
                )
            await asyncio.sleep(0.25)
    finally:
        await admin.close()


async def wait_for_api(url: str, workers: list[WorkerProcess], timeout_s: float = 60.0) -> None:
    """Wait until a worker's `/health` answers."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not all(w.alive() for w in workers):
                break
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            await asyncio.sleep(0.25)
    tails = "\n".join(w.log_tail() for w in workers)
    raise WorkerFailedError(f"the API at {url} did not answer within {timeout_s:.0f}s:\n{tails}")


@dataclass
class Completion:
    """When the stages of a run started and finished processing a known input."""

    first_s: float | None = None
    """perf_counter() when the first validate commit was seen."""
    last_s: float | None = None
    """perf_counter() of the journey stage's last commit (after ingest was complete)."""
    journey_records: int = 0
    """Records the journey stage committed (events, merges and forwarded events)."""

    @property
    def seconds(self) -> float:
        """From the first validate commit to the journey stage's last."""
        if self.first_s is None or self.last_s is None:
            return 0.0
        return max(self.last_s - self.first_s, 1e-9)


async def _committed(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[int, int]:
    found = {}
    for tp in tps:
        found[tp.partition] = int(await consumer.committed(tp) or 0)
    return found


def _group_reader(kafka: KafkaSettings, stage: str) -> AIOKafkaConsumer:
    """A member of a stage's group in name only: never subscribed, it never joins, commits or
    rebalances; it reads the group's committed offsets."""
    return AIOKafkaConsumer(
        **kafka.client_options(),
        group_id=f"{kafka.topic_prefix}.{stage}",
        enable_auto_commit=False,
    )


async def watch_completion(
    kafka: KafkaSettings,
    produced: Mapping[int, int],
    *,
    settle_s: float = 1.5,
    timeout_s: float = 600.0,
    poll_s: float = 0.05,
    alive: Callable[[], bool] = lambda: True,
    on_sample: Callable[[], None] = lambda: None,
) -> Completion:
    """Watch the stage groups' commits until `produced` (touchpoints per partition) is through.

    Validation is complete when its commits reach `produced`; ingest and the journey stage when
    their commits reach the validated and events topics' reported ends and the journey stage's
    stay unchanged for `settle_s`.
    """
    names = TopicNames(kafka.topic_prefix)
    validate = _group_reader(kafka, "validate")
    ingest = _group_reader(kafka, "ingest")
    journeys = _group_reader(kafka, "journeys")
    reader = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    consumers = (validate, ingest, journeys, reader)
    for consumer in consumers:
        await consumer.start()
    result = Completion()
    try:
        partitions = range(kafka.partitions)
        touch = [TopicPartition(names.touchpoints, p) for p in partitions]
        valid = [TopicPartition(names.validated, p) for p in partitions]
        events = [TopicPartition(names.events, p) for p in partitions]
        last: dict[int, int] = {}
        changed_at = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.perf_counter()
            on_sample()
            done = await _committed(validate, touch)
            if result.first_s is None and any(done.values()):
                result.first_s = now
            stage = await _committed(journeys, events)
            if stage != last:
                last, changed_at = stage, now
                result.journey_records = sum(stage.values())
            through = all(done.get(p, 0) >= n for p, n in produced.items())
            if through and now - changed_at >= settle_s:
                stitched = await _committed(ingest, valid)
                ends = await reader.end_offsets(valid + events)
                if all(stitched.get(tp.partition, 0) >= int(ends[tp]) for tp in valid) and all(
                    stage.get(tp.partition, 0) >= int(ends[tp]) for tp in events
                ):
                    result.last_s = changed_at
                    return result
            if not alive():
                raise WorkerFailedError("a worker exited while the benchmark was running")
            if time.monotonic() > deadline:
                raise WorkerFailedError(
                    f"the workers did not get through the load within {timeout_s:.0f}s "
                    f"(validate at {done}, expected {dict(produced)})"
                )
            await asyncio.sleep(poll_s)
    finally:
        for consumer in consumers:
            await consumer.stop()
