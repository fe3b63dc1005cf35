"""Find planted personal values (canaries) wherever bytes are kept: topics, RocksDB, logs.

The later canary test plants markers (a name, an e-mail, a phone number) in events, runs the
pipeline, erases the customer, and scans every record, store file and log line with this: any
hit means personal data was kept in clear. A marker is looked for as written, case-folded,
JSON-escaped (`\\u00e9`), and, for a phone number, as its digits without leading zeros (which
the national and international forms both contain), in the digits of the blob.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_PHONE_DIGITS = 7
"""A marker with this many digits or more is also looked for as digits only."""

_PHONE = re.compile(r"^[+0-9 ().\-]+$")
_NOT_DIGITS = re.compile(rb"[^0-9]")


@dataclass(frozen=True, slots=True)
class Hit:
    """One occurrence of a marker: where, in which form, and at which offset of that view."""

    marker: str
    form: str
    where: str
    view: str
    offset: int


def forms(marker: str) -> dict[str, tuple[str, bytes]]:
    """The marker's forms, by name: (the view of a blob it is looked for in, the bytes)."""
    found = {
        "clear": ("raw", marker.encode()),
        "case-folded": ("folded", marker.casefold().encode()),
        "json-escaped": ("raw", json.dumps(marker)[1:-1].encode()),
        "json-escaped case-folded": ("folded", json.dumps(marker.casefold())[1:-1].encode()),
    }
    digits = re.sub(r"[^0-9]", "", marker).lstrip("0")
    if _PHONE.match(marker) and len(digits) >= MIN_PHONE_DIGITS:
        found["digits"] = ("digits", digits.encode())
    return found


def _views(blob: bytes) -> dict[str, bytes]:
    return {
        "raw": blob,
        "folded": blob.decode("utf-8", "replace").casefold().encode(),
        "digits": _NOT_DIGITS.sub(b"", blob),
    }


def scan_blob(blob: bytes, markers: Iterable[str], where: str = "") -> Iterator[Hit]:
    """Every occurrence of every marker's forms in one blob (an occurrence in clear is also
    found case-folded: one hit per form that matches it)."""
    views = _views(blob)
    for marker in markers:
        seen: set[tuple[str, bytes]] = set()
        for name, (view, needle) in forms(marker).items():
            if not needle or (view, needle) in seen:
                continue
            seen.add((view, needle))
            start = views[view].find(needle)
            while start != -1:
                yield Hit(marker, name, where, view, start)
                start = views[view].find(needle, start + 1)


def scan_blobs(blobs: Mapping[str, bytes], markers: Iterable[str]) -> Iterator[Hit]:
    """Every occurrence in named blobs (records of a topic, log lines...)."""
    wanted = tuple(markers)
    for where, blob in blobs.items():
        yield from scan_blob(blob, wanted, where)


def scan_paths(paths: Iterable[Path], markers: Iterable[str]) -> Iterator[Hit]:
    """Every occurrence in files, and in every file under directories (a RocksDB, a log dir)."""
    wanted = tuple(markers)
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            yield from scan_blob(file.read_bytes(), wanted, str(file))
