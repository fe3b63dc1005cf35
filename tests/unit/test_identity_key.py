"""`[privacy] identity_key`: the identity hashes' root kept apart from the master key, so a
master-key rotation keeps suppressed identifiers, link tags and graph keys; `journeys keys
rotate` refuses to change every hash unless told to (real RocksDB for the suppression)."""

from __future__ import annotations

import base64
import logging
from functools import partial
from pathlib import Path

import pytest

import tests.unit.test_stages as stages_under_test
from journeys.cli.privacy.keys import (
    IdentityHashesWouldChangeError,
    refuse_changing_hashes,
    rotate_command,
    rotate_local,
)
from journeys.settings import CHECK_BROKER, ConfigError, Settings, load_settings
from projections.identifiers import normalise
from streams.crypto.hashing import identity_key_id, tenant_secret
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.rotation import rotate_store
from streams.crypto.sealing import Sealer
from streams.crypto.startup import (
    WrongIdentityKeyError,
    check_identity_root,
    identity_root_of,
    record_identity_root,
)
from streams.stages.ingest import ingest
from streams.store import keys
from streams.store.state import LocalStore
from tests.unit.test_erasure import _customer, _erasure
from tests.unit.test_erasure_suppression import ACME, _event, _feed
from tests.unit.test_stages import PARTITIONS, Pipeline

OLD_KEY, NEW_KEY, ROOT_KEY = bytes(range(32)), bytes(range(1, 33)), bytes(range(5, 37))


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _settings(master: bytes, identity: bytes | None = None, **more: object) -> Settings:
    environ = {"JOURNEYS_MASTER_KEY": _b64(master)}
    if identity is not None:
        environ["JOURNEYS_IDENTITY_KEY"] = _b64(identity)
    settings = load_settings(None, environ)
    if more:
        privacy = settings.privacy.model_copy(update=more)
        settings = settings.model_copy(update={"privacy": privacy})
    return settings


def test_the_identity_key_comes_from_the_file_or_the_environment_and_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(
        f'[privacy]\nmaster_key = "{_b64(OLD_KEY)}"\nidentity_key = "{_b64(ROOT_KEY)}"\n',
        encoding="utf-8",
    )
    settings = load_settings(path, {})
    provider = settings.key_provider()
    assert provider is not None
    assert provider.identity_key_id == identity_key_id(ROOT_KEY)
    assert provider.identity_secret("acme") == tenant_secret(ROOT_KEY, "acme")
    assert provider.master_key_id == LocalKeyProvider(OLD_KEY).master_key_id  # wraps as before
    overridden = load_settings(path, {"JOURNEYS_IDENTITY_KEY": _b64(NEW_KEY)}).key_provider()
    assert overridden is not None
    assert overridden.identity_key_id == identity_key_id(NEW_KEY)
    with caplog.at_level(logging.INFO):
        logging.getLogger("journeys.test").info("%s %r %r", settings, settings.privacy, provider)
    shown = caplog.text + repr(settings) + str(settings) + repr(provider)
    assert _b64(ROOT_KEY) not in shown
    assert _b64(OLD_KEY) not in shown


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("!!!!not-base64!!!!", "not base64"),
        ("c2hvcnQ=", "decodes to 5 bytes; the identity key is 32 bytes"),
        (base64.b64encode(b"x" * 33).decode(), "33 bytes"),
    ],
)
def test_a_malformed_identity_key_is_a_config_error_naming_the_field_not_the_key(
    tmp_path: Path, bad: str, reason: str
) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(f'[privacy]\nidentity_key = "{bad}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as from_file:
        load_settings(path, {})
    assert "privacy.identity_key" in str(from_file.value)
    assert reason in str(from_file.value)
    with pytest.raises(ConfigError) as from_env:
        load_settings(None, {"JOURNEYS_IDENTITY_KEY": bad})
    assert "JOURNEYS_IDENTITY_KEY: the identity key" in str(from_env.value)
    assert reason in str(from_env.value)
    assert bad not in str(from_file.value) + str(from_env.value)


def test_without_an_identity_key_the_hashes_derive_from_the_master_key_as_before() -> None:
    provider = _settings(OLD_KEY).key_provider()
    assert provider is not None
    assert provider.identity_secret("acme") == tenant_secret(OLD_KEY, "acme")
    assert provider.identity_key_id == identity_key_id(OLD_KEY)
    assert _settings(OLD_KEY).privacy.identity_root() == OLD_KEY
    assert Settings().privacy.identity_root() is None


def test_the_old_master_key_as_identity_key_keeps_every_hash_after_a_rotation() -> None:
    before, after = _settings(OLD_KEY), _settings(NEW_KEY, identity=OLD_KEY)
    lost = _settings(NEW_KEY)  # the control: rotated without an identity key
    old, new, changed = before.key_provider(), after.key_provider(), lost.key_provider()
    assert old is not None
    assert new is not None
    assert changed is not None
    assert new.master_key_id != old.master_key_id  # data keys are wrapped by the new key
    key = normalise("email", "ann@x.org").key
    for tenant in ("acme", "globex"):
        assert new.identity_secret(tenant) == old.identity_secret(tenant)
        assert changed.identity_secret(tenant) != old.identity_secret(tenant)
        # link tags, as ingest writes them after a sealed value
        tag = Sealer(new).link_tag(tenant, key)
        assert tag == Sealer(old).link_tag(tenant, key)
        assert tag != Sealer(changed).link_tag(tenant, key)


def _tenant_suppressing(settings: Settings) -> Settings:
    tenants = Settings.model_validate({"tenants": {"acme": {"privacy": {"suppress_erased": True}}}})
    return settings.model_copy(update={"tenants": tenants.tenants})


@pytest.mark.parametrize("identity", [OLD_KEY, None], ids=["identity-key-set", "control"])
def test_suppression_survives_a_rotation_when_the_identity_key_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, identity: bytes | None
) -> None:
    suppressed: dict[tuple[str, str], int] = {}

    def run_with(settings: Settings, pipeline: Pipeline | None = None) -> Pipeline:
        settings = _tenant_suppressing(settings)
        suppression = settings.suppression()
        assert suppression is not None
        monkeypatch.setattr(
            stages_under_test,
            "ingest",
            partial(ingest, suppression=suppression, suppressed=suppressed),
        )
        if pipeline is None:
            return Pipeline(tmp_path, sealer=settings.sealer())
        pipeline.sealer = settings.sealer()
        return pipeline

    pipeline = run_with(_settings(OLD_KEY))
    _feed(pipeline, _event(email="ann@x.org"), _event(email="bo@x.org"))
    pipeline.append("touchpoints", b"acme", _erasure(_customer(pipeline, "ann@x.org")))
    pipeline.drain()
    assert list(pipeline.identity.items(ACME, keys.suppressed_prefix("acme")))
    old = LocalKeyProvider(OLD_KEY)
    done = rotate_store(pipeline.identity, PARTITIONS, old, LocalKeyProvider(NEW_KEY))
    assert done.rings == 1  # bo's: ann's ring went with the erasure
    run_with(_settings(NEW_KEY, identity=identity), pipeline)
    _feed(pipeline, _event(email="ANN@x.org"), _event(email="bo@x.org"))
    assert not pipeline.dead
    if identity is not None:
        assert suppressed == {("acme", "customer.email"): 1}
        with pytest.raises(AssertionError):
            _customer(pipeline, "ann@x.org")  # never stitched again
    else:
        assert suppressed == {}  # the hashes no longer match: the erased customer is back
        assert _customer(pipeline, "ann@x.org")


def test_rotation_refuses_to_change_every_hash_saying_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an unreachable broker: the refusal comes before any broker is asked
    settings = _settings(OLD_KEY, new_master_key=_b64(NEW_KEY)).with_bootstrap_servers(
        "127.0.0.1:1"
    )
    with pytest.raises(IdentityHashesWouldChangeError) as caught:
        refuse_changing_hashes(settings, change_hashes=False)
    hint = caught.value.hint or ""
    assert "[privacy] identity_key / JOURNEYS_IDENTITY_KEY to the current master key" in hint
    assert "--change-identity-hashes" in hint
    assert rotate_command(settings, tmp_path) == 2
    err = capsys.readouterr().err
    assert "[privacy] identity_key is not set" in err
    assert "--change-identity-hashes" in err
    assert CHECK_BROKER not in err
    assert _b64(OLD_KEY) not in err
    assert _b64(NEW_KEY) not in err


def test_rotation_goes_on_when_the_hashes_keep_their_root_or_may_change() -> None:
    kept = _settings(OLD_KEY, identity=OLD_KEY, new_master_key=_b64(NEW_KEY))
    assert refuse_changing_hashes(kept, change_hashes=False) == identity_key_id(OLD_KEY)
    assert refuse_changing_hashes(kept, change_hashes=True) == identity_key_id(OLD_KEY)
    changing = _settings(OLD_KEY, new_master_key=_b64(NEW_KEY))
    assert refuse_changing_hashes(changing, change_hashes=True) is None


def test_the_store_records_its_identity_root_and_a_worker_with_another_refuses(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "identity")
    try:
        assert identity_root_of(store) is None
        assert check_identity_root(store, None) is None  # nothing hashes: nothing recorded
        assert identity_root_of(store) is None
        first = identity_key_id(OLD_KEY)
        assert check_identity_root(store, first) == first  # first start: recorded
        assert identity_root_of(store) == first
        assert list(store.items(0)) == []  # outside every partition's state
        assert check_identity_root(store, first) == first
        for other in (identity_key_id(NEW_KEY), None):
            with pytest.raises(WrongIdentityKeyError) as caught:
                check_identity_root(store, other)
            assert first in str(caught.value)
            assert "JOURNEYS_IDENTITY_KEY" in str(caught.value)
            assert _b64(OLD_KEY) not in str(caught.value)
        assert identity_root_of(store) == first  # a refusal records nothing
    finally:
        store.close()


def test_rotation_refuses_an_identity_key_the_store_s_hashes_were_not_made_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "identity")
    record_identity_root(store, identity_key_id(OLD_KEY))
    store.close()
    fresh = _settings(
        OLD_KEY, identity=ROOT_KEY, new_master_key=_b64(NEW_KEY)
    ).with_bootstrap_servers("127.0.0.1:1")
    assert rotate_command(fresh, tmp_path) == 2  # refused before any broker is asked
    err = capsys.readouterr().err
    assert f"is identity root {identity_key_id(ROOT_KEY)}" in err
    assert f"were made with {identity_key_id(OLD_KEY)}" in err
    assert "to the current master key" in err
    assert CHECK_BROKER not in err
    assert _b64(ROOT_KEY) not in err


@pytest.mark.parametrize(
    ("identity", "root_after"), [(OLD_KEY, OLD_KEY), (None, NEW_KEY)], ids=["kept", "changed"]
)
def test_the_rotated_store_records_the_root_its_worker_will_hash_with(
    tmp_path: Path, identity: bytes | None, root_after: bytes
) -> None:
    store = LocalStore(tmp_path / "identity")
    record_identity_root(store, identity_key_id(OLD_KEY))  # as its worker started
    store.close()
    old, new = LocalKeyProvider(OLD_KEY), LocalKeyProvider(NEW_KEY)
    rotate_local(tmp_path, PARTITIONS, old, new, identity_key_id(root_after))
    after = _settings(NEW_KEY, identity=identity)  # the worker, started as the command says
    store = LocalStore(tmp_path / "identity")
    try:
        assert check_identity_root(store, after.privacy.identity_root_id())
        forgotten = _settings(NEW_KEY if identity else OLD_KEY)  # identity key dropped, or old
        with pytest.raises(WrongIdentityKeyError):
            check_identity_root(store, forgotten.privacy.identity_root_id())
    finally:
        store.close()
