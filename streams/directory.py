"""Which worker owns which partition, and where its API answers: the members topic.

Each worker publishes, whenever its assignment changes, one record keyed by its id: its API
address, the partitions it owns for each stage and the tenants its ingest partitions hold. Every
API process reads the whole (compacted, one-partition) topic, so a query about a customer
whose partition lives elsewhere is forwarded to the worker that owns it.

A record is sealed with an HMAC of its key and value under the workers' shared secret
(`[api] peer_secret`). A record that is not sealed by that secret (anyone who can write to the
topic could have written it) is ignored and counted: requests are forwarded only to workers
whose announcement is authenticated.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from schemas.printable import printable
from streams.config import KafkaSettings, TopicNames
from streams.kafka.follow import FollowerHealth, follow_topic

log = logging.getLogger("journeys.directory")


def seal(secret: str, key: bytes, value: bytes) -> str:
    """The HMAC-SHA256 (hex) of a members-topic record's key and value under the shared secret."""
    message = b"journeys-member-v1\n" + key + b"\n" + value
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sealed_record(secret: str | None, member: Member) -> bytes:
    """The record value announcing `member`: its JSON and, with a secret, the seal."""
    value = member.to_json()
    mac = seal(secret, member.worker_id.encode(), value) if secret else None
    return orjson.dumps({"member": value.decode(), "mac": mac})


@dataclass(frozen=True, slots=True)
class Member:
    """One worker as it announced itself."""

    worker_id: str
    api_url: str | None
    ingest: tuple[int, ...]
    journeys: tuple[int, ...]
    tenants: tuple[str, ...]
    at: float

    def to_json(self) -> bytes:
        """The record value."""
        return orjson.dumps(
            {
                "worker_id": self.worker_id,
                "api_url": self.api_url,
                "ingest": self.ingest,
                "journeys": self.journeys,
                "tenants": self.tenants,
                "at": self.at,
            }
        )

    @classmethod
    def from_json(cls, value: bytes) -> Member:
        """Read a record value back."""
        d = orjson.loads(value)
        return cls(
            d["worker_id"],
            d.get("api_url"),
            tuple(d.get("ingest", ())),
            tuple(d.get("journeys", ())),
            tuple(d.get("tenants", ())),
            float(d.get("at", 0)),
        )


class Directory:
    """The latest announcement of every live worker."""

    def __init__(self, secret: str | None = None) -> None:
        self.members: dict[str, Member] = {}
        self.secret = secret
        self.unauthenticated = 0
        """Records ignored because the shared secret did not seal them."""

    def apply(self, key: bytes, value: bytes | None) -> None:
        """Apply one record of the members topic (a tombstone removes the worker).

        A record not sealed by the secret is ignored and counted; one that is not a members
        record at all raises (the follower skips and counts it).
        """
        if value is None:
            self.members.pop(key.decode(errors="replace"), None)
            return
        envelope = orjson.loads(value)
        body, mac = envelope["member"].encode(), envelope.get("mac")
        expected = seal(self.secret, key, body) if self.secret else None
        if (
            expected is None
            or not isinstance(mac, str)
            or not hmac.compare_digest(expected.encode(), mac.encode())
        ):
            self.unauthenticated += 1
            log.warning(
                "ignored a members record not sealed by the peer secret (key %s; %d so far)",
                printable(key.decode(errors="replace")[:100]),
                self.unauthenticated,
            )
            return
        member = Member.from_json(body)
        if member.worker_id.encode() != key:
            raise ValueError("a members record keyed by another worker's id")
        self.members[member.worker_id] = member

    def owner(self, stage: str, partition: int) -> Member | None:
        """The worker that most recently claimed this stage's partition."""
        claims = [m for m in self.members.values() if partition in getattr(m, stage)]
        return max(claims, key=lambda m: m.at, default=None)

    def tenants(self) -> frozenset[str]:
        """Every tenant any worker's ingest partitions hold."""
        return frozenset(t for m in self.members.values() for t in m.tenants)


async def announce(
    producer: AIOKafkaProducer, kafka: KafkaSettings, member: Member, secret: str | None
) -> None:
    """Publish this worker's announcement, sealed by `secret`, and wait until it is written."""
    topic = TopicNames(kafka.topic_prefix).members
    value = sealed_record(secret, member)
    await (await producer.send(topic, value, key=member.worker_id.encode()))


async def withdraw(producer: AIOKafkaProducer, kafka: KafkaSettings, worker_id: str) -> None:
    """Remove this worker from the directory (on a clean stop)."""
    topic = TopicNames(kafka.topic_prefix).members
    await (await producer.send(topic, None, key=worker_id.encode()))


async def follow_members(
    kafka: KafkaSettings,
    directory: Directory,
    stop: asyncio.Event,
    health: FollowerHealth | None = None,
) -> None:
    """Read the members topic from the start into `directory` until `stop`.

    With `health`, a record that is not a member announcement is skipped and counted there.
    """

    def apply(key: bytes | None, value: bytes | None) -> None:
        if key is not None:
            directory.apply(key, value)

    await follow_topic(kafka, TopicNames(kafka.topic_prefix).members, apply, stop, health)
