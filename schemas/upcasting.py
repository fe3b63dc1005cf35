"""Upcasters: turn an event written under an older envelope version into the current shape.

A released event shape never changes. When one must, bump `CURRENT_SCHEMA_VERSION`, register
an upcaster here from the old version, and add a golden file of the old shape under
`tests/golden/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.events import CURRENT_SCHEMA_VERSION

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the dict of an event at version N into the dict at version N + 1."""

UPCASTERS: dict[int, Upcaster] = {}
"""Upcasters by the version they read; v1 is the first release, so there are none yet."""


def needs_upcast(document: dict[str, Any]) -> bool:
    """Whether the document is of an older version that an upcaster can lift."""
    version = document.get("schema_version", CURRENT_SCHEMA_VERSION)
    return isinstance(version, int) and version < CURRENT_SCHEMA_VERSION and version in UPCASTERS


def upcast(document: dict[str, Any]) -> dict[str, Any]:
    """Lift a document to the current version, one registered step at a time."""
    version = document.get("schema_version", CURRENT_SCHEMA_VERSION)
    while isinstance(version, int) and version < CURRENT_SCHEMA_VERSION and version in UPCASTERS:
        document = UPCASTERS[version](document)
        version += 1
        document = {**document, "schema_version": version}
    return document
