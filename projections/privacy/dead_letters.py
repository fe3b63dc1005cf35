"""Whose a dead letter is: the tenant and customer identifiers read leniently from its bytes.

A dead letter is a record the door (or ingest) refused, so nothing about it is trusted: the
reading here never raises, bounds what it reads, and gives up (None) rather than guess. What
it finds lets erasure find the dead letter by the customer's identifier keys (README,
"Privacy": dead letters); a dead letter it cannot read is found by no one and leaves with
the dead-letter topic's retention.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from schemas.envelope import IDENTIFIER_KINDS

MAX_READ_BYTES = 1024 * 1024
"""The most bytes of a dead letter parsed for its customer (Kafka's default record limit)."""

MAX_VALUE_LENGTH = 320
"""The longest identifier value kept (an e-mail address's limit; the door's own bound)."""

_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class DeadLetterOwner(NamedTuple):
    """The tenant a dead letter names and its customer's identifier values (`IDENTIFIER_KINDS`
    order, None where absent), as written: normalising them is the reader's (ingest's) job."""

    tenant: str
    values: tuple[str | None, ...]

    def identifiers(self) -> dict[str, str]:
        """The identifier values present, by kind."""
        return {k: v for k, v in zip(IDENTIFIER_KINDS, self.values, strict=True) if v}

    def __repr__(self) -> str:
        """The tenant and which kinds are present, never a value (they are personal)."""
        return f"DeadLetterOwner(tenant={self.tenant!r}, kinds={sorted(self.identifiers())})"


def owner_of_document(document: Any) -> DeadLetterOwner | None:
    """The tenant and customer identifiers of a parsed document, or None when it names no valid
    tenant or no identifier (a value that is not a string, or is empty or too long once
    stripped, is left out, as the door would refuse it)."""
    if not isinstance(document, dict):
        return None
    tenant, customer = document.get("tenant"), document.get("customer")
    if not isinstance(tenant, str) or _TENANT.fullmatch(tenant) is None:
        return None
    if not isinstance(customer, dict):
        return None
    values = tuple(_value(customer.get(kind)) for kind in IDENTIFIER_KINDS)
    if not any(values):
        return None
    return DeadLetterOwner(tenant, values)


def owner_of(raw: bytes | str | None) -> DeadLetterOwner | None:
    """The tenant and customer identifiers of a dead letter's original bytes if they parse as
    JSON (at most `MAX_READ_BYTES`), or None; never raises, whatever the bytes."""
    if not raw or len(raw) > MAX_READ_BYTES:
        return None
    try:
        document = orjson.loads(raw)  # nesting over orjson's limit is a decode error too
    except orjson.JSONDecodeError:
        return None
    return owner_of_document(document)


def _value(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if not stripped or len(stripped) > MAX_VALUE_LENGTH:
        return None
    return stripped
