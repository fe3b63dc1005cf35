"""compose.yaml and the Dockerfile checked against what the code reads (no Docker engine needed).

Every `JOURNEYS_*` variable compose sets is one `journeys.settings` reads, and the settings it
yields are the intended ones; images are pinned; data lives on named volumes; the commands the
services run parse as real `journeys` commands; Kafka and the workers have health checks and
the services wait for them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

import journeys.settings as settings_module
from journeys.cli import app
from journeys.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = sorted(name for name in SERVICES if name.startswith("worker"))
JOURNEYS_SERVICES = sorted(
    name for name, s in SERVICES.items() if (s.get("command") or [""])[0] == "journeys"
)
HOST_ENV = {
    "JOURNEYS_API_TOKENS": "compose-test-token-0123456789=*",
    "JOURNEYS_PEER_SECRET": "compose-test-peer-secret-0123456789abcdef",
}
"""What an operator exports before `docker compose up` (compose interpolates it)."""

SETTINGS_VARIABLES = {
    value
    for name, value in vars(settings_module).items()
    if name.isupper() and isinstance(value, str) and value.startswith("JOURNEYS_")
}
"""The environment variables journeys/settings.py reads (its `*_ENV` constants)."""

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def interpolate(value: str, host: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` against a host environment."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if host.get(name):
            return host[name]
        if op and op.endswith("-"):
            return arg
        if op and op.endswith("?"):
            raise AssertionError(f"compose would refuse to start: {name}: {arg}")
        return ""

    return _INTERPOLATION.sub(one, value)


def environment(service: dict[str, Any], host: dict[str, str] = HOST_ENV) -> dict[str, str]:
    """A service's environment (mapping or list form), interpolated."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): interpolate(str(v), host) for k, v in raw.items()}


def referenced_variables(node: Any) -> set[str]:
    """Every `${VAR}` compose interpolates anywhere in a node."""
    if isinstance(node, dict):
        return set().union(*(referenced_variables(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(referenced_variables(v) for v in node), set())
    if isinstance(node, str):
        return {m["name"] for m in _INTERPOLATION.finditer(node)}
    return set()


def resolve(args: list[str]) -> tuple[Any, list[str], list[str]]:
    """The (click) command a `journeys …` argument list names, the path to it, and its own args."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return command, path, rest


def test_every_service_is_known_and_the_file_parses() -> None:
    assert COMPOSE["name"] == "journey-ledger"
    assert {"kafka", "topics"} <= set(SERVICES)
    assert WORKERS, "at least one worker"
    assert set(JOURNEYS_SERVICES) == {"topics", *WORKERS}


def test_every_journeys_variable_is_one_the_settings_read() -> None:
    assert {"JOURNEYS_CONFIG", "JOURNEYS_BOOTSTRAP_SERVERS"} <= SETTINGS_VARIABLES
    for name, service in SERVICES.items():
        used = {k for k in environment(service) if k.startswith("JOURNEYS_")}
        assert used <= SETTINGS_VARIABLES, (name, used - SETTINGS_VARIABLES)
    interpolated = {v for v in referenced_variables(SERVICES) if v.startswith("JOURNEYS_")}
    assert interpolated <= SETTINGS_VARIABLES


def test_the_environment_gives_the_settings_intended() -> None:
    kafka_env = environment(SERVICES["kafka"])
    advertised = dict(
        reversed(listener.split("://", 1))
        for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    for name in JOURNEYS_SERVICES:
        settings = load_settings(None, environment(SERVICES[name]))
        assert settings.kafka.bootstrap_servers == "kafka:9092", name
        assert "kafka:9092" in advertised, "the broker advertises the address the ledger uses"
        assert settings.api.tokens, f"{name}: JOURNEYS_API_TOKENS gives the API its tokens"
        assert settings.api.peer_secret, f"{name}: the workers share JOURNEYS_PEER_SECRET"


def test_compose_refuses_to_start_without_tokens() -> None:
    with pytest.raises(AssertionError, match="JOURNEYS_API_TOKENS"):
        environment(SERVICES[WORKERS[0]], host={})


def test_compose_refuses_to_start_without_a_peer_secret() -> None:
    host = {"JOURNEYS_API_TOKENS": HOST_ENV["JOURNEYS_API_TOKENS"]}
    with pytest.raises(AssertionError, match="JOURNEYS_PEER_SECRET"):
        environment(SERVICES[WORKERS[0]], host=host)


def test_images_are_pinned() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image or service.get("build"), name
        if image:
            _, colon, tag = image.rpartition(":")
            assert colon, f"{name}: {image} has no tag"
            assert "/" not in tag, f"{name}: {image} has no tag"
            assert tag != "latest", f"{name}: {image}"
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not a release tag"
            if service.get("build"):
                assert tag == version, f"{name}: the ledger's image is tagged with its version"
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")


def test_kafka_runs_in_kraft_mode() -> None:
    env = environment(SERVICES["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in " ".join(env).lower()
    assert env["CLUSTER_ID"]
    assert env["KAFKA_LOG_DIRS"] in {v.split(":", 1)[1] for v in SERVICES["kafka"]["volumes"]}


def test_data_lives_on_named_volumes() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    mounted: list[str] = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = (
                (volume.get("source"), volume["target"])
                if isinstance(volume, dict)
                else volume.split(":")[:2]
            )
            assert source in declared, f"{name}: {source}:{target} is not a named volume"
            mounted.append(source)
    assert len(mounted) == len(set(mounted)), "no two services share a data volume"
    for name in ["kafka", *WORKERS]:
        assert SERVICES[name].get("volumes"), f"{name} keeps its data on a volume"


def test_workers_keep_state_on_their_volume_and_serve_the_api() -> None:
    hostnames = set()
    for name in WORKERS:
        service = SERVICES[name]
        command = service["command"]
        data_dir = command[command.index("--data-dir") + 1]
        targets = {v.split(":")[1] for v in service["volumes"]}
        assert data_dir in targets, name
        port = command[command.index("--api-port") + 1]
        assert command[command.index("--api-host") + 1] == "0.0.0.0"
        assert any(str(p).endswith(f":{port}") for p in service["ports"]), name
        assert f":{port}/health" in " ".join(service["healthcheck"]["test"]), name
        assert command[command.index("--processes") + 1] == "auto", "a worker uses every core"
        hostnames.add(service["hostname"])
    assert len(hostnames) == len(WORKERS), "each worker announces its own API address"


@pytest.mark.parametrize("name", JOURNEYS_SERVICES)
def test_service_commands_are_real_journeys_commands(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command[0] == "journeys"
    found, path, rest = resolve(command[1:])
    assert path, f"{name}: {command} names no journeys command"
    assert not hasattr(found, "commands"), f"{name}: {command} names a group, not a command"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    # The arguments parse as the command's own options and types (an unknown option fails).
    found.make_context(" ".join(["journeys", *path]), list(rest))


def test_health_checks_and_start_order() -> None:
    for name in ["kafka", *WORKERS]:
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, name
    assert SERVICES["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in WORKERS:
        assert SERVICES[name]["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }
    for name, service in SERVICES.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, name
            assert rule["condition"] in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }


def test_dockerfile_installs_the_locked_package_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    # Exactly what uv.lock pins, with hashes: no unpinned `pip install` of anything.
    install = next(i for i, line in enumerate(lines) if "uv sync --frozen" in line)
    assert any(line.startswith("COPY") and "uv.lock" in line for line in lines[:install])
    pip_installs = [line for line in lines if "pip install" in line]
    assert all("--require-hashes" in line for line in pip_installs), pip_installs
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "the image names a user"
    assert users[-1] not in {"root", "0"}
    assert lines.index(f"USER {users[-1]}") > install


def test_published_ports_listen_on_loopback_only() -> None:
    # The broker's host listener has no authentication and the API is plain HTTP: publishing
    # either on every interface would open them to the network.
    published = [
        (name, str(port)) for name, service in SERVICES.items() for port in service.get("ports", [])
    ]
    assert published
    for name, port in published:
        assert port.startswith("127.0.0.1:"), (name, port)
