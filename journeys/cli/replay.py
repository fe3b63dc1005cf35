"""`journeys replay` and `journeys rebuild`: the commands and the logic behind them.

Both read the events topic straight from Kafka (`journeys.forensics.source`) with a progress bar
on standard error, and report their throughput there at the end. The wall clock is read once
by the command and passed in.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from journeys.cli.app import ApiOption, TokenOption, app, parse_moment, settings_of
from journeys.cli.check import rare_collections
from journeys.cli.errors import EXIT_OK, EXIT_USAGE, broker_failure, print_error, print_warning
from journeys.clock import wall_clock
from journeys.forensics.live_diff import (
    LiveUnavailableError,
    describe_differences,
    live_differences,
)
from journeys.forensics.rebuild import check_target, describe_rebuild, rebuild
from journeys.forensics.report import ReportFormat, print_report, render, write_report
from journeys.forensics.source import ReadStats, read_data_keys, read_events
from journeys.forensics.terminal import SafeConsole, terminal_safe
from journeys.settings import Settings
from projections.replay import replay
from projections.rules import Detector
from projections.settings import RULES, FoldSettings
from projections.view import view_to_dict
from schemas.errors import JourneyLedgerError

__all__ = ["ReportFormat", "rebuild_command", "replay_command", "wall_clock", "without_rules"]


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
    err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)
    kafka = settings.kafka_settings()
    moment = as_of or now
    stats = ReadStats()
    try:
        with _progress(err, "reading events") as progress:
            sealer = settings.sealer()
            # sealed events are opened with the rings the identity changelog still holds
            data_keys = None if sealer is None else asyncio.run(read_data_keys(kafka, sealer))
            events = asyncio.run(
                read_events(
                    kafka, tenant=tenant, stats=stats, progress=progress, data_keys=data_keys
                )
            )
    except (KafkaError, JourneyLedgerError) as exc:
        return broker_failure(exc)
    _throughput(err, stats, "read")
    if stats.unreadable:
        print_warning(
            f"{stats.unreadable:,} record(s) of the events topic could not be read and are left "
            f"out of the replay (first: {stats.first_unreadable}); the ledger never writes such "
            "records: look for another producer writing to the events topic"
        )
    if stats.sealed:
        print_warning(
            f"{stats.sealed:,} events hold sealed personal fields and no master key is set: "
            "their identifiers cannot be matched or shown; set JOURNEYS_MASTER_KEY "
            "([privacy] master_key) to the workers' key"
        )
    try:
        with rare_collections():  # the fold keeps what it builds, as a check does
            result = replay(
                events,
                identifier,
                moment,
                settings.fold_settings(),
                from_=from_,
                to=to,
                tenant=tenant,
            )
    except JourneyLedgerError as exc:
        print_error(exc, hint_apart=True)
        return EXIT_USAGE
    if output is not None:
        try:
            write_report(output, result, fmt, now)
        except OSError as exc:
            print_error(f"cannot write {output}: {exc.strerror}")
            return EXIT_USAGE
        err.print(f"wrote {fmt.value} report to {output}", markup=False)
    elif fmt is ReportFormat.TEXT:
        print_report(SafeConsole(highlight=False), result, now)
    else:
        text = terminal_safe(render(result, fmt, now))
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    if api:
        try:
            diff = live_differences(api, token, view_to_dict(result.view))
        except LiveUnavailableError as exc:
            print_warning(f"no comparison with the live projection: {exc}")
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
    err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)
    out = SafeConsole(highlight=False, soft_wrap=True)
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
    except (KafkaError, JourneyLedgerError) as exc:
        return broker_failure(exc)
    for line in describe_rebuild(result):
        out.print(line, markup=False)
    return EXIT_OK


@app.command("replay")
def replay_cli(
    ctx: typer.Context,
    identifier: Annotated[
        str, typer.Argument(help="KIND:VALUE (e.g. phone:+44 7700 900123) or a customer id.")
    ],
    as_of: Annotated[
        str | None, typer.Option(help="Replay as of this RFC 3339 time (default: now).")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Show the timeline from this time.")
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Show the timeline up to this time (default: --as-of).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's customers.")] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="text, json, md or html.")
    ] = ReportFormat.TEXT,
    output: Annotated[
        Path | None, typer.Option(help="Write the report to this file instead of stdout.")
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Replay one customer's journey from the events topic as it stood at a moment.

    With an API (--api, $JOURNEYS_API or \\[client] api), also lists the differences between
    the replay and the live journey.

    Exit status: 0 on success, 2 on a bad identifier or window, an unknown customer or an
    unreachable broker.
    """
    now = wall_clock()
    settings = settings_of(ctx)
    raise typer.Exit(
        replay_command(
            settings,
            identifier,
            now=now,
            as_of=parse_moment(as_of, "--as-of"),
            from_=parse_moment(from_, "--from"),
            to=parse_moment(to, "--to"),
            tenant=tenant,
            fmt=fmt,
            output=output,
            api=api or settings.client.api,
            token=token or settings.client.token,
        )
    )


@app.command("rebuild")
def rebuild_cli(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(help="A new directory for the store (default: <data_dir>.rebuild-<time>)."),
    ] = None,
    rules_disabled: Annotated[
        list[str] | None,
        typer.Option("--rules-disabled", help="Rules to leave out, besides \\[rules] disabled."),
    ] = None,
    generation: Annotated[
        int | None,
        typer.Option(
            min=1, help="The generation to build (default: \\[worker] journey_generation + 1)."
        ),
    ] = None,
) -> None:
    """Build the journey projection again, as a new generation beside the live one.

    Runs the journey stage over the whole events topic in its own group and topics until it
    has caught up, then compares its flags with the live ones and says how to switch. Leaves
    the live generation alone. Exit status: 0 on success, 2 on an unusable output directory,
    the live generation, or an unreachable broker.
    """
    now = wall_clock()
    settings = settings_of(ctx)
    try:
        fold = without_rules(settings.fold_settings(), rules_disabled or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rules-disabled") from None
    target = output or settings.worker.data_dir.with_name(
        f"{settings.worker.data_dir.name}.rebuild-{now:%Y%m%dT%H%M%SZ}"
    )
    raise typer.Exit(
        rebuild_command(settings, target, clock=wall_clock, generation=generation, fold=fold)
    )
