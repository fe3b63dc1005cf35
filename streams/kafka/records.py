"""The records the worker reads and writes, independent of the Kafka client."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import orjson

from projections.privacy.dead_letters import owner_of
from schemas.outputs import HEADER_KIND, KIND_DEAD_LETTER, FlagChange
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

    With `error` (processing raised), the document names the exception type as `error`. Its
    Kafka key is its own (`dead_letter_key`), so erasure can supersede it with a tombstone.
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
    owner = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        masked = mask_text(_unescaped(raw.decode("latin-1")))[0].encode("latin-1", "replace")
        document["original_base64"] = base64.b64encode(masked).decode()
    else:
        document["original"] = _masked_original(text)
        owner = owner_of(document["original"])
    key = dead_letter_key(record, document["reason"], None if owner is None else owner.tenant)
    return OutRecord("dead_letters", key, orjson.dumps(document))


def dead_letter_key(record: InRecord, reason: str, tenant: str | None) -> bytes:
    """A dead letter's own key: `<tenant or ->/<topic>/<partition>/<offset>/<digest of the
    reason>`. The same record refused again (a batch read twice) gets the same key; two
    refusals of one record (ingest can report a failed step and go on) get two."""
    digest = hashlib.blake2b(reason.encode(), digest_size=4).hexdigest()
    where = f"{record.topic}/{record.partition}/{record.offset}/{digest}"
    return f"{tenant or '-'}/{where}".encode()


def tenant_of_dead_letter(key: bytes) -> str | None:
    """The tenant a dead letter's key (`dead_letter_key`) names, if any."""
    tenant = key.partition(b"/")[0].decode("utf-8", "replace")
    return None if tenant in ("", "-") else tenant


def dead_letter_notice(dead: OutRecord) -> OutRecord | None:
    """What tells ingest a dead letter's tenant and customer identifiers (None when they cannot
    be read): a record on the validated topic keyed by the tenant, kind `dead_letter`, holding
    the dead letter's key and the identifiers as written (ingest normalises and indexes them)."""
    if dead.destination != "dead_letters" or dead.value is None:
        return None
    original = orjson.loads(dead.value).get("original")
    owner = owner_of(original) if isinstance(original, str) else None
    if owner is None:
        return None
    notice = {"dead_letter": dead.key.decode(), "customer": owner.identifiers()}
    return OutRecord(
        "validated", owner.tenant.encode(), orjson.dumps(notice), ((HEADER_KIND, KIND_DEAD_LETTER),)
    )


def with_notices(out: list[OutRecord]) -> list[OutRecord]:
    """A stage's outputs with a notice after them for each dead letter whose customer can be
    read (`dead_letter_notice`), so that erasing the customer finds it."""
    notices = [
        notice
        for record in out
        if record.destination == "dead_letters" and (notice := dead_letter_notice(record))
    ]
    return out + notices if notices else out


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
