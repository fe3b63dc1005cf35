"""Synthetic load: the bundled demo journeys copied many times with fresh identifiers.

Every copy keeps the demo's stories (and so fires every rule) but gets its own event ids,
emails, phones, plates, VINs and business ids, so copies never stitch to each other. Used by
the crash tests and the benchmark; deterministic for a given number of copies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from journeys.demo import demo_lines

_SUFFIXED = frozenset(
    {
        "anonymous_id",
        "booking_id",
        "card_token",
        "correlation_id",
        "membership_id",
        "order_id",
        "payment_id",
    }
)
_DIGIT = re.compile(r"\d")


def demo_documents() -> list[dict[str, Any]]:
    """The bundled demo events as JSON objects, in file order."""
    return [orjson.loads(line) for line in demo_lines()]


def _phone(value: str, copy: int) -> str:
    # Keep the formatting and the number plan; replace the last six digits so the same phone
    # written differently in one copy stays the same number.
    positions = [m.start() for m in _DIGIT.finditer(value)][-6:]
    digits = f"{copy % 1000:03d}" + "".join(value[p] for p in positions[-3:])
    chars = list(value)
    for position, digit in zip(positions, digits, strict=True):
        chars[position] = digit
    return "".join(chars)


def _rewrite(key: str, value: Any, copy: int) -> Any:
    if not isinstance(value, str):
        return value
    if key == "email":
        local, _, domain = value.partition("@")
        return f"{local}+c{copy}@{domain}"
    if key == "phone":
        return _phone(value, copy)
    if key == "plate":
        return f"{value}{copy:x}".upper() if value.isupper() else f"{value}{copy:x}"
    if key == "vin":
        return value[:11] + f"{copy:06d}"
    if key in _SUFFIXED:
        return f"{value}-{copy}"
    return value


def copy_document(document: dict[str, Any], copy: int) -> dict[str, Any]:
    """One demo event rewritten for copy number `copy` (0 up to 999 keeps phones unique)."""
    result = dict(document)
    result["event_id"] = f"{document['event_id']}-{copy}"
    result["customer"] = {k: _rewrite(k, v, copy) for k, v in document["customer"].items()}
    result["payload"] = {k: _rewrite(k, v, copy) for k, v in document["payload"].items()}
    if "correlation_id" in document:
        result["correlation_id"] = _rewrite("correlation_id", document["correlation_id"], copy)
    return result


def synthetic_lines(copies: int) -> Iterator[bytes]:
    """`copies` copies of the demo journeys as JSON lines, copy by copy."""
    documents = demo_documents()
    for copy in range(copies):
        for document in documents:
            yield orjson.dumps(copy_document(document, copy))
