"""`journeys check`: validate a file of events and fold it into journeys with flags, offline."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import IO, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.text import Text

from journeys.cli.app import FormatOption, OutputFormat, app, parse_moment, settings_of
from journeys.cli.errors import EXIT_REJECTED, fail
from journeys.cli.render import journey_panel
from journeys.demo import DEMO_FILE
from journeys.forensics.terminal import SafeConsole
from projections.formatting import format_moment
from projections.ledger import Ledger
from projections.settings import FoldSettings
from projections.view import JourneyView, view, view_to_dict
from schemas.codec import Accepted, Rejected, decode_lines, failure
from schemas.errors import EventConflictError
from schemas.events import DECISION_TYPES


@dataclass(slots=True)
class CheckReport:
    """The journeys a file folds into, and the lines it had to reject."""

    as_of: datetime | None
    journeys: list[JourneyView] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    later: int = 0
    decisions: int = 0
    """People's identity decisions among the events (they join no journey)."""
    """Valid events that occurred after `as_of`: not folded, so they change nothing."""

    @property
    def open_flags(self) -> int:
        """How many flags are open across all journeys."""
        return sum(1 for j in self.journeys for f in j.flags if f.status == "open")


def check_lines(
    lines: Iterable[bytes], settings: FoldSettings, as_of: datetime | None = None
) -> CheckReport:
    """Decode, validate and fold JSON Lines; `as_of` defaults to the latest `occurred_at`.

    With `as_of`, events that occurred after it are validated but not folded: they neither
    join customers nor count for the flags.
    """
    with rare_collections():
        return _check(lines, settings, as_of)


@contextmanager
def rare_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely, then as before.

    A check keeps every event and journey until the end, none in a reference cycle; with the
    default thresholds the collector walks them again and again (measured: a quarter of
    `check_lines`' CPU on a 50,000-event file). Reference counting still frees the rest.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(*RARE_COLLECTIONS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


RARE_COLLECTIONS = (100_000, 50, 1_000)
"""The collector's thresholds during a check: young collections every 100,000 allocations."""


def _check(lines: Iterable[bytes], settings: FoldSettings, as_of: datetime | None) -> CheckReport:
    report = CheckReport(as_of=as_of)
    first_line: dict[tuple[str, str], int] = {}
    latest: datetime | None = None
    valid: list[Accepted] = []
    for result in decode_lines(lines):
        if isinstance(result, Rejected):
            report.rejected.append(result)
        elif as_of is not None and result.event.occurred_at > as_of:
            report.later += 1
        else:
            valid.append(result)
    # People's identity decisions apply to the whole fold, whatever line they are on.
    settings = settings.with_decisions(r.event for r in valid)
    ledger = Ledger(settings)
    for result in valid:
        event = result.event
        key = (event.tenant, event.event_id)
        try:
            change = ledger.add(event)
        except EventConflictError:
            report.rejected.append(_conflict(result, first_line[key]))
            continue
        except Exception as exc:  # one line must never stop the check: it is reported
            report.rejected.append(Rejected(result.line, failure(exc)))
            continue
        if change is None and event.type in DECISION_TYPES and key not in first_line:
            report.decisions += 1
        elif change is None:
            report.duplicates += 1
            continue
        first_line[key] = result.line
        report.accepted += 1
        latest = event.occurred_at if latest is None else max(latest, event.occurred_at)
    report.as_of = as_of or latest
    if report.as_of is not None:
        for journey in ledger:
            try:
                held = ledger.conflicts_of(journey.tenant, journey.customer_id)
                why = ledger.why(journey)
                report.journeys.append(view(journey, report.as_of, settings, held=held, why=why))
            except Exception as exc:  # one journey must never stop the check: it is reported
                reason = failure(exc)
                numbers = (first_line.get((e.tenant, e.event_id)) for e in journey.events)
                report.rejected.extend(Rejected(n, reason) for n in numbers if n)
        report.rejected.sort(key=lambda rejected: rejected.line)
    return report


def _conflict(result: Accepted, first: int) -> Rejected:
    reason = (
        f"event_id: {result.event.event_id!r} was already used on line {first} for a different "
        "event; the first one stays (give a corrected event a new event_id)"
    )
    return Rejected(result.line, reason)


def report_to_dict(report: CheckReport) -> dict[str, Any]:
    """The JSON shape of `journeys check --format json`."""
    return {
        **_head(report),
        "journeys": [view_to_dict(j) for j in report.journeys],
        "rejected": [{"line": r.line, "reason": r.reason} for r in report.rejected],
    }


def _head(report: CheckReport) -> dict[str, Any]:
    return {
        "as_of": report.as_of.isoformat() if report.as_of else None,
        "summary": {
            "events": report.accepted,
            "duplicates": report.duplicates,
            "after_as_of": report.later,
            "decisions": report.decisions,
            "rejected": len(report.rejected),
            "journeys": len(report.journeys),
            "open_flags": report.open_flags,
        },
    }


def write_report_json(out: IO[bytes], report: CheckReport) -> None:
    """Write `report_to_dict(report)` as indented JSON, byte for byte, a journey at a time.

    The whole document as one dict and one string would be about as large again as the
    journeys it shows: each journey's JSON is made, written and dropped instead.
    """
    head = orjson.dumps(_head(report), option=orjson.OPT_INDENT_2)
    out.write(head[: head.rindex(b"\n}")])  # the lists follow, in `report_to_dict`'s order
    out.write(b',\n  "journeys": ')
    _write_items(out, (view_to_dict(journey) for journey in report.journeys))
    out.write(b',\n  "rejected": ')
    _write_items(out, ({"line": r.line, "reason": r.reason} for r in report.rejected))
    out.write(b"\n}\n")


def _write_items(out: IO[bytes], items: Iterable[dict[str, Any]]) -> None:
    """A list of the document's top level, indented as `orjson.OPT_INDENT_2` indents it."""
    empty = True
    for item in items:
        out.write(b"[\n    " if empty else b",\n    ")
        empty = False
        # JSON strings hold no raw line break: each line of the item is indented two levels
        out.write(orjson.dumps(item, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    "))
    out.write(b"[]" if empty else b"\n  ]")


def render_report(console: Console, report: CheckReport) -> None:
    """Print every journey, then the rejected lines and a summary."""
    for journey in report.journeys:
        console.print(journey_panel(journey))
    for rejected in report.rejected:
        console.print(Text(f"line {rejected.line}: {rejected.reason}", style="red"))
    as_of = format_moment(report.as_of) if report.as_of else "-"
    console.print(
        f"{len(report.journeys)} journeys, {report.accepted} events"
        f" ({report.duplicates} duplicates ignored), {report.open_flags} open flags,"
        f" {len(report.rejected)} rejected lines; as of {as_of}"
    )


@contextmanager
def open_input(file: str) -> Iterator[IO[bytes]]:
    """A file opened for reading bytes (`-`: standard input); a usage error when it cannot be."""
    if file == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(file, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    with handle:
        yield handle


@contextmanager
def _check_input(file: str | None, demo: bool) -> Iterator[IO[bytes]]:
    if demo:
        with resources.files("journeys.demo").joinpath(DEMO_FILE).open("rb") as handle:
            yield handle
    else:
        assert file is not None
        with open_input(file) as handle:
            yield handle


@app.command()
def check(
    ctx: typer.Context,
    file: Annotated[
        str | None, typer.Argument(help="JSON Lines file of events, or - for standard input.")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Evaluate flags as of this RFC 3339 time (default: the latest event)."),
    ] = None,
    output: FormatOption = OutputFormat.TEXT,
    demo: Annotated[bool, typer.Option(help="Check the bundled demo journeys.")] = False,
) -> None:
    """Validate a file of events and fold it into journeys with their flags, offline.

    Exit status: 0 when every line was valid, 1 when some lines were rejected, 2 on usage
    errors or an unreadable file.
    """
    if (file is None) == (not demo):
        raise typer.BadParameter("give a FILE (or -) or --demo, not both", param_hint="FILE")
    moment = parse_moment(as_of, "--as-of")
    settings = settings_of(ctx).fold_settings()
    with _check_input(file, demo) as handle:
        try:
            report = check_lines(handle, settings, moment)
        except OSError as exc:
            raise fail(f"cannot read {file}: {exc.strerror}") from None
    if output is OutputFormat.JSON:
        write_report_json(sys.stdout.buffer, report)
    else:
        render_report(SafeConsole(highlight=False), report)
    if report.rejected:
        raise typer.Exit(EXIT_REJECTED)
