"""The event contract as a JSON Schema for producers in other languages.

The schema is exported from the pydantic models and kept in the repository as
`schemas/event.schema.json`; a test fails when the two drift. Regenerate it with
`python -m schemas.contract`.

A few rules the models enforce in code are added to the export so that any draft 2020-12
validator applies them (`format` is only an annotation there): a date-time must carry a UTC
offset, a date must look like one, and a customer needs at least one identifier other than
`name`. What the schema still cannot say is documented in `description`.

Each property of `customer`, `source` and the payloads carries `x-personal` (an annotation,
which validators ignore): whether the ledger encrypts it with the customer's key (issue 16,
`schemas.privacy.personal`).
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

from schemas.codec import EVENT_ADAPTER
from schemas.events import CURRENT_SCHEMA_VERSION, IDENTIFIER_KINDS
from schemas.privacy.personal import CUSTOMER_FIELDS, PAYLOAD_FIELDS, SOURCE_FIELDS

SCHEMA_FILE = "event.schema.json"
"""The name of the committed schema file inside the `schemas` package."""

SCHEMA_ID = f"urn:journey-ledger:schemas:event:v{CURRENT_SCHEMA_VERSION}"
"""The `$id` of the exported schema."""

DATE_TIME_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$"
)
"""An RFC 3339 date-time as the codec reads it: the UTC offset (Z or +hh:mm) is required."""

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
"""A plain calendar date, as a slot without a time."""

_DESCRIPTION = (
    "One touchpoint of a customer journey (journey-ledger event contract, "
    f"v{CURRENT_SCHEMA_VERSION}), told apart by `type`. "
    "Also enforced by the ledger but not expressible here: identifiers must not be blank "
    "once trimmed; a phone number needs at least 6 digits; dates must exist on the calendar; "
    "card numbers anywhere in an event are masked and the event marked `redacted`; "
    "the same `event_id` with different content is rejected as a conflict. "
    "`x-personal` marks the fields encrypted with the customer's key; a payload field of "
    "the producer's own is personal too, and a tenant may mark more."
)


def _with_patterns(node: Any) -> None:
    """Give every date-time and date string a pattern, in place."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "date-time":
            node.setdefault("pattern", DATE_TIME_PATTERN)
        elif node.get("type") == "string" and node.get("format") == "date":
            node.setdefault("pattern", DATE_PATTERN)
        for value in node.values():
            _with_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _with_patterns(value)


def _customer_needs_identifier(schema: dict[str, Any]) -> None:
    customer = schema["$defs"]["Customer"]
    customer["anyOf"] = [
        {"required": [kind], "properties": {kind: {"type": "string"}}} for kind in IDENTIFIER_KINDS
    ]
    customer["description"] = (
        customer.get("description", "") + " At least one identifier other than `name` is required."
    ).strip()


def _personal_annotations(schema: dict[str, Any]) -> None:
    definitions = schema["$defs"]
    for name, definition in definitions.items():
        table = {"Customer": CUSTOMER_FIELDS, "Source": SOURCE_FIELDS}.get(name)
        if table is None and name.endswith("Payload"):
            table = PAYLOAD_FIELDS
        if table is None:
            continue
        for field, node in definition.get("properties", {}).items():
            node["x-personal"] = table[field] == "personal"


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event of the contract."""
    exported = copy.deepcopy(EVENT_ADAPTER.json_schema())
    _with_patterns(exported)
    _customer_needs_identifier(exported)
    _personal_annotations(exported)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "journey-ledger event",
        "description": _DESCRIPTION,
        **exported,
    }


def render_schema() -> str:
    """The schema as committed: two-space indents, sorted keys, a trailing newline."""
    return json.dumps(event_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_path() -> Path:
    """Where the committed `event.schema.json` lives (package data of `schemas`)."""
    return Path(str(resources.files("schemas").joinpath(SCHEMA_FILE)))


def main() -> int:
    """Write the schema file from the models and say where it went."""
    path = schema_path()
    path.write_text(render_schema(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
