"""The stage profiling harness drives both stages of the current layout over a small load."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from journeys.bench.cpu.stages import StageRun, main
from journeys.bench.load import skewed_lines


def test_every_touchpoint_goes_through_both_stages(tmp_path: Path) -> None:
    lines = skewed_lines(300, 60, 3)
    run = StageRun(tmp_path, batch=50)
    for line in lines:
        run.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    run.drain()
    assert run.records["touchpoints"] >= len(lines)
    assert run.outputs["events"] >= len(lines)  # each event once, merges pass some on again
    assert run.records["events"] == run.outputs["events"]
    assert run.outputs.get("dead_letters", 0) == 0


def test_the_report_names_each_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load = tmp_path / "load.jsonl"
    main(["--events", "200", "--customers", "40", "--save", str(load)])
    main(["--lines", str(load), "--batch", "40", "--sample", "5"])
    shown = capsys.readouterr().out
    assert "touchpoints 200" in shown
    for label in ("ingest", "journey stage", "both", "samples"):
        assert label in shown
