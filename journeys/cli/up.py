"""`journeys up`: a whole ledger in one foreground command, for a first look and for demos.

Without a configured broker it starts the embedded Tansu broker (memory only: everything is
gone when it stops), creates the topics, runs one worker with the API and the web pages, and
prints ready-to-paste environment lines for a second terminal. Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import atexit
import secrets
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from journeys.cli.app import LogLevel, app, settings_of
from journeys.cli.errors import EXIT_UNAVAILABLE, print_error
from journeys.cli.worker import worker_command
from journeys.demo import demo_lines
from journeys.devbroker import BrokerError, EmbeddedBroker
from journeys.forensics.terminal import SafeConsole
from journeys.sdk.producer import JourneyProducer
from journeys.settings import Settings, TokenEntry
from streams.config import KafkaSettings

_background: set[asyncio.Task[None]] = set()


SESSION_USER = "admin"
"""Who the session token acts as: every action taken with it records this name."""


def session_token() -> str:
    """A fresh token for this session that reads and writes every tenant, with the admin role."""
    return "jl-" + secrets.token_urlsafe(24)


def activation_hint(bin_dir: Path | None = None, path: str | None = None) -> str | None:
    """The line that puts this `journeys` on a new terminal's PATH, or None when it already is.

    `make run` starts `.venv/bin/journeys` without activating the virtualenv, so a plain
    `journeys` in another terminal would not be found (or would be another install).
    """
    here = (bin_dir or Path(sys.executable).parent).absolute()
    found = shutil.which("journeys", path=path)
    if found and Path(found).absolute().parent == here:
        return None
    if (here / "activate").is_file():
        return f". {shlex.quote(str(here / 'activate'))}"
    return f'export PATH={shlex.quote(str(here))}:"$PATH"'


def banner(console: Console, url: str, bootstrap: str, token: str, embedded: bool) -> None:
    """Print where everything is and the lines to paste into another terminal."""
    console.rule("[bold]journey-ledger is up")
    console.print(f"  web pages   {url}/ui/#token={token}", highlight=False)
    console.print(f"  API         {url}/v1  (OpenAPI: {url}/v1/openapi.json)", highlight=False)
    console.print(f"  metrics     {url}/metrics    health: {url}/health", highlight=False)
    broker = "embedded Tansu, in memory only" if embedded else "configured"
    console.print(f"  broker      {bootstrap} ({broker})", highlight=False)
    console.print("\n  In another terminal:", highlight=False)
    activate = activation_hint()
    if activate:
        console.print(f"    {activate}", highlight=False)
    console.print(f"    export JOURNEYS_BOOTSTRAP_SERVERS={bootstrap}", highlight=False)
    console.print(f"    export JOURNEYS_API={url}", highlight=False)
    console.print(
        f"    export JOURNEYS_TOKEN={token}   # user {SESSION_USER}, role admin", highlight=False
    )
    console.print("    journeys flags --status open", highlight=False)
    console.print("\n  Ctrl-C stops everything.", highlight=False)
    console.rule()


async def send_demo(kafka: KafkaSettings, console: Console) -> None:
    """Send the bundled demo journeys through the producer SDK."""
    lines = demo_lines()
    async with JourneyProducer(kafka) as producer:
        for line in lines:
            await producer.send(line)
        await producer.flush()
    console.print(f"sent {len(lines)} demo events; flags appear within seconds", highlight=False)


def up_command(
    settings: Settings,
    *,
    demo: bool,
    host: str,
    port: int,
    data_dir: Path | None,
    loglevel: str,
) -> int:
    """Run the whole ledger in the foreground; returns an exit status when it cannot start."""
    console = SafeConsole(highlight=False, soft_wrap=True)  # URLs stay whole, on one line
    embedded = not settings.bootstrap_configured
    if embedded:
        try:
            broker = EmbeddedBroker().start()
        except BrokerError as exc:
            print_error(exc)
            return EXIT_UNAVAILABLE
        atexit.register(broker.stop)
        settings = settings.with_bootstrap_servers(broker.bootstrap_servers)
    if data_dir is None:
        # The embedded broker forgets everything when it stops: so must the worker's state.
        data_dir = Path(tempfile.mkdtemp(prefix="journeys-up-"))
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    token = session_token()
    # The workers' own secret (forwarding, members records): this run's, unless one is set.
    peer_secret = settings.api.peer_secret or secrets.token_urlsafe(32)
    api = settings.api.model_copy(
        update={
            "tokens": (
                *settings.api.tokens,
                TokenEntry(token=token, tenants=("*",), user=SESSION_USER, role="admin"),
            ),
            "peer_secret": peer_secret,
        }
    )
    settings = settings.model_copy(update={"api": api})
    kafka = settings.kafka_settings()

    def ready(url: str) -> None:
        banner(console, url, kafka.bootstrap_servers, token, embedded)
        if demo:
            task = asyncio.get_running_loop().create_task(send_demo(kafka, console))
            _background.add(task)
            task.add_done_callback(_background.discard)

    return worker_command(
        settings, data_dir, loglevel, api_host=host, api_port=port, on_api_ready=ready
    )


@app.command()
def up(
    ctx: typer.Context,
    demo: Annotated[
        bool, typer.Option(help="Send the bundled demo journeys once it is up.")
    ] = False,
    host: Annotated[str, typer.Option(help="Interface for the API and pages.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and pages.")] = 8080,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Worker state directory (default: a fresh temporary one)."),
    ] = None,
    log_level: Annotated[LogLevel, typer.Option(help="Log level.")] = LogLevel.WARNING,
) -> None:
    """Run a whole ledger in the foreground: broker (embedded unless one is configured), topics,
    a worker, the API and the web pages. Prints the URLs and a session token; Ctrl-C stops it.
    """
    code = up_command(
        settings_of(ctx), demo=demo, host=host, port=port, data_dir=data_dir, loglevel=log_level
    )
    raise typer.Exit(code)
