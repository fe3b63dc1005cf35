"""Log lines that a record cannot forge.

Values from events (a system's name, a flag message, a tenant) reach log lines as `%s`
arguments. A newline in one of them would start a line of its own that reads like the
worker's (`[INFO] flag resolved …`), and an escape sequence would drive the reader's terminal.
A log-record factory escapes every string argument once, for every logger in the process,
so no call site has to remember to.
"""

from __future__ import annotations

import logging
from typing import Any

from schemas.printable import printable

_installed = False


def _escaped(value: Any) -> Any:
    return printable(value) if isinstance(value, str) else value


def install() -> None:
    """Escape the string arguments of every log record made in this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def safe_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if isinstance(record.args, tuple):
            record.args = tuple(_escaped(value) for value in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _escaped(value) for key, value in record.args.items()}
        return record

    logging.setLogRecordFactory(safe_record)
