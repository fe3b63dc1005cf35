"""Values from events are escaped where they are printed or logged."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.printable import printable
from streams import logsafe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Priya Shah", "Priya Shah"),
        ("Zoë 東京 ١٢٣", "Zoë 東京 ١٢٣"),
        ("\x1b[2Jcleared", "\\x1b[2Jcleared"),
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
        ("dealer\n[INFO] FORGED LOG LINE", "dealer\\n[INFO] FORGED LOG LINE"),
        ("a\rb\tc\x00", "a\\rb\\tc\\x00"),
        ("\x9b31m", "\\x9b31m"),
        ("gpj.\u202eexe", "gpj.\\u202eexe"),
        ("line\u2028two", "line\\u2028two"),
    ],
)
def test_printable_escapes_what_would_drive_a_terminal_or_forge_a_line(
    raw: str, shown: str
) -> None:
    assert printable(raw) == shown


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text())
def test_printable_output_holds_no_control_character(text: str) -> None:
    shown = printable(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert "\u202e" not in shown
    assert "\u2028" not in shown


def test_log_arguments_are_escaped_for_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    logsafe.install()
    logsafe.install()  # idempotent: no double escaping
    with caplog.at_level(logging.INFO):
        logging.getLogger("streams.anything").info(
            "flag %s %s", "resolved", "dealer\n[INFO] FORGED LOG LINE"
        )
        logging.getLogger("elsewhere").info("%(who)s", {"who": "\x1b[2J"})
    first, second = caplog.records
    assert first.getMessage() == "flag resolved dealer\\n[INFO] FORGED LOG LINE"
    assert "\n" not in first.getMessage()
    assert second.getMessage() == "\\x1b[2J"
