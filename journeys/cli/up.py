"""`journeys up`: a whole ledger in one foreground command, for a first look and for demos.

Without a configured broker it starts the embedded Tansu broker (memory only: everything is
gone when it stops), creates the topics, runs the workers with the API and the web pages, and
prints ready-to-paste environment lines for a second terminal. Ctrl-C stops it all. Like
`journeys worker --processes auto` (and compose.yaml), it runs a worker process per core by
default, under the supervisor; `--processes 1` runs the one worker in this process.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import logging
import os
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from journeys.cli.app import LogLevel, app, settings_of
from journeys.cli.errors import EXIT_UNAVAILABLE, print_error
from journeys.cli.worker import STAGES, ensure_topics_or_explain, worker_command
from journeys.demo import demo_lines
from journeys.devbroker import BrokerError, EmbeddedBroker, find_free_port
from journeys.forensics.terminal import SafeConsole
from journeys.sdk.producer import JourneyProducer
from journeys.settings import (
    BOOTSTRAP_ENV,
    PEER_SECRET_ENV,
    TOKENS_ENV,
    Settings,
    TokenEntry,
)
from journeys.supervisor import Supervisor, child_command, plan_children, process_count
from streams.config import KafkaSettings
from streams.crypto.keys import KEY_BYTES, MASTER_KEY_ENV

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


def session_master_key() -> str:
    """A master key for one run on the embedded broker, which forgets everything when it stops:
    personal fields are sealed as in production, and the key goes with the data."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def with_session_master_key(settings: Settings) -> tuple[Settings, str | None]:
    """`settings` with this run's master key unless one is configured, and the key made (if any)."""
    if settings.privacy.master_key is not None:
        return settings, None
    key = session_master_key()
    privacy = settings.privacy.model_copy(update={"master_key": key})
    return settings.model_copy(update={"privacy": privacy}), key


def write_key_file(data_dir: Path, key: str) -> Path:
    """Keep this run's master key in a file only its user reads (`master.key` in the state
    directory): the banner names the file, never the key, so it stays out of logs."""
    path = data_dir / "master.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key)
    return path


def banner(
    console: Console,
    url: str,
    bootstrap: str,
    token: str,
    embedded: bool,
    key_file: Path | None = None,
) -> None:
    """Print where everything is and the lines to paste into another terminal."""
    console.rule("[bold]journey-ledger is up")
    console.print(f"  web pages   {url}/ui/#token={token}", highlight=False)
    console.print(f"  API         {url}/v1  (OpenAPI: {url}/v1/openapi.json)", highlight=False)
    console.print(f"  metrics     {url}/metrics    health: {url}/health", highlight=False)
    broker = "embedded Tansu, in memory only" if embedded else "configured"
    console.print(f"  broker      {bootstrap} ({broker})", highlight=False)
    if embedded:
        console.print(
            "  privacy     personal fields sealed with a key made for this run", highlight=False
        )
    console.print("\n  In another terminal:", highlight=False)
    activate = activation_hint()
    if activate:
        console.print(f"    {activate}", highlight=False)
    console.print(f"    export JOURNEYS_BOOTSTRAP_SERVERS={bootstrap}", highlight=False)
    console.print(f"    export JOURNEYS_API={url}", highlight=False)
    console.print(
        f"    export JOURNEYS_TOKEN={token}   # user {SESSION_USER}, role admin", highlight=False
    )
    if key_file is not None:
        console.print(
            f'    export JOURNEYS_MASTER_KEY="$(cat {shlex.quote(str(key_file))})"'
            "   # replay and export open sealed fields with it",
            highlight=False,
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


def child_environment(
    environ: Mapping[str, str],
    *,
    bootstrap: str | None,
    token: str,
    peer_secret: str,
    master_key: str | None = None,
) -> dict[str, str]:
    """The environment of `journeys up`'s child workers: this session's token and secret (and
    the embedded broker's address and this run's master key when there are) on top of `environ`."""
    env = dict(environ)
    tokens = env.get(TOKENS_ENV, "").strip()
    env[TOKENS_ENV] = f"{tokens};{token}=*" if tokens else f"{token}=*"
    env[PEER_SECRET_ENV] = peer_secret
    if bootstrap is not None:
        env[BOOTSTRAP_ENV] = bootstrap
    if master_key is not None:
        env[MASTER_KEY_ENV] = master_key
    return env


def when_healthy(
    url: str, then: Callable[[], None], timeout_s: float = 120.0, poll_s: float = 0.25
) -> threading.Thread:
    """Call `then` (in a daemon thread) once `url`/health answers 200; give up after `timeout_s`."""

    def wait() -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        then()
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(poll_s)

    thread = threading.Thread(target=wait, name="journeys-up-ready", daemon=True)
    thread.start()
    return thread


def up_command(
    settings: Settings,
    *,
    demo: bool,
    host: str,
    port: int,
    data_dir: Path | None,
    loglevel: str,
    processes: int = 1,
    root: Mapping[str, Any] | None = None,
) -> int:
    """Run the whole ledger in the foreground; returns an exit status when it cannot start.

    With `processes` above 1 a supervisor runs that many child workers (`root` holds the
    command line's global options, passed on to them).
    """
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
    # On the embedded broker (gone when it stops) the key may go too: the demo runs sealed.
    settings, master_key = with_session_master_key(settings) if embedded else (settings, None)
    if data_dir is None:
        # The embedded broker forgets everything when it stops: so must the worker's state.
        data_dir = Path(tempfile.mkdtemp(prefix="journeys-up-"))
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    token = session_token()
    key_file = None if master_key is None else write_key_file(data_dir, master_key)
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
        banner(console, url, kafka.bootstrap_servers, token, embedded, key_file)
        if demo:
            task = asyncio.get_running_loop().create_task(send_demo(kafka, console))
            _background.add(task)
            task.add_done_callback(_background.discard)

    if processes <= 1:
        return worker_command(
            settings, data_dir, loglevel, api_host=host, api_port=port, on_api_ready=ready
        )
    if not ensure_topics_or_explain(settings):
        return EXIT_UNAVAILABLE
    # Child 0 serves the API: the port must be known here to tell when it answers.
    port = port or find_free_port(host)
    wildcard = host in ("0.0.0.0", "::", "")
    local = "127.0.0.1" if wildcard else host
    shown = socket.gethostname() if wildcard else host  # as the worker's own API says it
    public = settings.api.advertised_url or f"http://{shown}:{port}"

    def announce() -> None:
        banner(console, public, kafka.bootstrap_servers, token, embedded, key_file)
        if demo:
            asyncio.run(send_demo(kafka, console))

    when_healthy(f"http://{local}:{port}", announce)
    given = root or {}
    env = child_environment(
        os.environ,
        bootstrap=kafka.bootstrap_servers if embedded else None,
        token=token,
        peer_secret=peer_secret,
        master_key=master_key,
    )
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s] %(name)s: %(message)s")
    plans = plan_children(processes, STAGES, data_dir, host, port)
    base = child_command(given.get("config"), given.get("bootstrap_servers"), loglevel)
    return Supervisor(plans, base, env=env).run()


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
    processes: Annotated[
        str,
        typer.Option(
            help="Worker processes, or auto (one per core, as compose.yaml runs them); "
            "1 runs the worker in this process."
        ),
    ] = "auto",
) -> None:
    """Run a whole ledger in the foreground: broker (embedded unless one is configured), topics,
    a worker, the API and the web pages. Prints the URLs and a session token; Ctrl-C stops it.
    """
    try:
        count = process_count(processes)
    except ValueError:
        raise typer.BadParameter("a positive number or auto", param_hint="--processes") from None
    code = up_command(
        settings_of(ctx),
        demo=demo,
        host=host,
        port=port,
        data_dir=data_dir,
        loglevel=log_level,
        processes=count,
        root=ctx.find_root().params,
    )
    raise typer.Exit(code)
