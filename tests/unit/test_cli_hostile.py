"""A hostile journey cannot drive the terminal: escape sequences and markup in event text are
shown escaped by `journeys check`, `journeys journey` and `journeys flags`."""

from __future__ import annotations

import io
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import pytest
from rich.text import Text
from typer.testing import CliRunner

from journeys.cli import app
from journeys.cli.query import flags_command, journey_command
from journeys.forensics.terminal import SafeConsole

HOSTILE = "\x1b[2J\x1b]0;pwned\x07 [bold red]FAKE[/] \r\u202etxt.exe \x9b31m"
FORBIDDEN = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def _events() -> list[dict[str, Any]]:
    base = {
        "tenant": "acme-motors",
        "source": {"system": "web", "channel": "web"},
        "customer": {"email": "eve@example.com", "name": "Eve \x1b[31m[link=http://x]"},
    }
    return [
        {
            **base,
            "event_id": "ev-1",
            "type": "message.received",
            "occurred_at": "2026-11-01T09:00:00+00:00",
            "payload": {"medium": "email", "text": HOSTILE},
        },
        {
            **base,
            "event_id": "ev-2",
            "type": "form.submitted",
            "occurred_at": "2026-11-03T09:00:00+00:00",
            "payload": {"form": HOSTILE},
        },
    ]


def _assert_inert(output: str) -> None:
    for character in FORBIDDEN:
        assert character not in output, repr(character)
    assert "\\x1b[2J" in output  # shown, escaped
    assert "[bold red]FAKE[/]" in output  # markup shown as typed, not applied


def test_check_shows_hostile_text_escaped(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in _events()) + b"\n")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    _assert_inert(result.output)
    assert "[link=http://x]" in result.output


class _Client:
    """Answers like `ApiClient` with what a hostile API (or journey) would return."""

    def __init__(self, journey: dict[str, Any]) -> None:
        self._journey = journey

    def __enter__(self) -> _Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def journey(self, identifier: str) -> dict[str, Any]:
        del identifier
        return self._journey

    def flags(self, **filters: Any) -> dict[str, Any]:
        del filters
        flags = [
            {**flag, "tenant": self._journey["tenant"], "customer_id": "cus_x", "message": HOSTILE}
            for flag in self._journey["flags"]
        ]
        return {"flags": flags, "next_cursor": "[blink]c\x1b[5m"}


def _journey(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in _events()) + b"\n")
    result = CliRunner().invoke(app, ["check", str(path), "--format", "json"])
    journey: dict[str, Any] = orjson.loads(result.stdout)["journeys"][0]
    assert journey["flags"]  # the enquiry went unanswered: a flag to list
    return journey


def test_journey_and_flags_show_hostile_text_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = _Client(_journey(tmp_path))
    assert journey_command(client, "email:eve@example.com", as_json=False) == 0  # type: ignore[arg-type]
    _assert_inert(capsys.readouterr().out)
    assert flags_command(client, {}, every_page=False, as_json=False) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    _assert_inert(out)
    assert "--cursor [blink]c\\x1b[5m" in out


def test_the_console_keeps_its_own_colours_and_escapes_the_text() -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, force_terminal=True, color_system="standard", width=200)
    console.print(Text(HOSTILE, style="red"))
    out = buffer.getvalue()
    assert out.startswith("\x1b[31m")  # rich's own colour code stays
    assert "\x1b[2J" not in out
    assert "\x07" not in out
    assert "\\x1b[2J" in out
