"""`[notify]` settings: refused when malformed, naming the field; secrets never shown."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from journeys.settings import ConfigError, load_settings

SECRET = "whsec_" + base64.b64encode(b"never-print-this-key-0123456789").decode()
PASSWORD = "smtp-pw-never-print-me"


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journeys.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_notify_section_means_nobody_is_notified() -> None:
    assert not load_settings(None, {}).notify_settings().active


def test_a_subscription_that_leaves_things_out_covers_them_all(tmp_path: Path) -> None:
    path = settings_file(
        tmp_path,
        f'[[notify.webhooks]]\nurl = "https://hooks.example/in"\nsecret = "{SECRET}"\n'
        "[[notify.webhooks]]\n"
        f'url = "http://127.0.0.1:9000/x"\nsecret = "{SECRET}"\n'
        'tenants = ["acme"]\nrules = ["DUPLICATE_ORDER"]\nsites = ["leeds"]\n'
        'min_severity = "high"\nchanges = ["opened", "resolved"]\n'
        "[api]\n"
        'advertised_url = "https://ledger.example"\n',
    )
    notify = load_settings(path, {}).notify_settings()
    assert notify.active
    everything, narrow = (w.filter for w in notify.webhooks)
    assert (everything.tenants, everything.rules, everything.sites) == (None, None, None)
    assert everything.min_severity == "low"
    assert everything.changes == {"opened", "reopened"}
    assert narrow.tenants == {"acme"}
    assert narrow.sites == {"leeds"}
    assert narrow.min_severity == "high"
    assert narrow.changes == {"opened", "resolved"}
    assert notify.journey_url == "https://ledger.example"


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example/in", "file:///etc/passwd", "hooks.example/in", "https://"]
)
def test_a_webhook_url_that_is_not_http_is_refused_naming_the_field(
    tmp_path: Path, url: str
) -> None:
    path = settings_file(tmp_path, f'[[notify.webhooks]]\nurl = "{url}"\nsecret = "{SECRET}"\n')
    with pytest.raises(ConfigError, match=r"notify\.webhooks\.0\.url: .*http"):
        load_settings(path, {})


@pytest.mark.parametrize(
    "secret",
    [
        "not-a-whsec-secret-at-all-0123456789",
        "whsec_this is not base64 at all!",
        "whsec_" + base64.b64encode(b"too-short").decode(),
    ],
)
def test_a_malformed_secret_is_refused_without_showing_it(tmp_path: Path, secret: str) -> None:
    path = settings_file(
        tmp_path, f'[[notify.webhooks]]\nurl = "https://h.example/"\nsecret = "{secret}"\n'
    )
    with pytest.raises(ConfigError, match=r"notify\.webhooks\.0\.secret") as raised:
        load_settings(path, {})
    assert secret not in str(raised.value)


def test_unknown_change_kinds_and_severities_are_refused(tmp_path: Path) -> None:
    path = settings_file(
        tmp_path,
        f'[[notify.webhooks]]\nurl = "https://h.example/"\nsecret = "{SECRET}"\n'
        'changes = ["exploded"]\nmin_severity = "urgent"\n',
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path, {})
    assert "notify.webhooks.0.changes" in str(raised.value)
    assert "notify.webhooks.0.min_severity" in str(raised.value)


def email_file(tmp_path: Path, extra: str = "") -> Path:
    return settings_file(
        tmp_path,
        "[notify.email]\n"
        'host = "smtp.example"\nport = 2525\nstarttls = false\nfrom = "ledger@example.com"\n'
        f'username = "ledger"\npassword = "{PASSWORD}"\n'
        'recipients = { leeds = ["leeds@example.com"], "*" = ["ops@example.com"] }\n'
        f"{extra}"
        f'[[notify.webhooks]]\nurl = "https://h.example/"\nsecret = "{SECRET}"\n',
    )


def test_email_settings_are_read(tmp_path: Path) -> None:
    email = load_settings(email_file(tmp_path), {}).notify_settings().email
    assert email is not None
    assert (email.host, email.port, email.starttls, email.sender) == (
        "smtp.example",
        2525,
        False,
        "ledger@example.com",
    )
    assert dict(email.recipients) == {"leeds": ("leeds@example.com",), "*": ("ops@example.com",)}
    assert email.password == PASSWORD


def test_a_bad_recipient_is_refused(tmp_path: Path) -> None:
    path = settings_file(
        tmp_path,
        '[notify.email]\nhost = "smtp.example"\nfrom = "l@example.com"\n'
        'recipients = { leeds = ["not an address"] }\n',
    )
    with pytest.raises(ConfigError, match=r"notify\.email\.recipients"):
        load_settings(path, {})


def test_secrets_are_absent_from_every_repr(tmp_path: Path) -> None:
    settings = load_settings(email_file(tmp_path), {})
    notify = settings.notify_settings()
    texts = [repr(settings), str(settings), repr(settings.notify), repr(notify)]
    texts += [repr(notify.email), repr(notify.webhooks[0]), str(notify.webhooks)]
    for text in texts:
        assert SECRET not in text
        assert SECRET.removeprefix("whsec_") not in text
        assert PASSWORD not in text
