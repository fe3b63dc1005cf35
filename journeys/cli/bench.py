"""`journeys bench`: the command line of the benchmark (`journeys.bench`, loaded only when run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from journeys.cli.app import FormatOption, OutputFormat, app, settings_of


@app.command()
def bench(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=100, help="Events of the load.")] = 60_000,
    customers: Annotated[
        int | None, typer.Option(min=1, help="Customers of the load (default: events / 5).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic load.")] = 1,
    rate: Annotated[
        int, typer.Option(min=1, help="Offered events/s while measuring flag latency.")
    ] = 1_000,
    latency_seconds: Annotated[
        float, typer.Option(min=0.1, help="How long the fixed load is offered.")
    ] = 15.0,
    queries: Annotated[int, typer.Option(min=1, help="Journey queries timed.")] = 300,
    output: FormatOption = OutputFormat.TEXT,
    profile: Annotated[
        Path | None, typer.Option(help="Write a cProfile of the one-worker phase here.")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the workers' data and logs.")] = False,
) -> None:
    """Measure throughput and latencies next to the raw aiokafka limit, on fresh topics.

    Uses the configured broker, or starts an embedded one. Exit status: 0 on success, 2 when
    the broker cannot be reached or a worker fails.
    """
    from journeys.bench.run import BenchSizes, bench_command

    sizes = BenchSizes(events, customers, seed, rate, latency_seconds, queries)
    if sizes.customer_count > events:
        raise typer.BadParameter("at most one customer per event", param_hint="--customers")
    as_json = output is OutputFormat.JSON
    code = bench_command(settings_of(ctx), sizes, as_json=as_json, profile=profile, keep=keep)
    raise typer.Exit(code)
