"""No token or password appears in a repr, a log line or an error message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from journeys.settings import ConfigError, Settings, load_settings

PASSWORD = "pw-3f9c1e7a-never-print-me"
TOKEN = "tok-8d1b5a2c-never-print-me"
PEER = "peer-5e0a77c1-never-print-me-0123456789"


def _settings(tmp_path: Path) -> Settings:
    path = tmp_path / "journeys.toml"
    path.write_text(
        "[kafka]\n"
        'security_protocol = "SASL_PLAINTEXT"\n'
        'sasl_mechanism = "PLAIN"\nsasl_username = "ledger"\n'
        f'sasl_password = "{PASSWORD}"\n'
        "[api]\n"
        f'tokens = [{{ token = "{TOKEN}", tenants = ["acme"] }}]\n'
        f'peer_secret = "{PEER}"\n',
        encoding="utf-8",
    )
    return load_settings(path, {})


def test_settings_reprs_hold_no_secret(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    kafka = settings.kafka_settings()
    assert kafka.sasl_password == PASSWORD  # still there for the clients
    for text in (repr(settings), str(settings), repr(settings.kafka), repr(kafka), str(kafka)):
        assert PASSWORD not in text
        assert TOKEN not in text
        assert PEER not in text
    assert settings.api.peer_secret == PEER


def test_the_peer_secret_comes_from_the_environment_and_must_be_long() -> None:
    settings = load_settings(None, {"JOURNEYS_PEER_SECRET": PEER})
    assert settings.api.peer_secret == PEER
    with pytest.raises(ConfigError, match="32 characters") as raised:
        load_settings(None, {"JOURNEYS_PEER_SECRET": "short-peer-secret"})
    assert "short-peer-secret" not in str(raised.value)


def test_logging_the_settings_shows_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    with caplog.at_level(logging.INFO):
        logging.getLogger("journeys.test").info(
            "settings %s %r", settings, settings.kafka_settings()
        )
    assert caplog.records
    assert PASSWORD not in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    "tokens",
    [
        'tokens = [{ token = "short-secret", tenants = ["acme"] }]',
        'tokens = [{ token = "short-secret", tenants = [] }]',
        'tokens = [{ token = "short-secret", tenants = ["acme"], colour = 1 }]',
    ],
)
def test_a_bad_token_entry_is_reported_without_the_token(tmp_path: Path, tokens: str) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(f"[api]\n{tokens}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert "short-secret" not in str(caught.value)
    assert "api.tokens" in str(caught.value)


def test_a_bad_environment_token_is_reported_without_the_token() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"JOURNEYS_API_TOKENS": "short-secret=acme"})
    assert "short-secret" not in str(caught.value)
