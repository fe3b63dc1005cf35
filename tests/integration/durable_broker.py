"""A Tansu broker that keeps its data across restarts: S3 storage on a local moto server.

The session's broker keeps everything in memory, so restarting it would lose the log. For the
broker-restart scenario the test starts its own: moto's S3 server in a subprocess (it must
outlive the broker, it holds the data) and Tansu with `--storage-engine s3://<bucket>/`.
A restart is a new Tansu process on the same port with the same cluster id and bucket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from journeys.devbroker import EmbeddedBroker, find_free_port


class MotoS3:
    """moto's S3 server on a loopback port, in a subprocess."""

    def __init__(self, log: Path) -> None:
        self.port = find_free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        server = Path(sys.executable).with_name("moto_server")
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.endpoint, timeout=1.0)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start; see {log}") from None
                time.sleep(0.1)

    def bucket(self) -> str:
        """Create a fresh bucket; its name."""
        name = f"tansu-{uuid.uuid4().hex[:10]}"
        httpx.put(f"{self.endpoint}/{name}", timeout=10.0).raise_for_status()
        return name

    def env(self) -> dict[str, str]:
        """What Tansu's S3 engine reads to reach this server."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        """Stop the server (its data goes with it)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class DurableBroker:
    """Tansu on S3: `crash()` kills it with SIGKILL, `start()` brings it back with its data."""

    def __init__(self, s3: MotoS3, log_dir: Path) -> None:
        self.s3 = s3
        self.log_dir = log_dir
        self.bucket = s3.bucket()
        self.cluster_id = f"journeys-durable-{uuid.uuid4().hex[:8]}"
        self.port = find_free_port()
        self.broker: EmbeddedBroker | None = None
        self.restarts = 0
        self.restart_seconds: list[float] = []

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect (the same across restarts)."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> DurableBroker:
        """Start Tansu on the fixed port with the bucket's data."""
        began = time.monotonic()
        self.broker = EmbeddedBroker(
            port=self.port,
            cluster_id=self.cluster_id,
            data_dir=self.log_dir,
            env=self.s3.env(),
            storage_engine=f"s3://{self.bucket}/",
        ).start()
        if self.restarts:
            self.restart_seconds.append(time.monotonic() - began)
        return self

    def crash(self) -> None:
        """SIGKILL the broker: no orderly shutdown, only what reached storage survives."""
        assert self.broker is not None
        assert self.broker.pid is not None
        os.killpg(self.broker.pid, signal.SIGKILL)
        self.broker.stop()
        self.broker = None
        self.restarts += 1

    def stop(self) -> None:
        """Stop the broker for good."""
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


@contextmanager
def durable_broker(work: Path) -> Iterator[DurableBroker]:
    """A started Tansu-on-S3 broker and its S3 server, both stopped afterwards."""
    work.mkdir(parents=True, exist_ok=True)
    s3 = MotoS3(work / "moto.log")
    broker = DurableBroker(s3, work)
    try:
        yield broker.start()
    finally:
        broker.stop()
        s3.stop()
