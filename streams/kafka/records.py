"""The records the worker reads and writes, independent of the Kafka client."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import orjson

from schemas.outputs import FlagChange
from schemas.redaction import mask_text, mask_value

if TYPE_CHECKING:
    from streams.config import TopicNames

Headers = tuple[tuple[str, bytes], ...]
"""Kafka record headers."""

Destination = Literal["touchpoints", "validated", "events", "flags", "dead_letters"]
"""Which of the ledger's topics an output goes to."""


class InRecord(NamedTuple):
    """A consumed record (a named tuple, as `OutRecord`: a worker builds one per record, and a
    frozen dataclass costs about twice as much to build)."""

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


class OutRecord(NamedTuple):
    """A record to produce."""

    destination: Destination
    key: bytes
    value: bytes | None
    headers: Headers = ()


def customer_key(tenant: str, customer_id: str) -> bytes:
    """The partitioning key of a customer's records: all of them share a partition."""
    return f"{tenant}/{customer_id}".encode()


def flag_record(change: FlagChange) -> OutRecord:
    """A flag change as the record to send on the flag topic (keyed by its customer)."""
    return OutRecord("flags", customer_key(change.tenant, change.customer_id), change.to_bytes())


def failure_reason(what: str, exc: BaseException) -> str:
    """The reason for a record whose processing raised: what failed, the exception and its text."""
    return f"could not {what} this record: {type(exc).__name__}: {str(exc)[:300]}"


def dead_letter(record: InRecord, reason: str, error: BaseException | None = None) -> OutRecord:
    """A rejected record with its reason, origin and original bytes, card numbers masked.

    With `error` (processing raised), the document names the exception type as `error`.
    """
    document: dict[str, Any] = {
        "reason": mask_text(reason)[0],
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": mask_text(record.key.decode("utf-8", "replace"))[0] if record.key else None,
    }
    if error is not None:
        document["error"] = type(error).__name__
    raw = record.value or b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        masked = mask_text(_unescaped(raw.decode("latin-1")))[0].encode("latin-1", "replace")
        document["original_base64"] = base64.b64encode(masked).decode()
    else:
        document["original"] = _masked_original(text)
    return OutRecord("dead_letters", record.key or b"", orjson.dumps(document))


def _masked_original(text: str) -> str:
    """The original text with card numbers masked, however the JSON spelled them.

    JSON text is parsed and its values masked (a number written as `\u0034\u0031...` is a
    number once parsed); anything else is unescaped, then masked as text.
    """
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        masked, changed = mask_value(document)
        if not changed:
            return text
        try:
            return orjson.dumps(masked).decode()
        except orjson.JSONEncodeError:
            pass  # nested deeper than orjson writes: mask the text
    return mask_text(_unescaped(text))[0]


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescaped(text: str) -> str:
    """`text` with JSON `\\uXXXX` escapes written as the characters they stand for."""
    if "\\u" not in text:
        return text
    spelled = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    # Pairs of escaped surrogates make one character; a lone one becomes U+FFFD.
    return spelled.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def destination_topics(names: TopicNames) -> dict[Destination, str]:
    """The topic of this ledger each output destination goes to (built once per runner)."""
    return {
        "touchpoints": names.touchpoints,
        "validated": names.validated,
        "events": names.events,
        "flags": names.flags,
        "dead_letters": names.dead_letters,
    }


def in_records(messages: Sequence[Any]) -> list[InRecord]:
    """aiokafka's consumer records as the stages' `InRecord`s."""
    return [
        InRecord(
            m.topic,
            m.partition,
            m.offset,
            m.key,
            m.value,
            m.timestamp,
            tuple((k, bytes(v)) for k, v in m.headers) if m.headers else (),
        )
        for m in messages
    ]
