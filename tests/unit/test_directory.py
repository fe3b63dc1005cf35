"""The members directory: who owns which partition, tenants known, tombstones."""

from __future__ import annotations

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]

from streams.directory import Directory, Member
from streams.kafka.sender import partition_of


def member(
    worker: str, journeys: tuple[int, ...], at: float, tenants: tuple[str, ...] = ()
) -> Member:
    return Member(worker, f"http://{worker}:8080", (0,), journeys, tenants, at)


def test_the_latest_claim_wins_and_a_tombstone_removes_a_worker() -> None:
    directory = Directory()
    directory.apply(b"a", member("a", (0, 1), 1.0, ("acme",)).to_json())
    directory.apply(b"b", member("b", (1, 2), 2.0, ("northwind",)).to_json())
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
