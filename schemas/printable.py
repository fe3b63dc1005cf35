"""Text from outside, made safe to print on a terminal or write into a log line.

An event's text can hold ANSI escape sequences (`ESC[2J` clears a service manager's terminal,
`ESC]0;…` retitles it), a newline that forges a whole log line, or bidirectional overrides
that make a line read differently from what it holds. Each such character is shown as its
escape (`\\x1b`, `\\n`, `\\u202e`) instead, so what was sent stays visible and inert.
"""

from __future__ import annotations

import re

_OTHER_UNSAFE = (
    "\x00-\x09\x0b-\x1f\x7f-\x9f"  # C0 and C1 controls but LF: ESC, CR, BEL, CSI, OSC …
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
    "\u2028\u2029"  # line and paragraph separators
)
_UNSAFE = re.compile(f"[\n{_OTHER_UNSAFE}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[{_OTHER_UNSAFE}]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control, bidi-override and line-separator character escaped.

    With `keep_newlines`, `\n` stays as it is: for a terminal that lays text out in lines.
    """
    return (_UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE).sub(_escape, text)
