"""The records the worker reads and writes, independent of the Kafka client."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from schemas.redaction import mask_text

Headers = tuple[tuple[str, bytes], ...]
"""Kafka record headers."""

Destination = Literal["touchpoints", "events", "flags", "dead_letters"]
"""Which of the ledger's topics an output goes to."""


@dataclass(frozen=True, slots=True)
class InRecord:
    """A consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0
    headers: Headers = ()

    def header(self, name: str) -> bytes | None:
        """The first header of that name, if any."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to produce."""

    destination: Destination
    key: bytes
    value: bytes | None
    headers: Headers = field(default=())


def customer_key(tenant: str, customer_id: str) -> bytes:
    """The partitioning key of a customer's records: all of them share a partition."""
    return f"{tenant}/{customer_id}".encode()


def dead_letter(record: InRecord, reason: str) -> OutRecord:
    """A rejected record with its reason, origin and original bytes, card numbers masked."""
    document: dict[str, Any] = {
        "reason": mask_text(reason)[0],
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": mask_text(record.key.decode("utf-8", "replace"))[0] if record.key else None,
    }
    raw = record.value or b""
    try:
        document["original"] = mask_text(raw.decode("utf-8"))[0]
    except UnicodeDecodeError:
        masked = mask_text(raw.decode("latin-1"))[0].encode("latin-1")
        document["original_base64"] = base64.b64encode(masked).decode()
    return OutRecord("dead_letters", record.key or b"", orjson.dumps(document))
