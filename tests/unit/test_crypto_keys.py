"""Data keys wrapped by the master key: rotation, a wrong key named clearly, no key shown."""

from __future__ import annotations

import base64
import logging
import random
from pathlib import Path

import pytest

from journeys.settings import ConfigError, Settings, load_settings
from schemas.errors import JourneyLedgerError
from streams.crypto.keys import (
    KeyProvider,
    LocalKeyProvider,
    MalformedWrappedKeyError,
    WrappedKey,
    WrongMasterKeyError,
    master_key_problem,
    new_data_key,
    rewrap,
)

MASTER = bytes(range(32))
OTHER = bytes(range(100, 132))
MASTER_B64 = base64.b64encode(MASTER).decode()


def seeded(seed: int = 7) -> random.Random:
    """A deterministic random source for nonces and keys."""
    return random.Random(seed)


def test_a_wrapped_key_unwraps_to_the_data_key_and_shows_neither() -> None:
    provider = LocalKeyProvider(MASTER, seeded().randbytes)
    data = new_data_key(seeded(1).randbytes)
    wrapped = provider.wrap(data.key, data.key_id)
    assert provider.unwrap(wrapped) == data.key
    assert wrapped.master_key_id == provider.master_key_id
    text = wrapped.to_text()
    assert text.startswith(f"wk:v1:{provider.master_key_id}:{data.key_id}:")
    assert WrappedKey.parse(text) == wrapped
    assert data.key not in wrapped.blob
    for shown in (repr(provider), repr(data), str(data), text):
        assert MASTER_B64 not in shown
        assert base64.b64encode(data.key).decode() not in shown
        assert data.key.hex() not in shown
    assert base64.b64encode(wrapped.blob).decode() not in repr(wrapped)
    assert data.key_id in repr(wrapped)


def test_the_master_key_id_is_stable_and_tells_master_keys_apart() -> None:
    assert LocalKeyProvider(MASTER).master_key_id == LocalKeyProvider(MASTER).master_key_id
    assert LocalKeyProvider(MASTER).master_key_id != LocalKeyProvider(OTHER).master_key_id
    assert LocalKeyProvider(MASTER).master_key_id.startswith("mk_")


def test_the_local_provider_is_a_key_provider() -> None:
    provider: KeyProvider = LocalKeyProvider(MASTER)
    assert provider.master_key_id


def test_another_master_key_is_a_clear_error_naming_the_setting() -> None:
    data = new_data_key()
    wrapped = LocalKeyProvider(MASTER).wrap(data.key, data.key_id)
    with pytest.raises(WrongMasterKeyError) as raised:
        LocalKeyProvider(OTHER).unwrap(wrapped)
    message = str(raised.value)
    assert isinstance(raised.value, JourneyLedgerError)
    assert "[privacy] master_key" in message
    assert "JOURNEYS_MASTER_KEY" in message
    assert MASTER_B64 not in message
    assert base64.b64encode(OTHER).decode() not in message


def test_an_altered_or_swapped_wrapped_key_does_not_unwrap() -> None:
    provider = LocalKeyProvider(MASTER)
    one, two = new_data_key(), new_data_key()
    wrapped = provider.wrap(one.key, one.key_id)
    flipped = bytearray(wrapped.blob)
    flipped[-1] ^= 1
    with pytest.raises(WrongMasterKeyError, match="altered"):
        provider.unwrap(WrappedKey(wrapped.master_key_id, wrapped.key_id, bytes(flipped)))
    # the same blob filed under another customer's data key id does not unwrap either
    with pytest.raises(WrongMasterKeyError):
        provider.unwrap(WrappedKey(wrapped.master_key_id, two.key_id, wrapped.blob))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "wk:v2:mk_000000000000:dk_0000000000000000:AAAA",
        "wk:v1:mk_000000000000:dk_0000000000000000",
        "wk:v1:mk_0:dk_0000000000000000:AAAA",
        "wk:v1:mk_000000000000:dk_0000000000000000:not base64!",
    ],
)
def test_a_malformed_wrapped_key_is_refused(text: str) -> None:
    with pytest.raises(MalformedWrappedKeyError):
        WrappedKey.parse(text)


def test_rotation_rewraps_data_keys_without_changing_them() -> None:
    old, new = LocalKeyProvider(MASTER), LocalKeyProvider(OTHER)
    data = new_data_key()
    wrapped = old.wrap(data.key, data.key_id)
    rotated = rewrap(wrapped, old, new)
    assert rotated.master_key_id == new.master_key_id
    assert rotated.key_id == data.key_id
    assert new.unwrap(rotated) == data.key
    assert rewrap(rotated, old, new) == rotated  # a rotation may be run again
    with pytest.raises(WrongMasterKeyError):
        old.unwrap(rotated)


def test_the_local_provider_needs_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        LocalKeyProvider(b"short")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not base64 at all!", "not base64"),
        (base64.b64encode(b"sixteen bytes..!").decode(), "16 bytes"),
        (MASTER_B64, None),
        (f"  {MASTER_B64}\n", None),
    ],
)
def test_master_key_problems_name_the_reason(text: str, reason: str | None) -> None:
    problem = master_key_problem(text)
    assert problem is None if reason is None else reason in (problem or "")


def test_the_master_key_comes_from_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(f'[privacy]\nmaster_key = "{MASTER_B64}"\n', encoding="utf-8")
    settings = load_settings(path, {})
    provider = settings.key_provider()
    assert provider is not None
    assert provider.master_key_id == LocalKeyProvider(MASTER).master_key_id
    for shown in (repr(settings), str(settings), repr(settings.privacy), repr(provider)):
        assert MASTER_B64 not in shown


def test_no_master_key_means_no_provider() -> None:
    assert Settings().key_provider() is None


def test_the_environment_overrides_the_master_key(tmp_path: Path) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(f'[privacy]\nmaster_key = "{MASTER_B64}"\n', encoding="utf-8")
    other = base64.b64encode(OTHER).decode()
    provider = load_settings(path, {"JOURNEYS_MASTER_KEY": other}).key_provider()
    assert provider is not None
    assert provider.master_key_id == LocalKeyProvider(OTHER).master_key_id


@pytest.mark.parametrize(
    "bad", ["c2hvcnQ=", "!!!!not-base64!!!!", base64.b64encode(b"x" * 33).decode()]
)
def test_a_malformed_master_key_is_a_config_error_naming_the_field_not_the_key(
    tmp_path: Path, bad: str
) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(f'[privacy]\nmaster_key = "{bad}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as from_file:
        load_settings(path, {})
    assert "privacy.master_key" in str(from_file.value)
    assert bad not in str(from_file.value)
    with pytest.raises(ConfigError) as from_env:
        load_settings(None, {"JOURNEYS_MASTER_KEY": bad})
    assert "JOURNEYS_MASTER_KEY" in str(from_env.value)
    assert bad not in str(from_env.value)


def test_a_tenant_marks_fields_personal_in_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(
        '[tenants.acme]\npersonal = ["payload.vehicle_model", "source.actor"]\n',
        encoding="utf-8",
    )
    assert load_settings(path, {}).tenants["acme"].personal == (
        "payload.vehicle_model",
        "source.actor",
    )
    path.write_text('[tenants.acme]\npersonal = ["event_id"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tenants\.acme\.personal"):
        load_settings(path, {})


def test_logging_the_settings_shows_no_master_key(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(None, {"JOURNEYS_MASTER_KEY": MASTER_B64})
    with caplog.at_level(logging.INFO):
        logging.getLogger("journeys.test").info("settings %s %r", settings, settings.privacy)
    assert caplog.records
    assert MASTER_B64 not in caplog.text
