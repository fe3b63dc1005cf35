"""Event factories for tests: realistic defaults, override what the test is about."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.codec import validate_document
from schemas.events import Event
from schemas.outputs import FlagChange, FlagSnapshot, WithdrawnFlag

T0 = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)
"""Monday 11 March 2024, 09:00 UTC: the start of most test journeys."""

_ids = itertools.count(1)


def at(hours: float = 0, minutes: float = 0, days: float = 0) -> datetime:
    """A moment relative to T0."""
    return T0 + timedelta(hours=hours, minutes=minutes, days=days)


def raw(
    type_: str,
    payload: dict[str, Any] | None = None,
    *,
    when: datetime | str | None = None,
    system: str = "web",
    customer: dict[str, Any] | None = None,
    tenant: str = "acme",
    event_id: str | None = None,
    **envelope: Any,
) -> dict[str, Any]:
    """An event as the JSON object a producer would send."""
    moment = when if when is not None else T0
    document: dict[str, Any] = {
        "event_id": event_id or f"e{next(_ids):05d}",
        "type": type_,
        "occurred_at": moment.isoformat() if isinstance(moment, datetime) else moment,
        "tenant": tenant,
        "source": {"system": system, **envelope.pop("source", {})},
        "customer": customer if customer is not None else {"email": "sam@example.com"},
        "payload": payload or {},
    }
    document.update(envelope)
    return document


def ev(type_: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> Event:
    """A validated event; same arguments as `raw`."""
    return validate_document(raw(type_, payload, **kwargs))


_change_ids = itertools.count()


def flag_change(
    change: str, tenant: str, customer_id: str, flag_id: str, **fields: Any
) -> FlagChange:
    """A flag-topic record; the flag's fields not given take neutral defaults."""
    body: dict[str, Any] = {
        "flag_id": flag_id,
        "rule": "DATE_MISMATCH",
        "severity": "high",
        "status": "open",
        "message": "",
        "event_ids": [],
        "opened_at": "",
        "resolved_at": None,
        "resolution": None,
        "systems": [],
        "sites": [],
    }
    body.update(fields)
    flag = (
        WithdrawnFlag(flag_id=flag_id)
        if change == "withdrawn"
        else FlagSnapshot.model_validate(body)
    )
    return FlagChange.model_validate(
        {
            "change_id": f"chg_test_{next(_change_ids)}",
            "change": change,
            "tenant": tenant,
            "customer_id": customer_id,
            "flag": flag,
        }
    )
