"""`journeys send`: validate a file of events and send the valid ones to the touchpoints topic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Annotated

import typer
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from journeys.cli.app import app, settings_of
from journeys.cli.check import open_input
from journeys.cli.errors import EXIT_OK, EXIT_REJECTED, EXIT_UNAVAILABLE, print_error
from journeys.forensics.terminal import SafeConsole
from journeys.sdk.producer import BrokerUnavailableError, Delivery, JourneyProducer
from journeys.settings import CHECK_BROKER
from schemas.codec import Accepted, Rejected, decode_lines
from schemas.errors import JourneyLedgerError
from streams.config import KafkaSettings


@dataclass
class SendReport:
    """What `send_lines` did: how many were sent, which lines were rejected or undelivered."""

    sent: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    failed: list[Rejected] = field(default_factory=list)


async def send_lines(
    lines: Sequence[bytes], settings: KafkaSettings, *, progress: Progress | None = None
) -> SendReport:
    """Validate every line, send the valid events and wait for their delivery."""
    report = SendReport()
    accepted: list[Accepted] = []
    for item in decode_lines(lines):
        if isinstance(item, Rejected):
            report.rejected.append(item)
        else:
            accepted.append(item)
    if not accepted:
        return report
    task = progress.add_task("sending", total=len(accepted)) if progress else None
    pending: list[tuple[int, asyncio.Future[Delivery]]] = []
    async with JourneyProducer(settings) as producer:
        for item in accepted:
            future = await producer.send(item.event)
            if progress is not None and task is not None:
                future.add_done_callback(lambda _: progress.advance(task))
            pending.append((item.line, future))
        await producer.flush()
    for line, future in pending:
        error = future.exception()
        if error is None:
            report.sent += 1
        else:
            report.failed.append(Rejected(line, f"not delivered: {error!r}"))
    return report


def send_command(handle: IO[bytes], name: str, settings: KafkaSettings) -> int:
    """Run `journeys send`: print rejected lines and the count sent; return the exit status."""
    out = SafeConsole(highlight=False)
    err = SafeConsole(stderr=True, highlight=False)
    try:
        lines = handle.readlines()
    except OSError as exc:
        print_error(f"cannot read {name}: {exc.strerror}")
        return EXIT_UNAVAILABLE
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    )
    try:
        with progress:
            report = asyncio.run(send_lines(lines, settings, progress=progress))
    except BrokerUnavailableError as exc:
        print_error(str(exc))
        return EXIT_UNAVAILABLE
    except (JourneyLedgerError, KafkaError) as exc:
        print_error(f"{exc!r}; {CHECK_BROKER}")
        return EXIT_UNAVAILABLE
    for item in report.rejected + report.failed:
        out.print(f"line {item.line}: {item.reason}", markup=False)
    out.print(
        f"sent {report.sent} event(s) to {settings.bootstrap_servers}; "
        f"{len(report.rejected)} line(s) rejected"
        + (f", {len(report.failed)} not delivered" if report.failed else ""),
        markup=False,
    )
    if report.failed:
        print_error(f"some events were not delivered; {CHECK_BROKER}")
        return EXIT_UNAVAILABLE
    return EXIT_REJECTED if report.rejected else EXIT_OK


@app.command()
def send(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(help="JSON Lines file of events, or - for standard input.")
    ],
) -> None:
    """Validate a file of events and send the valid ones to the touchpoints topic.

    Exit status: 0 when every line was sent, 1 when some lines were rejected, 2 on an
    unreachable broker or an unreadable file.
    """
    kafka = settings_of(ctx).kafka_settings()
    with open_input(file) as handle:
        raise typer.Exit(send_command(handle, "standard input" if file == "-" else file, kafka))
