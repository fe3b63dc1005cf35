"""The members directory: who owns which partition, tenants known, tombstones."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]

from streams.directory import Directory, Member, seal, sealed_record
from streams.kafka.sender import partition_of


def member(
    worker: str, journeys: tuple[int, ...], at: float, tenants: tuple[str, ...] = ()
) -> Member:
    return Member(worker, f"http://{worker}:8080", (0,), journeys, tenants, at)


SECRET = "peer-secret-for-the-tests-0123456789abcdef"


def test_the_latest_claim_wins_and_a_tombstone_removes_a_worker() -> None:
    directory = Directory(SECRET)
    directory.apply(b"a", sealed_record(SECRET, member("a", (0, 1), 1.0, ("acme",))))
    directory.apply(b"b", sealed_record(SECRET, member("b", (1, 2), 2.0, ("northwind",))))
    owner = directory.owner("journeys", 1)
    assert owner is not None
    assert owner.worker_id == "b"
    assert directory.tenants() == {"acme", "northwind"}
    directory.apply(b"b", None)
    owner = directory.owner("journeys", 1)
    assert owner is not None
    assert owner.worker_id == "a"
    assert directory.owner("journeys", 2) is None


def test_records_round_trip() -> None:
    original = member("w", (3,), 5.5, ("t",))
    assert Member.from_json(original.to_json()) == original


def test_partitions_follow_the_default_partitioner() -> None:
    keys = [b"acme-motors", b"northwind", b"acme-motors/cus_0123456789abcdef"]
    assert [partition_of(k, 4) for k in keys] == [(murmur2(k) & 0x7FFFFFFF) % 4 for k in keys]
    assert all(0 <= partition_of(bytes([i]), 7) < 7 for i in range(256))


def test_a_forged_member_record_gets_nothing() -> None:
    directory = Directory(SECRET)
    directory.apply(b"a", sealed_record(SECRET, member("a", (0, 1), 1.0)))
    evil = member("evil", (0, 1, 2, 3), 99.0, ("acme",))
    evil_value = evil.to_json()
    directory.apply(b"evil", sealed_record(None, evil))  # no seal
    directory.apply(b"evil", sealed_record("another-secret-0123456789abcdef012345", evil))
    forged = orjson.dumps({"member": evil_value.decode(), "mac": seal(SECRET, b"a", evil_value)})
    directory.apply(b"evil", forged)  # a seal lifted from another key
    assert directory.unauthenticated == 3
    assert set(directory.members) == {"a"}
    owner = directory.owner("journeys", 1)
    assert owner is not None
    assert owner.worker_id == "a"
    assert directory.owner("journeys", 2) is None


def test_a_worker_without_the_secret_trusts_no_member_record() -> None:
    directory = Directory(None)
    directory.apply(b"a", sealed_record(SECRET, member("a", (0, 1), 1.0)))
    assert directory.members == {}
    assert directory.unauthenticated == 1


def test_a_sealed_record_under_another_workers_key_is_refused() -> None:
    directory = Directory(SECRET)
    value = member("a", (0,), 1.0).to_json()
    record = orjson.dumps({"member": value.decode(), "mac": seal(SECRET, b"b", value)})
    with pytest.raises(ValueError, match="another worker"):
        directory.apply(b"b", record)
    assert directory.members == {}
