"""`journeys check` end to end: exit codes, outputs, rejected lines, settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from journeys.cli import app
from projections.settings import RULES
from tests.factories import at, raw

CARD = "4929 1234 5678 9015"


def run(*args: str, input: bytes | None = None) -> tuple[int, str]:
    """Run the CLI in-process; return the exit code and everything printed."""
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.output


def as_json(*args: str, input: bytes | None = None) -> tuple[int, dict[str, Any]]:
    code, output = run(*args, "--format", "json", input=input)
    return code, orjson.loads(output)


def write_lines(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_bytes(
        b"\n".join(line.encode() if isinstance(line, str) else orjson.dumps(line) for line in lines)
        + b"\n"
    )
    return path


def test_demo_shows_every_rule_and_a_clean_journey() -> None:
    code, report = as_json("check", "--demo")
    assert code == 0
    rules = {flag["rule"] for journey in report["journeys"] for flag in journey["flags"]}
    assert rules == set(RULES)
    assert any(not journey["flags"] for journey in report["journeys"])
    assert report["rejected"] == []
    statuses = {flag["status"] for journey in report["journeys"] for flag in journey["flags"]}
    assert statuses == {"open", "resolved"}


def test_demo_text_output_reads_as_timelines_with_flags() -> None:
    code, output = run("check", "--demo")
    assert code == 0
    assert "DATE_MISMATCH" in output
    assert "sms-gateway told the customer" in output
    assert "Priya Shah" in output
    assert "rejected lines" in output


def test_rejected_lines_are_reported_and_valid_events_kept(tmp_path: Path) -> None:
    good = raw("form.submitted", {"form": "contact"}, event_id="ok-1")
    other = raw("message.received", {"medium": "email"}, event_id="ok-2", when=at(hours=1))
    naive = raw("form.submitted", {"form": "contact"}, event_id="bad-1", when="2024-03-11T09:00:00")
    path = write_lines(tmp_path / "events.jsonl", good, "{not json", "", naive, other)
    code, report = as_json("check", str(path))
    assert code == 1
    assert [r["line"] for r in report["rejected"]] == [2, 4]
    assert "invalid JSON" in report["rejected"][0]["reason"]
    assert report["rejected"][1]["reason"].startswith("occurred_at:")
    kept = {e["event_id"] for j in report["journeys"] for e in j["events"]}
    assert kept == {"ok-1", "ok-2"}


def test_conflicting_event_id_is_rejected_and_the_first_stays(tmp_path: Path) -> None:
    first = raw("form.submitted", {"form": "contact"}, event_id="dup")
    again = raw("form.submitted", {"form": "contact"}, event_id="dup")
    changed = raw("form.submitted", {"form": "other"}, event_id="dup")
    code, report = as_json("check", str(write_lines(tmp_path / "e.jsonl", first, again, changed)))
    assert code == 1
    assert report["summary"]["duplicates"] == 1
    assert report["rejected"][0]["line"] == 3
    assert "line 1" in report["rejected"][0]["reason"]
    (event,) = report["journeys"][0]["events"]
    assert event["payload"]["form"] == "contact"


def test_as_of_before_the_deadline_opens_no_unanswered_enquiry(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "e.jsonl", raw("message.received", {"medium": "email"}))
    _, early = as_json("check", str(path), "--as-of", at(hours=23).isoformat())
    _, late = as_json("check", str(path), "--as-of", at(hours=25).isoformat())
    assert early["journeys"][0]["flags"] == []
    assert [f["rule"] for f in late["journeys"][0]["flags"]] == ["UNANSWERED_ENQUIRY"]


def test_bad_as_of_is_a_usage_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "e.jsonl", raw("form.submitted", {"form": "x"}))
    code, output = run("check", str(path), "--as-of", "2024-03-11T09:00:00")
    assert code == 2
    assert "--as-of" in output


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    code, output = run("check", str(tmp_path / "missing.jsonl"))
    assert code == 2
    assert "cannot read" in output


def test_standard_input() -> None:
    line = orjson.dumps(raw("form.submitted", {"form": "contact"}, event_id="stdin-1"))
    code, report = as_json("check", "-", input=line + b"\n")
    assert code == 0
    assert report["journeys"][0]["events"][0]["event_id"] == "stdin-1"


def test_card_number_appears_in_no_output(tmp_path: Path) -> None:
    valid = raw("message.received", {"medium": "email", "text": f"charged twice on {CARD}"})
    invalid = raw("message.received", {"medium": f"card {CARD}"}, when="2024-03-11 10:00")
    path = write_lines(tmp_path / "e.jsonl", valid, invalid, f'{{"broken": "{CARD}"')
    digits = CARD.replace(" ", "")
    for fmt in ("text", "json"):
        code, output = run("check", str(path), "--format", fmt)
        assert code == 1
        assert CARD not in output
        assert digits not in output.replace(" ", "").replace("-", "")
        assert "9015" in output or fmt == "text"


def test_settings_file_sets_regions_and_disables_rules(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(
        '[tenants.acme]\ndefault_region = "GB"\n[rules]\ndisabled = ["UNANSWERED_ENQUIRY"]\n'
    )
    events = write_lines(
        tmp_path / "e.jsonl",
        raw("message.received", {"medium": "sms"}, customer={"phone": "07700 900123"}),
        raw(
            "form.submitted", {"form": "x"}, customer={"phone": "+44 7700 900123"}, when=at(days=3)
        ),
    )
    code, report = as_json("--config", str(config), "check", str(events))
    assert code == 0
    (journey,) = report["journeys"]
    assert journey["identifiers"] == [
        {"kind": "phone", "value": "+447700900123", "systems": ["web"]}
    ]
    assert journey["flags"] == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[rules]\nreferral_count = 1\n", "referral_count"),
        ("[rules]\nlow_score_window_days = 0\n", "low_score_window_days"),
        ("[rules\n", "not valid TOML"),
    ],
)
def test_bad_settings_file_names_the_problem(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(content)
    code, output = run("--config", str(config), "check", "--demo")
    assert code == 2
    assert expected in output


def test_installed_console_script_runs() -> None:
    script = Path(sys.executable).with_name("journeys")
    done = subprocess.run(
        [str(script), "check", "--demo", "--format", "json"], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert orjson.loads(done.stdout)["summary"]["journeys"] == 7


def test_worker_refuses_an_unknown_stage() -> None:
    from typer.testing import CliRunner

    from journeys.cli import app

    result = CliRunner().invoke(app, ["worker", "--stages", "ingest,nope"])
    assert result.exit_code == 2
    assert "unknown stage(s) nope" in result.output


def test_the_banner_says_how_to_reach_this_journeys_from_a_new_terminal(tmp_path: Path) -> None:
    from journeys.cli.up import activation_hint

    venv_bin = tmp_path / "my venv" / "bin"
    venv_bin.mkdir(parents=True)
    command = venv_bin / "journeys"
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Not on PATH: the line to paste puts it there (quoted, the folder has a space).
    assert activation_hint(venv_bin, path=str(elsewhere)) == (f"export PATH='{venv_bin}':\"$PATH\"")
    (venv_bin / "activate").write_text("")
    assert activation_hint(venv_bin, path=str(elsewhere)) == f". '{venv_bin / 'activate'}'"
    # Already first on PATH (an activated virtualenv): nothing to add.
    assert activation_hint(venv_bin, path=f"{venv_bin}:{elsewhere}") is None
