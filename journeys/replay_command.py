"""`journeys replay` and `journeys rebuild`: the command logic behind the thin CLI.

Both read the events topic straight from Kafka (`journeys.replay_source`) with a progress bar
on standard error, and report their throughput there at the end. The wall clock is read once
by the CLI and passed in.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from journeys.clock import wall_clock
from journeys.live_diff import LiveUnavailableError, describe_differences, live_differences
from journeys.rebuild import check_target, describe_rebuild, rebuild
from journeys.replay_source import ReadStats, read_events
from journeys.report import ReportFormat, print_report, render, write_report
from journeys.settings import CHECK_BROKER, Settings
from projections.replay import replay
from projections.rules import Detector
from projections.settings import RULES, FoldSettings
from projections.view import view_to_dict
from schemas.errors import JourneyLedgerError

__all__ = ["ReportFormat", "rebuild_command", "replay_command", "wall_clock", "without_rules"]

EXIT_OK = 0
EXIT_ERROR = 2


def _error(err: Console, exc: BaseException | str) -> None:
    if isinstance(exc, JourneyLedgerError):
        err.print(Text("error: ", style="red") + Text(super(JourneyLedgerError, exc).__str__()))
        if exc.hint:
            err.print(Text("hint: ", style="yellow") + Text(exc.hint))
    else:
        err.print(Text("error: ", style="red") + Text(str(exc)))


@contextmanager
def _progress(err: Console, what: str) -> Iterator[Callable[[int, int], None]]:
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task(what, total=None)

    def advance(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance


def _throughput(err: Console, stats: ReadStats, what: str) -> None:
    err.print(
        f"{what} {stats.records} record(s) ({stats.events} event(s)) from "
        f"{stats.partitions} partition(s) in {stats.seconds:.2f}s: "
        f"{stats.events_per_second:,.0f} events/s",
        markup=False,
        highlight=False,
    )


def replay_command(
    settings: Settings,
    identifier: str,
    *,
    now: datetime,
    as_of: datetime | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
    tenant: str | None = None,
    fmt: ReportFormat = ReportFormat.TEXT,
    output: Path | None = None,
    api: str | None = None,
    token: str | None = None,
) -> int:
    """Run `journeys replay`: read the events topic, replay, write the report; exit status.

    `now` is the wall clock at the entry point: the default `as_of` and the report's
    generation time. With `api`, the differences from the live projection are printed on
    standard error (a warning when the API cannot be asked).
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    kafka = settings.kafka_settings()
    moment = as_of or now
    stats = ReadStats()
    try:
        with _progress(err, "reading events") as progress:
            events = asyncio.run(read_events(kafka, tenant=tenant, stats=stats, progress=progress))
    except KafkaError as exc:
        _error(err, f"{exc!r}; {CHECK_BROKER}")
        return EXIT_ERROR
    except JourneyLedgerError as exc:
        _error(err, exc)
        return EXIT_ERROR
    _throughput(err, stats, "read")
    try:
        result = replay(
            events, identifier, moment, settings.fold_settings(), from_=from_, to=to, tenant=tenant
        )
    except JourneyLedgerError as exc:
        _error(err, exc)
        return EXIT_ERROR
    if output is not None:
        try:
            write_report(output, result, fmt, now)
        except OSError as exc:
            _error(err, f"cannot write {output}: {exc.strerror}")
            return EXIT_ERROR
        err.print(f"wrote {fmt.value} report to {output}", markup=False)
    elif fmt is ReportFormat.TEXT:
        print_report(Console(highlight=False), result, now)
    else:
        text = render(result, fmt, now)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    if api:
        try:
            diff = live_differences(api, token, view_to_dict(result.view))
        except LiveUnavailableError as exc:
            err.print(
                Text("warning: ", style="yellow")
                + Text(f"no comparison with the live projection: {exc}")
            )
        else:
            for line in describe_differences(diff, api):
                err.print(line, markup=False)
    return EXIT_OK


def without_rules(settings: FoldSettings, disabled: list[str]) -> FoldSettings:
    """The fold settings with more rules disabled; raises ValueError naming unknown rules."""
    names = {name.strip().upper() for item in disabled for name in item.split(",") if name.strip()}
    unknown = sorted(names - set(RULES))
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
    rules = replace(settings.rules, enabled=settings.rules.enabled - names)
    return replace(settings, rules=rules)


def rebuild_command(
    settings: Settings,
    output: Path,
    *,
    clock: Callable[[], datetime],
    generation: int | None = None,
    fold: FoldSettings | None = None,
    extra_rules: dict[str, Detector] | None = None,
) -> int:
    """Run `journeys rebuild` into `output`; print what changed versus the live flags."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    kafka = settings.kafka_settings()
    try:
        check_target(output, settings.worker.data_dir)
        with _progress(err, "rebuilding") as progress:
            result = asyncio.run(
                rebuild(
                    kafka,
                    fold or settings.fold_settings(),
                    output,
                    clock,
                    generation=kafka.journey_generation + 1 if generation is None else generation,
                    extra_rules=extra_rules,
                    progress=progress,
                )
            )
    except KafkaError as exc:
        _error(err, f"{exc!r}; {CHECK_BROKER}")
        return EXIT_ERROR
    except JourneyLedgerError as exc:
        _error(err, exc)
        return EXIT_ERROR
    for line in describe_rebuild(result):
        out.print(line, markup=False)
    return EXIT_OK
