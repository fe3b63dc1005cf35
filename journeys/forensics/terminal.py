"""Terminal output that event text cannot drive: every console the CLI prints through.

An event's text (a chat line, a name, a system) can hold `ESC[2J`, `ESC]0;title`, a carriage
return that overwrites a line, or bidirectional overrides. `SafeConsole` escapes each such
character in the text it writes (`\\x1b`, `\\r`, `\\u202e`), once, as the last step of rendering,
so no call site has to remember to; rich's own colour and cursor codes are left alone.
Line breaks stay: rich lays text out in lines.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment

from schemas.printable import printable


def terminal_safe(text: str) -> str:
    """`text` with every control, bidi-override and separator character escaped, but `\n`."""
    return printable(text, keep_newlines=True)


class SafeConsole(Console):
    """A rich console whose written text never carries a control sequence it did not make."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        safe = (
            segment if segment.control else Segment(terminal_safe(segment.text), segment.style)
            for segment in buffer
        )
        return super()._render_buffer(safe)
