"""Crypto-shredding wired through both stages (in-memory log, real RocksDB): seal, serve, erase.

Ingest seals each event's personal fields with its customer's data key; the journey stage folds
and stores the sealed events (the rules read clear fields only), so journeys and flags are the
same as without sealing; serving opens them with the ring; an `identity.erased` event destroys
the ring and leaves the stored journey a skeleton of `[erased]` fields.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from projections.identifiers import normalise
from projections.identity import customer_id_for
from projections.settings import FoldSettings
from schemas.codec import decode_event, encode_event
from streams.config import KafkaSettings
from streams.crypto.fields import ERASED, PREFIX, UndecryptableFieldError
from streams.crypto.keys import LocalKeyProvider, WrongMasterKeyError
from streams.crypto.opening import keys_from_changelog, open_journey, stored_keys
from streams.crypto.ring import KeyRing
from streams.crypto.sealing import Sealer
from streams.crypto.startup import MissingMasterKeyError, check_master_key
from streams.stages.journey.erasure import erased_document
from streams.stages.journey.stage import decode_journey
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from streams.topics import ledger_topics
from tests.factories import raw
from tests.unit.test_identity_rules import _decision
from tests.unit.test_properties import Scenario, scenarios
from tests.unit.test_stages import NOW, PARTITIONS, Pipeline, partition_of

MASTER = bytes(range(32))


def _sealer(master: bytes = MASTER) -> Sealer:
    return Sealer(LocalKeyProvider(master))


def _run(tmp_path: Path, lines: list[bytes], sealer: Sealer | None) -> Pipeline:
    pipeline = Pipeline(tmp_path, sealer=sealer)
    for line in lines:
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    return pipeline


def _flags(pipeline: Pipeline) -> list[tuple[str, str, str]]:
    return sorted((c.change, c.flag_id, c.change_id) for c in pipeline.flags)


def _journeys(pipeline: Pipeline) -> dict[tuple[str, str], bytes]:
    found = {}
    for partition in range(PARTITIONS):
        for key, value in pipeline.journeys.items(partition, keys.Prefix.JOURNEY.value):
            ref = keys.journey_of(key)
            assert ref is not None
            found[ref] = value
    return found


def _rings(pipeline: Pipeline) -> dict[tuple[str, str], bytes]:
    found = {}
    for partition in range(PARTITIONS):
        for key, value in pipeline.identity.items(partition, keys.Prefix.RING.value):
            ref = keys.customer_of(keys.Prefix.RING, key)
            assert ref is not None
            found[ref] = value
    return found


def test_sealed_stages_store_the_same_journeys_and_flags_as_clear_ones(tmp_path: Path) -> None:
    lines = demo_lines()
    clear = _run(tmp_path / "clear", lines, None)
    sealer = _sealer()
    sealed = _run(tmp_path / "sealed", lines, sealer)
    assert sealed.stored() == clear.stored()
    assert _flags(sealed) == _flags(clear)
    assert not sealed.dead
    rings = _rings(sealed)
    for ref, value in _journeys(sealed).items():
        journey = decode_journey(ref, value)
        assert PREFIX.encode() in value  # every demo customer has personal fields
        opened = open_journey(journey, sealer.unwrapped(KeyRing.from_bytes(rings[ref])))
        clear_value = clear.journeys.get(
            partition_of(f"{ref[0]}/{ref[1]}".encode()), keys.journey_key(ref)
        )
        assert clear_value is not None
        assert [encode_event(e) for e in opened.events] == [
            encode_event(e) for e in decode_journey(ref, clear_value).events
        ]


def test_no_personal_value_reaches_the_events_log_or_the_journey_state_in_clear(
    tmp_path: Path,
) -> None:
    markers = {"email": "zq7canary@example.org", "name": "Quentin Zebedee-Canary"}
    event = raw(
        "chat.message",
        {"text": "my flat is zq7flat-22", "speaker": "customer", "vehicle_colour": "zq7own"},
        customer={**markers, "phone": "+44 7700 900 777"},
        event_id="c-1",
    )
    pipeline = _run(tmp_path, [orjson.dumps(event)], _sealer())
    blobs = [r.value or b"" for log in pipeline.events.values() for r in log]
    blobs += list(_journeys(pipeline).values())
    for blob in blobs:
        for marker in ("zq7", "Zebedee", "7700 900 777", "447700900777"):
            assert marker.encode() not in blob
    assert any(b"zq7" in (r.value or b"") for log in pipeline.touchpoints.values() for r in log)


def _erasure(customer: str, event_id: str = "erase-1", tenant: str = "acme") -> bytes:
    document = raw(
        "identity.erased",
        {"customer_id": customer, "decided_by": "r.khan", "grounds": "DSR-1"},
        customer={"anonymous_id": customer},
        system="journeys-api",
        event_id=event_id,
        tenant=tenant,
    )
    return orjson.dumps(document)


def _customer(tmp_pipeline: Pipeline, email: str) -> str:
    for partition in range(PARTITIONS):
        value = tmp_pipeline.identity.get(partition, keys.identifier_key("acme", f"email:{email}"))
        if value is not None:
            return value.decode()
    raise AssertionError(email)


def test_erasing_destroys_the_ring_and_the_graph_and_leaves_an_erased_skeleton(
    tmp_path: Path,
) -> None:
    sealer = _sealer()
    lines = [
        orjson.dumps(
            raw(
                "message.received",
                {"text": "call me", "medium": "email"},
                customer={"email": "a@x.org", "name": "Ann"},
            )
        ),
        orjson.dumps(
            raw(
                "message.received",
                {"text": "hello", "medium": "email"},
                customer={"email": "b@x.org", "phone": "07700 900123"},
            )
        ),
    ]
    pipeline = _run(tmp_path, lines, sealer)
    assert not pipeline.dead
    ann, bea = _customer(pipeline, "a@x.org"), _customer(pipeline, "b@x.org")
    flags_before = _flags(pipeline)
    bea_before = _journeys(pipeline)[("acme", bea)]
    ring = KeyRing.from_bytes(_rings(pipeline)[("acme", ann)])
    pipeline.append("touchpoints", b"acme", _erasure(ann))
    pipeline.drain()
    assert not pipeline.dead
    assert ("acme", ann) not in _rings(pipeline)
    assert _customer(pipeline, "b@x.org") == bea
    with pytest.raises(AssertionError):
        _customer(pipeline, "a@x.org")
    stored = _journeys(pipeline)
    assert stored[("acme", bea)] == bea_before  # the other customer is untouched
    skeleton = decode_journey(("acme", ann), stored[("acme", ann)])
    (event,) = skeleton.events
    assert event.type == "message.received"
    assert event.source.system == "web"
    assert event.customer.email == ERASED
    assert event.customer.name == ERASED
    assert event.payload.model_dump()["text"] == ERASED
    assert PREFIX.encode() not in stored[("acme", ann)]
    assert _flags(pipeline) == flags_before  # the rules read no personal field
    # what the events topic still holds cannot be read with any key the ledger keeps
    sealed = [
        r.value for log in pipeline.events.values() for r in log if r.value and b"a@" not in r.value
    ]
    assert any(b'"enc:v1:' + ring.current.encode() in value for value in sealed)
    held = {k: sealer.unwrapped(KeyRing.from_bytes(v)) for k, v in _rings(pipeline).items()}
    assert all(ring.current not in data_keys for data_keys in held.values())
    partition = partition_of(b"acme")
    assert stored_keys(pipeline.identity, partition, "acme", ann, sealer) == {}


def test_an_erased_customer_s_events_open_as_erased(tmp_path: Path) -> None:
    sealer = _sealer()
    line = orjson.dumps(
        raw(
            "message.received",
            {"text": "call me", "medium": "email"},
            customer={"email": "a@x.org"},
        )
    )
    pipeline = _run(tmp_path, [line], sealer)
    ann = _customer(pipeline, "a@x.org")
    journey = decode_journey(("acme", ann), _journeys(pipeline)[("acme", ann)])
    opened = open_journey(journey, {})  # the ring is gone
    assert opened.events[0].customer.email == ERASED


def test_a_ciphertext_moved_to_another_field_does_not_open(tmp_path: Path) -> None:
    sealer = _sealer()
    line = orjson.dumps(
        raw(
            "message.received",
            {"text": "call me", "medium": "email"},
            customer={"email": "a@x.org"},
        )
    )
    pipeline = _run(tmp_path, [line], sealer)
    ann = _customer(pipeline, "a@x.org")
    value = _journeys(pipeline)[("acme", ann)]
    document: Any = orjson.loads(value)[0]
    document["customer"]["anonymous_id"] = document["customer"]["email"]
    moved = decode_journey(("acme", ann), orjson.dumps([document]))
    with pytest.raises(UndecryptableFieldError):
        open_journey(moved, sealer.unwrapped(KeyRing.from_bytes(_rings(pipeline)[("acme", ann)])))


def test_a_replayed_batch_seals_the_same_bytes_with_the_stored_ring(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "identity")
    body = encode_event(
        decode_event(
            orjson.dumps(raw("message.received", {"text": "hi", "medium": "email"}, event_id="r-1"))
        )
    )
    first = BatchState(store, 0)
    once = _sealer().seal(first, "acme", "cus_0000000000000001", body)
    store.write(0, first.changes)  # the ring reached the changelog and the store
    again = _sealer().seal(BatchState(store, 0), "acme", "cus_0000000000000001", body)
    assert once == again
    assert PREFIX.encode() in once
    assert erased_document(orjson.loads(once))["payload"]["text"] == ERASED


def test_a_wrong_master_key_is_refused_at_start_naming_the_setting(tmp_path: Path) -> None:
    line = orjson.dumps(
        raw("message.received", {"text": "hi", "medium": "email"}, customer={"email": "a@x.org"})
    )
    pipeline = _run(tmp_path, [line], _sealer())
    store: LocalStore = pipeline.identity
    assert check_master_key(store, PARTITIONS, LocalKeyProvider(MASTER)) == 1
    with pytest.raises(WrongMasterKeyError) as wrong:
        check_master_key(store, PARTITIONS, LocalKeyProvider(bytes(32)))
    assert "JOURNEYS_MASTER_KEY" in str(wrong.value)
    with pytest.raises(MissingMasterKeyError) as missing:
        check_master_key(store, PARTITIONS, None)
    assert "master_key" in str(missing.value)


def test_the_erased_customer_id_is_the_ledger_s_own(tmp_path: Path) -> None:
    pipeline = _run(
        tmp_path, [_erasure(customer_id_for("acme", ["email:nobody@x.org"]))], _sealer()
    )
    (record,) = [r for log in pipeline.events.values() for r in log]
    assert dict(record.headers)["kind"] == b"erased"
    assert b"nobody" not in (record.value or b"")
    assert orjson.loads(record.value or b"{}")["keys_destroyed"] == 0


def test_the_raw_touchpoints_topic_keeps_records_seven_days_and_the_log_forever() -> None:
    specs = {spec.name: spec.config for spec in ledger_topics(KafkaSettings())}
    names = KafkaSettings().names()
    assert specs[names.touchpoints]["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert specs[names.events]["retention.ms"] == "-1"


def test_the_dead_letter_topics_keep_records_thirty_days_or_as_set(tmp_path: Path) -> None:
    from journeys.settings import load_settings

    path = tmp_path / "journeys.toml"
    path.write_text("[kafka]\ndead_letter_retention_days = 3\n", encoding="utf-8")
    assert load_settings(path, {}).kafka_settings().dead_letter_retention_days == 3
    day = 24 * 3600 * 1000
    for settings_, days in (
        (KafkaSettings(), 30),
        (KafkaSettings(dead_letter_retention_days=3), 3),
    ):
        specs = {spec.name: spec.config for spec in ledger_topics(settings_)}
        names = settings_.names()
        assert specs[names.dead_letters]["retention.ms"] == str(days * day)
        assert specs[names.notification_dead_letters]["retention.ms"] == str(days * day)
        # the stages' dead letters are erased by tombstone: compacted as well as deleted by age
        assert specs[names.dead_letters]["cleanup.policy"] == "compact,delete"
        assert specs[names.notification_dead_letters]["cleanup.policy"] == "delete"


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(max_events=14), pick=st.integers(0, 1000))
def test_erasing_one_customer_changes_no_other_customer(scenario: Scenario, pick: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        lines = [encode_event(e) for e in scenario.events]
        pipeline = _run(Path(root), lines, _sealer())
        journeys, rings = _journeys(pipeline), _rings(pipeline)
        if not journeys:
            return
        flags = _flags(pipeline)
        tenant, customer = sorted(journeys)[pick % len(journeys)]
        pipeline.append("touchpoints", tenant.encode(), _erasure(customer, tenant=tenant))
        pipeline.drain()
        assert not pipeline.dead
        after = _journeys(pipeline)
        erased = after.pop((tenant, customer))
        assert PREFIX.encode() not in erased
        assert after == {ref: v for ref, v in journeys.items() if ref != (tenant, customer)}
        assert _flags(pipeline) == flags  # no flag of anyone changed
        left = _rings(pipeline)
        assert (tenant, customer) not in left
        assert left == {ref: v for ref, v in rings.items() if ref != (tenant, customer)}


def test_replay_opens_with_the_rings_the_changelog_still_holds(tmp_path: Path) -> None:
    sealer = _sealer()
    lines = [
        orjson.dumps(
            raw("message.received", {"text": "x", "medium": "email"}, customer={"email": e})
        )
        for e in ("a@x.org", "b@x.org")
    ]
    pipeline = _run(tmp_path, lines, sealer)
    ann, bea = _customer(pipeline, "a@x.org"), _customer(pipeline, "b@x.org")
    rings = _rings(pipeline)
    log = [(keys.ring_key("acme", c), rings[("acme", c)]) for c in (ann, bea)]
    log.append((keys.ring_key("acme", ann), None))  # ann erased: a tombstone
    held = keys_from_changelog([(b"i/acme/email:a@x.org", b"x"), *log], sealer)
    assert set(held) == set(KeyRing.from_bytes(rings[("acme", bea)]).key_ids)


def test_erased_identifiers_never_stitch() -> None:
    for kind in ("email", "phone", "plate", "anonymous_id"):
        assert normalise(kind, ERASED).unusable == "erased"


def test_a_value_that_reads_like_ciphertext_is_dead_lettered_naming_the_field(
    tmp_path: Path,
) -> None:
    fake = "enc:v1:dk_0123456789abcdef:AAAA"
    line = orjson.dumps(
        raw("message.received", {"text": "x", "medium": "email", "ref": fake}, event_id="f-1")
    )
    pipeline = _run(tmp_path, [line], _sealer())
    (dead,) = pipeline.dead
    assert "payload.ref: reads like a sealed value" in str(dead["reason"])
    assert not _journeys(pipeline)


def test_journeys_check_lets_an_erasure_join_no_journey() -> None:
    line = orjson.dumps(raw("message.received", {"text": "x", "medium": "email"}))
    report = check_lines([line, _erasure("cus_00000000000000aa")], FoldSettings(), NOW)
    assert [j.customer_id for j in report.journeys] == [
        customer_id_for("acme", ["email:sam@example.com"])
    ]


def _journey_state_of(pipeline: Pipeline, customer: str) -> dict[bytes, bytes]:
    """Every journey-stage record kept under the customer (journey, flags, split, steps...)."""
    mark = f"/acme/{customer}".encode()
    return {
        key: value
        for partition in range(PARTITIONS)
        for key, value in pipeline.journeys.items(partition)
        if mark in key
    }


def test_erasing_a_split_customer_deletes_its_split_record(tmp_path: Path) -> None:
    """The journey stage's split record (`x/`: the parts' link tags and steps) goes with the
    customer: no journey-stage record under it quotes its identifiers any more."""
    phone = "+44 113 496 0000"
    ann_line = raw("form.submitted", {"form": "a"}, customer={"email": "ann@x.org", "phone": phone})
    bo_line = raw("form.submitted", {"form": "b"}, customer={"email": "bo@x.org", "phone": phone})
    block = orjson.loads(_decision("identity.blocked", "dec-1", "2024-03-09T12:00:00Z", phone))
    lines = [orjson.dumps(ann_line), orjson.dumps(bo_line), orjson.dumps(block)]
    pipeline = _run(tmp_path, lines, _sealer())
    assert not pipeline.dead
    ann = _customer(pipeline, "ann@x.org")
    assert ann != _customer(pipeline, "bo@x.org")  # split by the block
    before = _journey_state_of(pipeline, ann)
    split = [value for key, value in before.items() if key.startswith(keys.Prefix.SPLIT.value)]
    assert split
    # sealed: it names the parts by link tags, never in clear, and still goes with her
    assert all(b"ann@x.org" not in value and b'"tagged":true' in value for value in split)
    pipeline.append("touchpoints", b"acme", _erasure(ann))
    pipeline.drain()
    assert not pipeline.dead
    after = _journey_state_of(pipeline, ann)
    assert after  # the erased skeleton stays
    assert not [key for key in after if key.startswith(keys.Prefix.SPLIT.value)]
    assert all(b"ann@x.org" not in value for value in after.values())
