"""`journeys worker --processes 2`: one command, two worker processes, the pure fold, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journeys.demo import demo_lines
from streams.config import KafkaSettings
from tests.integration.ledger_log import (
    converge,
    create,
    kafka_for_test,
    produce,
    pure_fold,
    sdk_keyed,
    touchpoints_in_log,
    wait_for,
    write_config,
)


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return kafka_for_test(bootstrap_servers)


def children_of(pid: int) -> set[int]:
    """Every live descendant of a process, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Is this process still there (and not a zombie)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def test_two_processes_fold_like_one_restart_a_dead_child_and_stop_together(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    names = create(kafka)
    config = write_config(tmp_path / "journeys.toml", kafka)
    command = [sys.executable, "-c", "from journeys.cli import main; main()"]
    command += ["--config", str(config), "worker", "--processes", "2"]
    command += ["--data-dir", str(tmp_path / "data"), "--log-level", "info"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    log = tmp_path / "supervisor.log"
    with log.open("ab") as out:
        supervisor = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    seen: set[int] = set()
    try:
        wait_for(lambda: len(children_of(supervisor.pid)) >= 2, 60, "two worker processes")
        first = children_of(supervisor.pid)
        seen |= first
        asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(demo_lines())))

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: len(children_of(supervisor.pid) - {victim}) >= 2,
            60,
            "the dead worker process restarted",
        )
        seen |= children_of(supervisor.pid)

        in_log = touchpoints_in_log(kafka)
        expected = pure_fold(in_log, datetime.now(UTC))
        state = converge(kafka, lambda: expected, 120)
        assert state.journeys == expected.journeys
        assert state.flags == expected.flags
        assert {p.name for p in (tmp_path / "data").iterdir()} == {"process-0", "process-1"}

        seen |= children_of(supervisor.pid)
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(90)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "restarting in" in text
    assert [pid for pid in seen if alive(pid)] == [], "a worker process outlived the supervisor"
