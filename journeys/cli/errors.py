"""The command line's exit statuses and its one way of saying what went wrong (on standard error)."""

from __future__ import annotations

import typer
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from rich.console import Console
from rich.text import Text

from journeys.forensics.terminal import SafeConsole
from journeys.sdk.client import ApiError
from journeys.settings import CHECK_BROKER
from schemas.errors import JourneyLedgerError

EXIT_OK = 0
"""Everything went as asked."""

EXIT_REJECTED = 1
"""Some lines of the input were rejected (`check`, `send`)."""

EXIT_NOT_FOUND = 1
"""No journey the token can read holds the identifier (`journey`)."""

EXIT_USAGE = 2
"""Bad usage: an option, the settings, the token, or an unreadable file."""

EXIT_UNAVAILABLE = 2
"""The broker or the API could not be reached or refused, or a worker failed."""


def _stderr() -> Console:
    return SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def print_error(problem: BaseException | str, *, hint_apart: bool = False) -> None:
    """Print `error: …` on standard error; with `hint_apart`, a ledger error's hint on its own line."""
    err = _stderr()
    if hint_apart and isinstance(problem, JourneyLedgerError):
        err.print(Text("error: ", style="red") + Text(Exception.__str__(problem)))
        if problem.hint:
            err.print(Text("hint: ", style="yellow") + Text(problem.hint))
        return
    err.print(Text("error: ", style="red") + Text(str(problem)))


def print_warning(message: str) -> None:
    """Print `warning: …` on standard error."""
    _stderr().print(Text("warning: ", style="yellow") + Text(message))


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print the error and return the `typer.Exit` to raise with `code`."""
    print_error(message)
    return typer.Exit(code)


def api_failure(exc: JourneyLedgerError) -> int:
    """Say why a query against the API failed, on one line; `EXIT_NOT_FOUND` for a 404."""
    print_error(exc)
    if isinstance(exc, ApiError) and exc.status == 404:
        return EXIT_NOT_FOUND
    return EXIT_USAGE


def broker_failure(exc: KafkaError | JourneyLedgerError) -> int:
    """Say why reading the broker failed (a ledger error's hint on its own line); the status."""
    if isinstance(exc, JourneyLedgerError):
        print_error(exc, hint_apart=True)
    else:
        print_error(f"{exc!r}; {CHECK_BROKER}")
    return EXIT_UNAVAILABLE
