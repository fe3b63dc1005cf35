"""`journeys worker --processes N`: which child runs what, how N is read, how they stop."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from journeys.cli.worker import STAGES
from journeys.supervisor import Supervisor, child_command, plan_children, process_count

DATA = Path("/state")


def test_one_process_is_one_child_with_everything() -> None:
    (only,) = plan_children(1, STAGES, DATA, "0.0.0.0", 8080)
    assert only.stages == STAGES
    assert (only.api_host, only.api_port) == ("0.0.0.0", 8080)


@pytest.mark.parametrize("count", [2, 3])
def test_every_child_runs_both_stages_and_only_the_first_the_public_port(count: int) -> None:
    plans = plan_children(count, STAGES, DATA, "0.0.0.0", 8080)
    assert [p.index for p in plans] == list(range(count))
    assert all(p.stages == STAGES for p in plans)
    assert [p.api_port for p in plans] == [8080] + [0] * (count - 1)
    assert all(p.api_host == "0.0.0.0" for p in plans)
    assert len({p.data_dir for p in plans}) == count, "each child has its own RocksDB"
    assert all(p.data_dir.parent == DATA for p in plans)


def test_without_an_api_no_child_serves_one() -> None:
    plans = plan_children(3, STAGES, DATA, None, None)
    assert all(p.api_port is None for p in plans)
    assert all("--api-port" not in p.arguments() for p in plans)


def test_a_child_is_told_its_plan_on_the_command_line() -> None:
    plan = plan_children(2, ("journeys",), DATA, "127.0.0.1", 9000)[1]
    args = plan.arguments()
    assert args[args.index("--stages") + 1] == "journeys"
    assert args[args.index("--api-port") + 1] == "0"
    assert args[args.index("--data-dir") + 1] == str(DATA / "process-1")


def test_auto_is_the_number_of_cores() -> None:
    assert process_count("auto", cpu_count=6) == 6
    assert process_count("AUTO", cpu_count=None) == (os.cpu_count() or 1)
    assert len(plan_children(process_count("auto", 4), STAGES, DATA, None, 8080)) == 4


@pytest.mark.parametrize("bad", ["0", "-2", "many", ""])
def test_a_bad_count_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="positive number or auto"):
        process_count(bad)


def test_children_run_one_process_each_with_the_same_settings() -> None:
    command = child_command(Path("/etc/j.toml"), "kafka:9092", "info")
    assert command[command.index("--config") + 1] == "/etc/j.toml"
    assert command[command.index("--bootstrap-servers") + 1] == "kafka:9092"
    assert command[command.index("--processes") + 1] == "1", "a child never supervises"


_SLOW_TO_STOP = """
import os, signal, sys, time
index = sys.argv[sys.argv.index("--data-dir") + 1].rsplit("-", 1)[1]
def note(what):
    with open(os.environ["STOP_LOG"], "a") as log:
        log.write(f"{what} {index}\\n")
def stop(*_):
    note("term")
    time.sleep(0.5)
    note("exit")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note("up")
while True:
    time.sleep(0.05)
"""


def test_a_stop_signals_the_other_children_at_once_and_the_public_one_last(
    tmp_path: Path,
) -> None:
    stop_log = tmp_path / "stops"
    plans = plan_children(3, STAGES, tmp_path, "127.0.0.1", 8123)
    supervisor = Supervisor(
        plans, [sys.executable, "-c", _SLOW_TO_STOP], env={"STOP_LOG": str(stop_log)}
    )
    for child in supervisor.children:
        supervisor._start(child)
    for _ in range(200):  # every child has its handler in place
        if stop_log.exists() and stop_log.read_text().count("up") == 3:
            break
        time.sleep(0.05)

    assert supervisor._stop_all() == 0

    lines = stop_log.read_text().split("\n")[3:-1]
    assert sorted(lines[:2]) == ["term 1", "term 2"], lines  # both before either exits
    assert sorted(lines[2:4]) == ["exit 1", "exit 2"]
    assert lines[4:] == ["term 0", "exit 0"]  # the public API answers until the others are gone
