"""Small parts of the worker and its settings: deadlines, flag change ids, API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from journeys.settings import ConfigError, load_settings, parse_tokens
from projections.flag_changes import change_id
from streams.stages.journey.stage import DeadlineIndex
from streams.store import keys

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_deadline_index_reports_only_what_has_passed() -> None:
    index = DeadlineIndex()
    index.load(
        0,
        [
            (keys.deadline_key(("acme", "c1")), T.isoformat().encode()),
            (keys.deadline_key(("acme", "c2")), (T + timedelta(hours=2)).isoformat().encode()),
        ],
    )
    assert index.due(0, T + timedelta(hours=1)) == [("acme", "c1")]
    index.set(0, ("acme", "c1"), None)
    index.set(0, ("acme", "c3"), T)
    assert index.due(0, T + timedelta(hours=3)) == [("acme", "c2"), ("acme", "c3")]
    index.forget(0)
    assert index.due(0, T + timedelta(days=1)) == []


def test_change_ids_are_stable_and_distinguish_what_matters() -> None:
    first = change_id("c1", "f1", "opened", T, None)
    assert first == change_id("c1", "f1", "opened", T, None)
    assert first.startswith("chg_")
    others = {
        change_id("c2", "f1", "opened", T, None),
        change_id("c1", "f2", "opened", T, None),
        change_id("c1", "f1", "resolved", T, T),
        change_id("c1", "f1", "opened", T + timedelta(seconds=1), None),
    }
    assert first not in others
    assert len(others) == 4


def test_tokens_from_the_environment() -> None:
    entries = parse_tokens("aaaaaaaaaaaaaaaa=acme,northwind; bbbbbbbbbbbbbbbb=*")
    assert [e.tenants for e in entries] == [("acme", "northwind"), ("*",)]
    settings = load_settings(None, {"JOURNEYS_API_TOKENS": "cccccccccccccccc=acme"})
    assert [e.tenants for e in settings.api.tokens] == [("acme",)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("short=acme", "16 characters"),
        ("aaaaaaaaaaaaaaaa", "TOKEN=TENANT"),
        ("aaaaaaaaaaaaaaaa=", "TOKEN=TENANT"),
    ],
)
def test_malformed_tokens_name_the_entry(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        parse_tokens(text)
    assert "JOURNEYS_API_TOKENS: entry 1" in str(caught.value)


def test_a_broker_named_anywhere_counts_as_configured() -> None:
    assert not load_settings(None, {}).bootstrap_configured
    assert load_settings(None, {"JOURNEYS_BOOTSTRAP_SERVERS": "k:9092"}).bootstrap_configured


def test_every_kafka_setting_reaches_the_clients() -> None:
    import dataclasses

    from journeys.settings import KafkaSection, Settings
    from streams.config import KafkaSettings

    section_fields = set(KafkaSection.model_fields)
    assert section_fields <= {field.name for field in dataclasses.fields(KafkaSettings)}
    values = {"bootstrap_servers": "b:1", "topic_prefix": "p", "partitions": 7}
    built = Settings.model_validate({"kafka": values}).kafka_settings()
    assert (built.bootstrap_servers, built.topic_prefix, built.partitions) == ("b:1", "p", 7)


def test_tokens_name_a_role_and_a_user() -> None:
    viewer, manager, admin = parse_tokens(
        "aaaaaaaaaaaaaaaa=acme; bbbbbbbbbbbbbbbb=acme,northwind@manager/sam@acme;"
        "cccccccccccccccc=*@admin"
    )
    assert (viewer.role, viewer.user) == ("viewer", None)
    assert (manager.tenants, manager.role, manager.who) == (
        ("acme", "northwind"),
        "manager",
        "sam@acme",
    )
    assert admin.role == "admin"
    assert admin.who.startswith("token-")
    assert len(admin.who) == len("token-") + 4
    assert "cccc" not in admin.who  # derived from the token, never showing it
    assert admin.may("manager")
    assert manager.may("manager")
    assert not manager.may("admin")
    assert not viewer.may("manager")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("aaaaaaaaaaaaaaaa=acme@boss", "role"),
        ("aaaaaaaaaaaaaaaa=acme@/sam", "role"),
        ("aaaaaaaaaaaaaaaa=acme@manager/sam\x1bacme", "user"),
    ],
)
def test_a_bad_role_or_user_is_refused_without_the_token(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        parse_tokens(text)
    assert "aaaaaaaa" not in str(caught.value)


def test_tokens_in_the_settings_file_take_a_role_and_user(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        "[api]\ntokens = [\n"
        '  { token = "aaaaaaaaaaaaaaaa", tenants = ["acme"], user = "sam@acme", role = "manager" },\n'
        '  { token = "bbbbbbbbbbbbbbbb", tenants = ["acme"] },\n]\n',
        encoding="utf-8",
    )
    manager, plain = load_settings(path, {}).api.tokens
    assert (manager.who, manager.role) == ("sam@acme", "manager")
    assert plain.role == "viewer"
    assert parse_tokens("aaaaaaaaaaaaaaaa=acme@admin/Sam Smith")[0].who == "Sam Smith"
    path.write_text(
        '[api]\ntokens = [{ token = "aaaaaaaaaaaaaaaa", tenants = ["acme"], role = "owner" }]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="role") as caught:
        load_settings(path, {})
    assert "aaaaaaaa" not in str(caught.value)


def test_the_session_token_of_journeys_up_acts_as_admin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from journeys.cli import up
    from journeys.settings import TokenEntry

    seen: list[tuple[TokenEntry, ...]] = []

    def worker_command(settings: object, *_args: object, **_kwargs: object) -> int:
        seen.append(settings.api.tokens)  # type: ignore[attr-defined]
        return 0

    monkeypatch.setattr(up, "worker_command", worker_command)
    settings = load_settings(None, {"JOURNEYS_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    up.up_command(
        settings, demo=False, host="127.0.0.1", port=0, data_dir=tmp_path, loglevel="warning"
    )
    ((session,),) = seen
    assert (session.role, session.who, session.tenants) == ("admin", "admin", ("*",))
