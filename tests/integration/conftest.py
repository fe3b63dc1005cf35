"""Fixtures for integration tests: one Kafka-protocol broker for the whole session.

Broker choice, in order:
1. ``JOURNEYS_TEST_BOOTSTRAP_SERVERS`` set: use that broker as is (kind ``"external"``).
2. A Docker engine answers ``docker info``: a testcontainers ``KafkaContainer`` (kind ``"kafka"``).
3. Otherwise: an :class:`~journeys.devbroker.EmbeddedBroker` running Tansu (kind ``"tansu"``).
These tests never skip for want of a broker.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from journeys.devbroker import EmbeddedBroker

if TYPE_CHECKING:
    from testcontainers.community.kafka import KafkaContainer

ENV_BOOTSTRAP = "JOURNEYS_TEST_BOOTSTRAP_SERVERS"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
_HERE = Path(__file__).resolve().parent
_BROKER_KEY = pytest.StashKey[str]()
_FIGURES_KEY = pytest.StashKey[list[str]]()

BrokerKind = Literal["external", "kafka", "tansu"]


@dataclass(frozen=True)
class BrokerEndpoint:
    """Where the session's broker listens and what it is."""

    bootstrap_servers: str
    kind: BrokerKind


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/integration with ``integration``."""
    del config
    for item in items:
        if item.path.resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which broker the integration tests ran against, and the fault scenarios' figures."""
    used = terminalreporter.config.stash.get(_BROKER_KEY, None)
    if used:
        terminalreporter.write_line(f"integration broker: {used}")
    figures = terminalreporter.config.stash.get(_FIGURES_KEY, [])
    if figures:
        terminalreporter.section("fault scenarios")
        for line in figures:
            terminalreporter.write_line(line)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> list[str]:
    """Lines a fault scenario reports; printed at the end of the run."""
    stash = request.config.stash
    if _FIGURES_KEY not in stash:
        stash[_FIGURES_KEY] = []
    return stash[_FIGURES_KEY]


def _docker_engine_answers(timeout_s: float = 5.0) -> bool:
    """True if the docker CLI exists and its engine answers ``docker info`` quickly."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


@contextlib.contextmanager
def _docker_warnings_silenced() -> Iterator[None]:
    """Silence docker-py/testcontainers deprecations and unclosed-socket warnings (not ours)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", ResourceWarning)
        yield
        gc.collect()  # let docker-py's leaked sockets be finalised while silenced


def _start_kafka_container() -> KafkaContainer | str:
    """Start Kafka (KRaft) in Docker, or clean up and return why that failed."""
    from testcontainers.community.kafka import KafkaContainer

    container: KafkaContainer | None = None
    with _docker_warnings_silenced():
        try:
            container = KafkaContainer(KAFKA_IMAGE).with_kraft()
            container.start(timeout=120)
        except Exception as exc:  # no image, engine gone, SDK cannot reach it: fall back
            if container is not None:
                with contextlib.suppress(Exception):
                    container.stop()
            return f"KafkaContainer failed: {exc!r}"[:300]
    return container


@pytest.fixture(scope="session")
def broker_endpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerEndpoint]:
    """The session's broker: env var, else Kafka in Docker, else embedded Tansu."""
    stash = request.config.stash
    external = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if external:
        stash[_BROKER_KEY] = f"external {external} (from {ENV_BOOTSTRAP})"
        yield BrokerEndpoint(external, "external")
        return

    container = _start_kafka_container() if _docker_engine_answers() else "no Docker engine"
    if not isinstance(container, str):
        try:
            bootstrap = container.get_bootstrap_server()
            stash[_BROKER_KEY] = f"kafka {KAFKA_IMAGE} in Docker at {bootstrap}"
            yield BrokerEndpoint(bootstrap, "kafka")
        finally:
            with _docker_warnings_silenced():
                container.stop()
        return

    log_dir = tmp_path_factory.mktemp("tansu")
    with EmbeddedBroker(data_dir=log_dir) as broker:
        stash[_BROKER_KEY] = (
            f"embedded tansu at {broker.bootstrap_servers} "
            f"(ready in {broker.startup_seconds or 0:.2f}s, log {broker.log_path}; {container})"
        )
        yield BrokerEndpoint(broker.bootstrap_servers, "tansu")


@pytest.fixture(scope="session")
def bootstrap_servers(broker_endpoint: BrokerEndpoint) -> str:
    """``host:port`` of the session's Kafka-protocol broker."""
    return broker_endpoint.bootstrap_servers


@pytest.fixture(scope="session")
def broker_kind(broker_endpoint: BrokerEndpoint) -> BrokerKind:
    """``"tansu"``, ``"kafka"`` (testcontainers) or ``"external"`` (env var, unknown type)."""
    return broker_endpoint.kind
