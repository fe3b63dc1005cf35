"""`journeys worker --processes N`: one supervisor, N child workers, one API port, one shutdown.

Every child runs every stage and the Kafka consumer groups spread the partitions of each stage
over the children. That gives every core work whatever the load's shape (splitting by stage
leaves a core idle when one stage is the bottleneck, and an odd N would give one stage twice the
processes of the other). Child 0 serves the API on the port the user chose; the others serve it
on an ephemeral port of the same interface, announced on the members topic only, so that the
public API (and other machines' workers) can forward a query to the child that owns the
customer's partition; users see one port. Children watch their parent: each is started with
`PR_SET_PDEATHSIG` (Linux), so it gets SIGTERM if the supervisor dies, and shares its process
group, so a terminal's Ctrl-C reaches them all.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger("journeys.supervisor")

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
"""How long to wait before restarting a child that died, by how many times it died in a row."""

STEADY_S = 60.0
"""A child that ran this long before dying starts its backoff over."""

STOP_TIMEOUT_S = 30.0
"""How long a child gets to stop after SIGTERM before it is killed."""

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildPlan:
    """What one child worker runs: its stages, its API (if any) and its state directory."""

    index: int
    stages: tuple[str, ...]
    data_dir: Path
    api_host: str | None
    api_port: int | None

    def arguments(self) -> list[str]:
        """The `journeys worker` options that make a child run this plan."""
        args = ["--data-dir", str(self.data_dir), "--stages", ",".join(self.stages)]
        if self.api_port is not None:
            args += ["--api-port", str(self.api_port)]
            if self.api_host is not None:
                args += ["--api-host", self.api_host]
        return args


def process_count(value: str, cpu_count: int | None = None) -> int:
    """Parse `--processes`: a positive number or `auto` (the machine's cores); ValueError else."""
    if value.strip().lower() == "auto":
        return max(1, cpu_count if cpu_count is not None else (os.cpu_count() or 1))
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{value!r} is not a positive number or auto")
    return count


def plan_children(
    count: int,
    stages: tuple[str, ...],
    data_dir: Path,
    api_host: str | None,
    api_port: int | None,
) -> list[ChildPlan]:
    """The children of a supervisor: all run `stages`, child 0 alone on the public API port
    (the others on an ephemeral port, for forwarding, when there is an API at all)."""
    plans = []
    for index in range(count):
        public = index == 0
        plans.append(
            ChildPlan(
                index=index,
                stages=stages,
                data_dir=data_dir / f"process-{index}",
                api_host=api_host,
                api_port=api_port if public else (0 if api_port is not None else None),
            )
        )
    return plans


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the process group still carries Ctrl-C
        pass


@dataclass
class _Child:
    plan: ChildPlan
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts the children, restarts one that dies (with backoff), stops them all on a signal."""

    def __init__(
        self,
        plans: list[ChildPlan],
        base_command: list[str],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.children = [_Child(plan) for plan in plans]
        self.base_command = base_command
        # The children's environment; None passes this process's on.
        self.env = dict(env) if env is not None else None
        self._stopping = False

    def _start(self, child: _Child) -> None:
        child.plan.data_dir.mkdir(parents=True, exist_ok=True)
        command = [*self.base_command, *child.plan.arguments()]
        child.proc = subprocess.Popen(command, preexec_fn=_die_with_parent, env=self.env)
        child.started = time.monotonic()
        child.restart_at = None
        log.info("started worker process %d (pid %d)", child.plan.index, child.proc.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        self._stopping = True

    def pids(self) -> list[int]:
        """The process ids of the children running now."""
        return [c.proc.pid for c in self.children if c.proc is not None and c.proc.poll() is None]

    def _watch(self, child: _Child) -> None:
        now = time.monotonic()
        if child.proc is None:
            if child.restart_at is not None and now >= child.restart_at:
                self._start(child)
            return
        code = child.proc.poll()
        if code is None:
            return
        child.failures = 1 if now - child.started >= STEADY_S else child.failures + 1
        wait = BACKOFF_S[min(child.failures, len(BACKOFF_S)) - 1]
        log.warning(
            "worker process %d (pid %d) exited with %s; restarting in %.0fs",
            child.plan.index,
            child.proc.pid,
            code,
            wait,
        )
        child.proc = None
        child.restart_at = now + wait

    def _stop_all(self) -> int:
        """SIGTERM to the children without the public API, all at once, then to the one serving
        it, so that it answers until the others are gone; the worst exit status."""
        worst = 0
        public = [c for c in self.children if c.plan.index == 0]
        others = [c for c in self.children if c.plan.index != 0]
        for group in (others, public):
            running = [c for c in group if c.proc is not None]
            for child in running:
                assert child.proc is not None
                if child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for child in running:
                worst = max(worst, self._stopped(child, deadline))
        return worst

    def _stopped(self, child: _Child, deadline: float) -> int:
        """Wait for a child signalled to stop, killing it at `deadline`; 1 if it failed."""
        assert child.proc is not None
        try:
            code = child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker process %d did not stop; killing it", child.plan.index)
            child.proc.kill()
            code = child.proc.wait()
        return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else 1

    def run(self) -> int:
        """Run until SIGINT/SIGTERM; 0 when every child stopped cleanly, 1 otherwise."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in self.children:
                self._start(child)
            while not self._stopping:
                for child in self.children:
                    self._watch(child)
                time.sleep(0.2)
            log.info("stopping %d worker processes", len(self.children))
            return self._stop_all()
        finally:
            for child in self.children:  # never leave one behind, whatever happened
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.kill()
                    child.proc.wait()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def child_command(config: Path | None, bootstrap_servers: str | None, loglevel: str) -> list[str]:
    """The command line of a child `journeys worker`, before its plan's options."""
    command = [sys.executable, "-c", "from journeys.cli import main; main()"]
    if config is not None:
        command += ["--config", str(config)]
    if bootstrap_servers:
        command += ["--bootstrap-servers", bootstrap_servers]
    return [*command, "worker", "--processes", "1", "--log-level", str(loglevel)]
