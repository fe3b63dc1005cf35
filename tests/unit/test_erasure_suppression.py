"""Suppression: a tenant that asks for it drops later events carrying an erased customer's
identifiers before stitching, keeping only keyed hashes of them (real RocksDB, both stages)."""

from __future__ import annotations

import base64
from datetime import timedelta
from functools import partial
from pathlib import Path

import orjson
import pytest

import tests.unit.test_stages as stages_under_test
from journeys.settings import ConfigError, load_settings
from projections.identifiers import normalise
from streams.crypto.hashing import HASH_PREFIX
from streams.crypto.suppression import Suppression
from streams.stages.identity.retention import expire
from streams.stages.ingest import ingest
from streams.store import keys
from streams.store.state import BatchState
from tests.factories import raw
from tests.unit.test_erasure import MASTER, _customer, _erasure, _sealer
from tests.unit.test_stages import NOW, PARTITIONS, Pipeline, partition_of

ACME = partition_of(b"acme")


def _event(tenant: str = "acme", **customer: str) -> bytes:
    document = raw(
        "message.received",
        {"text": "hello again", "medium": "email"},
        customer=customer,
        tenant=tenant,
    )
    return orjson.dumps(document)


def _pipeline(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suppressed: dict[tuple[str, str], int],
    tenants: tuple[str, ...] = ("acme",),
) -> Pipeline:
    suppression = Suppression(MASTER, tenants)
    monkeypatch.setattr(
        stages_under_test,
        "ingest",
        partial(ingest, suppression=suppression, suppressed=suppressed),
    )
    return Pipeline(tmp_path, sealer=_sealer())


def _feed(pipeline: Pipeline, *lines: bytes) -> None:
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()


def _identity_bytes(pipeline: Pipeline) -> bytes:
    return b"\n".join(
        key + b"=" + value
        for partition in range(PARTITIONS)
        for key, value in pipeline.identity.items(partition)
    )


def test_an_erased_customer_s_identifier_is_dropped_and_counted_by_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suppressed: dict[tuple[str, str], int] = {}
    pipeline = _pipeline(tmp_path, monkeypatch, suppressed)
    _feed(pipeline, _event(email="ann@x.org", phone="07700 900123"), _event(email="bo@x.org"))
    ann = _customer(pipeline, "ann@x.org")
    pipeline.append("touchpoints", b"acme", _erasure(ann))
    pipeline.drain()
    events_before = sum(len(log) for log in pipeline.events.values())
    _feed(
        pipeline,
        _event(email="ANN@x.org"),  # normalised as stitching does
        _event(phone="07700 900123", plate="AB12 CDE"),
        _event(email="bo@x.org", name="Bo"),
    )
    assert not pipeline.dead  # dropped, not dead-lettered: a dead letter keeps the values
    assert suppressed == {("acme", "customer.email"): 1, ("acme", "customer.phone"): 1}
    assert sum(len(log) for log in pipeline.events.values()) == events_before + 1
    with pytest.raises(AssertionError):
        _customer(pipeline, "ann@x.org")  # never stitched again
    state = _identity_bytes(pipeline)
    assert b"ann@x.org" not in state
    assert b"900123" not in state
    assert b"AB12" not in state
    hashes = [key for key, _ in pipeline.identity.items(ACME, keys.suppressed_prefix("acme"))]
    assert len(hashes) == 2  # the e-mail and the phone, hashed
    assert all(key.removeprefix(keys.suppressed_prefix("acme")).startswith(b"h:") for key in hashes)


def test_a_tenant_that_does_not_ask_stitches_the_same_values_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suppressed: dict[tuple[str, str], int] = {}
    pipeline = _pipeline(tmp_path, monkeypatch, suppressed, tenants=("globex",))
    _feed(pipeline, _event(email="ann@x.org"))
    pipeline.append("touchpoints", b"acme", _erasure(_customer(pipeline, "ann@x.org")))
    pipeline.drain()
    _feed(pipeline, _event(email="ann@x.org"))
    assert suppressed == {}
    assert _customer(pipeline, "ann@x.org")  # the customer starts again
    assert list(pipeline.identity.items(ACME, keys.Prefix.SUPPRESSED.value)) == []


def test_one_tenant_s_erasure_suppresses_nothing_in_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suppressed: dict[tuple[str, str], int] = {}
    pipeline = _pipeline(tmp_path, monkeypatch, suppressed, tenants=("acme", "globex"))
    _feed(pipeline, _event(email="ann@x.org"))
    pipeline.append("touchpoints", b"acme", _erasure(_customer(pipeline, "ann@x.org")))
    pipeline.drain()
    _feed(pipeline, _event(tenant="globex", email="ann@x.org"))
    assert suppressed == {}
    partition = partition_of(b"globex")
    key = keys.identifier_key("globex", "email:ann@x.org")
    assert pipeline.identity.get(partition, key) is not None


def test_an_erasure_by_retention_suppresses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suppressed: dict[tuple[str, str], int] = {}
    pipeline = _pipeline(tmp_path, monkeypatch, suppressed)
    _feed(pipeline, _event(email="ann@x.org"))
    state = BatchState(pipeline.identity, ACME)
    assert expire(state, {"acme": 1}, NOW + timedelta(days=400), pipeline.sealer)
    pipeline.identity.write(ACME, state.changes)
    _feed(pipeline, _event(email="ann@x.org"))
    assert suppressed == {}
    assert _customer(pipeline, "ann@x.org")  # a silent customer who comes back is welcome


def test_the_hash_is_keyed_per_tenant_and_shows_nothing() -> None:
    suppression = Suppression(MASTER, ["acme", "globex"])
    key = normalise("email", "ann@x.org").key
    acme, globex = suppression.hashed("acme", key), suppression.hashed("globex", key)
    assert acme.startswith(HASH_PREFIX)
    assert acme == suppression.hashed("acme", key)
    assert acme != globex
    assert "ann" not in acme
    assert Suppression(bytes(32), ["acme"]).hashed("acme", key) != acme  # keyed
    assert "secret" not in repr(suppression)
    assert repr(MASTER) not in repr(suppression)
    assert not suppression.covers("initech")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journeys.toml"
    path.write_text(text)
    return path


def test_suppression_without_a_master_key_is_refused_naming_the_settings(tmp_path: Path) -> None:
    path = _config(tmp_path, "[tenants.acme.privacy]\nsuppress_erased = true\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert "tenants.acme.privacy.suppress_erased" in str(caught.value)
    assert "JOURNEYS_MASTER_KEY" in str(caught.value)
    key = base64.b64encode(MASTER).decode()
    settings = load_settings(path, {"JOURNEYS_MASTER_KEY": key})
    suppression = settings.suppression()
    assert suppression is not None
    assert suppression.covers("acme")
    assert key not in repr(settings)


def test_retention_days_are_read_per_tenant_and_checked(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "[tenants.acme.privacy]\nretention_days = 365\n[tenants.globex]\ndefault_region = 'GB'\n",
    )
    settings = load_settings(path, {})
    assert dict(settings.retention_days()) == {"acme": 365}
    assert settings.suppression() is None
    bad = _config(tmp_path, "[tenants.acme.privacy]\nretention_days = 0\n")
    with pytest.raises(ConfigError, match=r"tenants\.acme\.privacy\.retention_days"):
        load_settings(bad, {})
