"""Terminal output that event text cannot drive: every console the CLI prints through.

An event's text (a chat line, a name, a system) can hold `ESC[2J`, `ESC]0;title`, a carriage
return that overwrites a line, or bidirectional overrides. `SafeConsole` escapes each such
character in the text it writes (`\\x1b`, `\\r`, `\\u202e`), once, as the last step of rendering,
so no call site has to remember to; rich's own colour and cursor codes are left alone.
Line breaks stay: rich lays text out in lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment

from schemas.printable import printable

_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def terminal_safe(text: str) -> str:
    """`text` with every control, bidi-override and separator character escaped, but `\\n`."""
    if _UNSAFE_BUT_NEWLINE.search(text) is None:
        return text
    return "\n".join(printable(line) for line in text.split("\n"))


class SafeConsole(Console):
    """A rich console whose written text never carries a control sequence it did not make."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        safe = (
            segment if segment.control else Segment(terminal_safe(segment.text), segment.style)
            for segment in buffer
        )
        return super()._render_buffer(safe)
