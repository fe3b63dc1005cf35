"""The hashed identity graph (issue 16): with sealing on, graph keys are keyed hashes.

The pure fold with a `GraphHasher` groups the same events into the same customers and opens
the same flags as without, up to a one-to-one renaming of customer ids (the ids derive from
hashed keys, so they are keyed too). Over real RocksDB, ingest's whole store and every record
it would send to the identity changelog hold no identifier in any normalised form, while the
same pipeline without the hasher (the control) holds them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys.cli.check import check_lines
from journeys.settings import Settings
from projections.identifiers import HASHED_MARK, GraphHasher, is_hashed_key, normalise
from projections.identity import DEFAULT_LIMITS, customer_id_for, identity_number
from projections.ledger import fold
from projections.settings import FoldSettings
from schemas.codec import decode_event, encode_event
from schemas.events import Event
from schemas.outputs import HEADER_KIND, KIND_EVENT
from streams.crypto.fields import link_tag
from streams.crypto.hashing import GRAPH_TAG_PREFIX, graph_key_tag
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.sealing import Sealer
from streams.store import keys
from streams.store.state import LocalStore
from tests.support.canary import scan_blob
from tests.unit.test_erasure import _erasure as erasure
from tests.unit.test_erasure_suppression import _event as message
from tests.unit.test_erasure_suppression import _feed as feed
from tests.unit.test_erasure_suppression import _pipeline as suppressing
from tests.unit.test_identity_limits import _shared_phone_lines, logs
from tests.unit.test_identity_rules import BLOCK, SHOP, _settings
from tests.unit.test_identity_split import (
    CAROL_AGAIN,
    MERGED_THEN_SPLIT,
    SWITCHBOARD_ONLY,
    UNBLOCK,
)
from tests.unit.test_identity_split_sealed import CASES as SPLIT_CASES
from tests.unit.test_identity_split_sealed import _regroups as regroups
from tests.unit.test_properties import Scenario, scenarios
from tests.unit.test_stages import NOW, PARTITIONS, Pipeline, partition_of

MASTER = bytes(range(32))
PROVIDER = LocalKeyProvider(MASTER)

BUDGET = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
"""MASTER in base64, as `[privacy] master_key` holds it."""


def hashed(fold_settings: FoldSettings) -> FoldSettings:
    """The same settings (blocking nothing) with the graph hashed under MASTER's tenant
    secrets, as a worker with that master key folds."""
    assert not any(p.blocked for p in fold_settings.identity.values())
    return replace(fold_settings, identity_secret=PROVIDER.identity_secret)


def _keyed(identity: dict[str, Any] | None = None, region: str | None = "GB") -> FoldSettings:
    """`_settings` read with MASTER as the master key: blocked values hashed at load."""
    tenant: dict[str, Any] = {"default_region": region} if region else {}
    if identity is not None:
        tenant["identity"] = identity
    config = {"privacy": {"master_key": KEY}, "tenants": {"acme": tenant}}
    return Settings.model_validate(config).fold_settings()


def test_a_graph_key_keeps_its_structure_and_holds_no_value() -> None:
    hasher = GraphHasher(PROVIDER.identity_secret("acme"))
    email = normalise("email", " Carol@Example.com ", None, hasher)
    assert email.value == "carol@example.com"  # clear in memory, for patterns and displays
    kind, _, value = email.key.partition(":")
    assert kind == "email"
    assert value.startswith(HASHED_MARK)
    assert ":" not in value
    assert len(value) == 28  # "#" and 160 bits in base64url
    assert "carol" not in email.key
    assert email.hashed
    phone = normalise("phone", "+44 113 496 0000", None, hasher)
    national = normalise("phone", "0113 496 0000", None, hasher)
    assert phone.key == f"phone:+44:{national.key.partition(':')[2]}"
    assert phone.phone is not None
    assert phone.phone.national_key == national.key
    assert "1134960000" not in phone.key
    assert phone.named.startswith("+44#")
    # the same value in another tenant, or clear, is another key; no secret in a repr
    other = normalise("email", "carol@example.com", None, GraphHasher(b"x" * 32))
    assert other.key != email.key != normalise("email", "carol@example.com").key
    assert "secret=…" in repr(hasher)
    assert repr(MASTER) not in repr(hasher)


def test_the_settings_hash_the_graph_only_with_a_master_key() -> None:
    clear = Settings.model_validate({}).fold_settings()
    assert clear.hasher_for("acme") is None
    sealed = _keyed({"blocked": {"phone": ["0113 496 0000"]}}, None)
    assert sealed.hasher_for("acme") == GraphHasher(PROVIDER.identity_secret("acme"))
    assert sealed.hasher_for("acme") != sealed.hasher_for("other")
    (blocked,) = sealed.identity_for("acme").blocked
    assert blocked.startswith(f"phone:{HASHED_MARK}")


def _renaming(clear: Iterable[Any], keyed: Iterable[Any]) -> dict[str, str]:
    """Clear customer id -> hashed one, for journeys holding the same events; fails unless the
    two foldings group the events alike and the renaming is one-to-one."""
    by_events = {(j.tenant, frozenset(e.event_id for e in j.events)): j for j in keyed}
    renaming: dict[str, str] = {}
    for journey in clear:
        twin = by_events.pop((journey.tenant, frozenset(e.event_id for e in journey.events)))
        renaming[journey.customer_id] = twin.customer_id
    assert not by_events
    assert len(set(renaming.values())) == len(renaming)
    return renaming


def _flags(journeys: Iterable[Any], conflicts: Any, renaming: dict[str, str] | None) -> Any:
    """Each customer's flags as rule, opening time and events (messages name the customers)."""
    found = set()
    for journey in journeys:
        customer = journey.customer_id if renaming is None else renaming[journey.customer_id]
        for flag in (*getattr(journey, "flags", ()), *conflicts(journey)):
            found.add((customer, flag.rule, flag.opened_at, flag.event_ids, flag.systems))
    return found


def _same_up_to_renaming(
    events: list[Event], fold_settings: FoldSettings, keyed_settings: FoldSettings | None = None
) -> None:
    keyed_settings = keyed_settings or hashed(fold_settings)
    clear, keyed = fold(events, fold_settings), fold(events, keyed_settings)
    renaming = _renaming(clear, keyed)
    for tenant, graph in keyed.identities.items():  # no clear key in the hashed graph
        assert all(HASHED_MARK in key for key in graph.index if not key.startswith("event:")), (
            tenant
        )
    lines = [encode_event(e) for e in events]
    as_of = max((e.occurred_at for e in events), default=NOW)
    clear_view = check_lines(lines, fold_settings, as_of).journeys
    keyed_view = check_lines(lines, keyed_settings, as_of).journeys
    assert _renaming(clear_view, keyed_view) == renaming
    none: Any = lambda _: ()  # noqa: E731 - check's views already carry the conflict flags
    assert _flags(clear_view, none, renaming) == _flags(keyed_view, none, None)
    assert _flags(clear, lambda j: clear.conflicts_of(j.tenant, j.customer_id), renaming) == (
        _flags(keyed, lambda j: keyed.conflicts_of(j.tenant, j.customer_id), None)
    )


@BUDGET
@given(scenario=scenarios(max_events=18))
def test_the_hashed_fold_of_multi_tenant_scenarios_is_the_clear_one_renamed(
    scenario: Scenario,
) -> None:
    _same_up_to_renaming(list(scenario.events), FoldSettings())


NO_LIMITS = {"limits": {"customer_ref": 0, "membership_id": 0, "email": 0, "phone": 0}}


@BUDGET
@given(events=logs(), region=st.sampled_from([None, "GB"]))
def test_the_hashed_fold_with_decisions_is_the_clear_one_renamed(
    events: list[Event], region: str | None
) -> None:
    """People's blocks, unblocks, splits and confirmations, limits off: see the next test."""
    _same_up_to_renaming(events, _settings(NO_LIMITS, region), _keyed(NO_LIMITS, region))


@BUDGET
@given(events=logs(decisions=False))
def test_the_hashed_fold_keeps_the_limits(events: list[Event]) -> None:
    """Past a limit, the value's first holder in the canonical key order keeps it: hashed keys
    sort otherwise, so another customer may keep it than in a clear fold (README). What holds:
    no customer over a limit, ids from its keys alone, and check equal to the fold."""
    ledger = fold(events, _keyed())
    for customer, members in ledger.identities["acme"].member_sets.items():
        assert customer == customer_id_for("acme", members)
        for kind, limit in DEFAULT_LIMITS.items():
            numbers = {identity_number(key)[1] for key in members if key.startswith(kind + ":")}
            assert len(numbers) <= limit, (kind, sorted(members))
    lines = [encode_event(e) for e in events]
    as_of = max(e.occurred_at for e in events)
    viewed = check_lines(lines, _keyed(), as_of).journeys
    assert _renaming(ledger, viewed) == {j.customer_id: j.customer_id for j in ledger}


def test_blocked_values_of_the_settings_block_in_a_hashed_graph() -> None:
    events = [decode_event(line) for line in SHOP]
    blocking = {"blocked": {"phone": ["0113 496 0000"]}}
    _same_up_to_renaming(events, _settings(blocking), _keyed(blocking))
    assert len(list(fold(events, _keyed(blocking)))) == 2
    assert len(list(fold(events, _keyed()))) == 1


# The identifiers the scenarios below carry, and the national number of their phones.
MARKERS = (
    "carol@example.com",
    "dave@example.com",
    "1134960000",
    "+441134960000",
    "ann@shop.net",
    "bea@shop.net",
    "cat@shop.net",
    "7700900123",
    "7700900456",
    "ACME-1",
    "ACME-2",
    "AB12CDE",
)
LINES = [*MERGED_THEN_SPLIT, *SHOP, CAROL_AGAIN, SWITCHBOARD_ONLY, BLOCK, UNBLOCK]


def _sealed_run(root: Path, lines: list[bytes], keyed: bool, seed: int) -> Pipeline:
    pipeline = Pipeline(root, sealer=Sealer(LocalKeyProvider(MASTER)), batch_size=3, seed=seed)
    pipeline.settings = hashed(_settings()) if keyed else _settings()
    sent: list[dict[bytes, bytes | None]] = []
    store: LocalStore = pipeline.identity
    write = store.write

    def keep(partition: int, changes: dict[bytes, bytes | None], *rest: Any) -> None:
        sent.append(dict(changes))  # what the runner sends to the identity changelog
        write(partition, changes, *rest)

    store.write = keep  # type: ignore[method-assign]
    for line in lines:
        tenant = orjson.loads(line)["tenant"].encode()
        pipeline.append("touchpoints", tenant, line)
    pipeline.drain()
    pipeline.changelog = sent  # type: ignore[attr-defined]
    return pipeline


def _identity_hits(pipeline: Pipeline) -> list[str]:
    blobs = [
        blob
        for partition in range(PARTITIONS)
        for key, value in pipeline.identity.items(partition)
        for blob in (key, value)
    ]
    blobs += [
        blob
        for changes in pipeline.changelog  # type: ignore[attr-defined]
        for key, value in changes.items()
        for blob in (key, value or b"")
    ]
    return sorted({hit.marker for blob in blobs for hit in scan_blob(blob, MARKERS)})


@pytest.mark.parametrize("seed", range(2))
def test_ingest_s_store_and_changelog_hold_no_identifier_with_the_graph_hashed(
    tmp_path: Path, seed: int
) -> None:
    lines = list(LINES) + _shared_phone_lines()
    random.Random(seed).shuffle(lines)
    control = _sealed_run(tmp_path / "control", lines, False, seed)
    assert {"carol@example.com", "1134960000", "ann@shop.net"} <= set(_identity_hits(control))
    pipeline = _sealed_run(tmp_path / "hashed", lines, True, seed)
    assert pipeline.dead == control.dead == []
    assert _identity_hits(pipeline) == []
    # every event stored (how they group under the limits: the next test)
    clear, keyed = control.stored(), pipeline.stored()
    assert sorted(e for ids in clear.values() for e in ids) == sorted(
        e for ids in keyed.values() for e in ids
    )


@pytest.mark.parametrize("seed", range(3))
def test_sealed_stages_with_a_hashed_graph_store_what_journeys_check_gives(
    tmp_path: Path, seed: int
) -> None:
    """Live ids equal `journeys check`'s with the same master key (both hash alike)."""
    lines = [*LINES, *_shared_phone_lines()]
    random.Random(seed).shuffle(lines)
    pipeline = _sealed_run(tmp_path, lines, True, seed)
    offline = check_lines(lines, hashed(_settings()), NOW)
    expected = {(j.tenant, j.customer_id): [e.event_id for e in j.events] for j in offline.journeys}
    live = {
        ref: ids for ref, ids in pipeline.stored().items() if not ids[0].startswith(("d-", "dec-"))
    }
    assert {r: sorted(i) for r, i in live.items()} == {r: sorted(i) for r, i in expected.items()}


def test_a_hashed_customer_id_cannot_be_tested_against_a_guess() -> None:
    """Clear ids are a digest of the smallest key anyone can compute; hashed ones are keyed."""
    events = [decode_event(line) for line in SHOP]
    clear = {j.customer_id for j in fold(events, _settings())}
    keyed = {j.customer_id for j in fold(events, hashed(_settings()))}
    secret = LocalKeyProvider(bytes(32)).identity_secret
    other = {j.customer_id for j in fold(events, replace(_settings(), identity_secret=secret))}
    assert clear.isdisjoint(keyed)
    assert keyed.isdisjoint(other)


@pytest.mark.parametrize("name", sorted(SPLIT_CASES))
def test_a_split_with_the_graph_hashed_gives_the_journeys_check_gives(
    tmp_path: Path, name: str
) -> None:
    """People's splits and blocks live: sealed events dealt by link tags of hashed keys."""
    lines = list(SPLIT_CASES[name])
    random.Random(7).shuffle(lines)
    pipeline = _sealed_run(tmp_path, lines, True, 7)
    assert pipeline.dead == []
    assert _identity_hits(pipeline) == []
    live = {
        customer: sorted(ids)
        for (_, customer), ids in pipeline.stored().items()
        if not any(e.startswith("dec-") for e in ids)
    }
    report = check_lines(SPLIT_CASES[name], hashed(_settings()), NOW)
    assert live == {j.customer_id: sorted(e.event_id for e in j.events) for j in report.journeys}


def test_a_hashed_graph_s_link_tags_are_digests_of_its_keys_that_events_carry(
    tmp_path: Path,
) -> None:
    """With the graph hashed, a link tag is a digest of the (keyed) graph key, `t:...`, not a
    second HMAC: the split's record names each key by it, and the sealed events carry it."""
    pipeline = _sealed_run(tmp_path, [*SHOP, BLOCK], True, 3)
    (regroup, *_) = regroups(pipeline)
    named = [*regroup.dropped, *(key for held in regroup.parts.values() for key in held)]
    assert named
    assert all(is_hashed_key(key) for key in named)
    tags = [*regroup.dropped_links, *(t for held in regroup.links.values() for t in held)]
    assert tags == [graph_key_tag(key) for key in named]
    assert all(t.startswith(GRAPH_TAG_PREFIX) and HASHED_MARK not in t for t in tags)
    carried = {
        link_tag(value)
        for records in pipeline.events.values()
        for record in records
        if dict(record.headers).get(HEADER_KIND) == KIND_EVENT
        for value in orjson.loads(record.value or b"{}")["customer"].values()
    }
    assert set(tags) <= carried


def test_erasure_and_suppression_work_on_a_hashed_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suppressed: dict[tuple[str, str], int] = {}
    pipeline = suppressing(tmp_path, monkeypatch, suppressed)
    pipeline.settings = hashed(pipeline.settings)
    hasher = pipeline.settings.hasher_for("acme")
    ann_key = normalise("email", "ann@x.org", None, hasher).key
    feed(pipeline, message(email="ann@x.org", phone="07700 900123"), message(email="bo@x.org"))
    ann = pipeline.identity.get(partition_of(b"acme"), keys.identifier_key("acme", ann_key))
    assert ann is not None
    pipeline.append("touchpoints", b"acme", erasure(ann.decode()))
    pipeline.drain()
    assert (
        pipeline.identity.get(partition_of(b"acme"), keys.identifier_key("acme", ann_key)) is None
    )
    feed(pipeline, message(email="ANN@x.org"), message(phone="07700 900123"))
    assert not pipeline.dead
    assert suppressed == {("acme", "customer.email"): 1, ("acme", "customer.phone"): 1}
    stored = b"".join(k + v for k, v in pipeline.identity.items(partition_of(b"acme")))
    assert b"ann@x.org" not in stored
    assert b"900123" not in stored
