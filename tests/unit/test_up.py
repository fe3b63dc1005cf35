"""`journeys up` runs its workers like `journeys worker --processes auto`, with this session's keys."""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from journeys.cli import app, up
from journeys.cli.worker import STAGES
from journeys.settings import load_settings
from journeys.supervisor import Supervisor, plan_children
from streams.crypto.keys import master_key_problem


def test_children_get_the_session_token_the_secret_and_the_embedded_broker() -> None:
    env = up.child_environment(
        {"PATH": "/bin", "JOURNEYS_API_TOKENS": "t1=acme"},
        bootstrap="127.0.0.1:9999",
        token="jl-session",
        peer_secret="s3cret",
    )
    assert env["PATH"] == "/bin"
    assert env["JOURNEYS_API_TOKENS"] == "t1=acme;jl-session=*"
    assert env["JOURNEYS_PEER_SECRET"] == "s3cret"
    assert env["JOURNEYS_BOOTSTRAP_SERVERS"] == "127.0.0.1:9999"


def test_children_of_a_configured_broker_keep_its_address() -> None:
    env = up.child_environment({}, bootstrap=None, token="jl-session", peer_secret="s")
    assert env["JOURNEYS_API_TOKENS"] == "jl-session=*"
    assert "JOURNEYS_BOOTSTRAP_SERVERS" not in env


def test_a_run_on_the_embedded_broker_seals_with_a_key_of_its_own() -> None:
    settings, key = up.with_session_master_key(load_settings(None, {}))
    assert key is not None
    assert master_key_problem(key) is None
    assert settings.privacy.master_key == key
    assert settings.sealer() is not None
    assert key not in repr(settings)
    env = up.child_environment({}, bootstrap=None, token="t", peer_secret="s", master_key=key)
    assert env["JOURNEYS_MASTER_KEY"] == key
    assert up.with_session_master_key(load_settings(None, {}))[1] != key  # one per run


def test_a_configured_master_key_is_kept() -> None:
    configured = up.session_master_key()
    settings = load_settings(None, {"JOURNEYS_MASTER_KEY": configured})
    kept, made = up.with_session_master_key(settings)
    assert made is None
    assert kept.privacy.master_key == configured
    assert "JOURNEYS_MASTER_KEY" not in up.child_environment(
        {}, bootstrap=None, token="t", peer_secret="s", master_key=made
    )


def test_a_supervisor_starts_its_children_with_the_environment_given(tmp_path: Path) -> None:
    check = "import os, sys; sys.exit(0 if os.environ.get('JOURNEYS_PEER_SECRET') == 'x' else 3)"
    (plan,) = plan_children(1, STAGES, tmp_path, None, None)
    supervisor = Supervisor(
        [plan], [sys.executable, "-c", check], env={"JOURNEYS_PEER_SECRET": "x"}
    )

    supervisor._start(supervisor.children[0])

    proc = supervisor.children[0].proc
    assert proc is not None
    assert proc.wait(30) == 0


def test_up_with_several_processes_runs_a_supervisor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[Supervisor] = []
    waited: list[str] = []
    monkeypatch.setattr(up, "ensure_topics_or_explain", lambda _settings: True)
    monkeypatch.setattr(up, "when_healthy", lambda url, _then: waited.append(url))
    monkeypatch.setattr(Supervisor, "run", lambda self: started.append(self) or 0)
    settings = load_settings(None, {"JOURNEYS_BOOTSTRAP_SERVERS": "127.0.0.1:1"})

    code = up.up_command(
        settings,
        demo=False,
        host="127.0.0.1",
        port=8123,
        data_dir=tmp_path,
        loglevel="warning",
        processes=2,
        root={"config": None, "bootstrap_servers": None},
    )

    assert code == 0
    (supervisor,) = started
    assert [c.plan.api_port for c in supervisor.children] == [8123, 0]
    assert [c.plan.data_dir for c in supervisor.children] == [
        tmp_path / "process-0",
        tmp_path / "process-1",
    ]
    assert supervisor.env is not None
    assert supervisor.env["JOURNEYS_API_TOKENS"].endswith("=*")
    assert len(supervisor.env["JOURNEYS_PEER_SECRET"]) >= 32
    assert "JOURNEYS_BOOTSTRAP_SERVERS" not in supervisor.env  # the configured broker is kept
    assert waited == ["http://127.0.0.1:8123"]


def test_up_refuses_a_bad_process_count() -> None:
    result = CliRunner().invoke(app, ["up", "--processes", "many"])
    assert result.exit_code == 2
    assert "positive number or auto" in result.output


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def health_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_banner_waits_for_the_api_to_answer(health_url: str) -> None:
    called = threading.Event()

    up.when_healthy(health_url, called.set).join(30)

    assert called.is_set()
