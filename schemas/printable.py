"""Text from outside, made safe to print on a terminal or write into a log line.

An event's text can hold ANSI escape sequences (`ESC[2J` clears a service manager's terminal,
`ESC]0;…` retitles it), a newline that forges a whole log line, or bidirectional overrides
that make a line read differently from what it holds. Each such character is shown as its
escape (`\\x1b`, `\\n`, `\\u202e`) instead, so what was sent stays visible and inert.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls: ESC, CR, LF, BEL, CSI, OSC …
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
    "\u2028\u2029]"  # line and paragraph separators
)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control, bidi-override and line-separator character escaped."""
    return _UNSAFE.sub(_escape, text)
