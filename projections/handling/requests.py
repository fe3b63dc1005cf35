"""What people ask the ledger to record, checked and turned into event documents.

Pure: an action on a flag (`acknowledge`, `assign`, …) or an identity decision (`block`, …)
arrives as a small JSON object from the API or the command line; it is checked field by field
(each refusal names its field) and written as the touchpoint event that records it. The event
id, the moment and who acts are given by the caller: who acts comes from the token, never
from the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.handling.handling import EVENT_TYPE_OF
from projections.replay import CUSTOMER_ID, parse_query
from schemas.errors import JourneyLedgerError, UnknownIdentifierError
from schemas.types import parse_timestamp

MAX_NOTE = 10_000
"""The longest note (the events' `Text`)."""

MAX_NAME = 200
"""The longest assignee, reason or user (the events' `Name`)."""

DECISIONS: dict[str, str] = {
    "block": "identity.blocked",
    "unblock": "identity.unblocked",
    "split": "identity.split",
    "merge": "identity.merge_confirmed",
}
"""Each identity decision and the event type that records it."""

ACTION_FIELDS = ("action", "note", "assignee", "until")
"""The fields an action's body may have."""

DECISION_FIELDS = ("decision", "identifier", "customers", "customer", "via", "tenant", "reason")
"""The fields an identity decision's body may have."""

BY_CUSTOMERS = {"merge": "customers", "split": "customer"}
"""The decisions that may name customer ids instead of an identifier, and the field for them."""

_CUSTOMER_ID = re.compile(r"^cus_[0-9a-f]{16}$")

_NEEDS = {"assign": "assignee", "note": "note", "resolve": "note", "snooze": "until"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # keeps \t and \n


class RequestError(JourneyLedgerError, ValueError):
    """A request's body is not what the ledger can record; `field` names what is wrong."""

    hint = "see the API reference (GET /v1/openapi.json)"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """An action on a flag, checked: what, and the note, assignee or moment it needs."""

    action: str
    note: str | None = None
    assignee: str | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """An identity decision, checked: its event type, the `KIND:VALUE` (None when it names
    customer ids instead, to be resolved by `projections.handling.resolve`), tenant, reason,
    the customer ids and the `KIND:VALUE` (`via`) a choice among several is narrowed to."""

    type: str
    identifier: str | None
    tenant: str
    reason: str
    customers: tuple[str, ...] = ()
    via: str | None = None


def _object(body: Any, fields: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise RequestError("body", "a JSON object")
    unknown = sorted(str(key) for key in body if key not in fields)
    if unknown:
        raise RequestError(_shown(unknown[0]), f"unknown field; known: {', '.join(fields)}")
    return body


def _shown(text: str) -> str:
    return _CONTROL.sub("?", text[:40])


def _text(body: Mapping[str, Any], field: str, *, longest: int, lines: bool = False) -> str | None:
    """A string field trimmed (None when absent, null or blank); no control characters."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(field, "must be a string")
    if len(value) > longest:
        raise RequestError(field, f"too long: {len(value):,} characters, at most {longest:,}")
    if (_CONTROL_IN_TEXT if lines else _CONTROL).search(value):
        allowed = " (line breaks and tabs are)" if lines else ""
        raise RequestError(field, f"control characters are not allowed{allowed}")
    return value.strip() or None


def parse_action(body: Any, now: datetime | None = None) -> ActionRequest:
    """Check an action's body; `RequestError` naming the field otherwise. Given `now`, a
    snooze must end after it."""
    fields = _object(body, ACTION_FIELDS)
    action = fields.get("action")
    if not isinstance(action, str) or action not in EVENT_TYPE_OF:
        raise RequestError("action", f"one of {', '.join(EVENT_TYPE_OF)}")
    note = _text(fields, "note", longest=MAX_NOTE, lines=True)
    assignee = _text(fields, "assignee", longest=MAX_NAME)
    until_text = _text(fields, "until", longest=64)
    needed = _NEEDS.get(action)
    given = {"note": note, "assignee": assignee, "until": until_text}
    if needed is not None and given[needed] is None:
        what = "the reason" if action == "resolve" else "required"
        raise RequestError(needed, f"{what} for {action}")
    for name in ("assignee", "until"):
        if given[name] is not None and name != needed:
            raise RequestError(name, f"only for {'assign' if name == 'assignee' else 'snooze'}")
    until = None
    if until_text is not None:
        try:
            until = parse_timestamp(until_text)
        except ValueError as exc:
            raise RequestError("until", f"not a timestamp: {exc}") from None
        if now is not None and until <= now:
            raise RequestError("until", "must be in the future: a snooze ends after now")
    return ActionRequest(action, note, assignee, until)


def linking_identifiers(
    identifiers: Iterable[Mapping[str, Any]], priority: Sequence[str]
) -> list[tuple[str, str]]:
    """The (kind, value) of a journey's identifiers that may link, in `priority` order (those
    listed `not_used_for_matching` never link). The caller checks that the identity graph
    gives each to the journey's customer: a link a limit held is not listed as refused."""
    rank = {kind: i for i, kind in enumerate(priority)}
    linking = sorted(
        (rank[kind], str(ident["value"]), kind)
        for ident in identifiers
        if (kind := str(ident.get("kind"))) in rank and not ident.get("not_used_for_matching")
    )
    return [(kind, value) for _, value, kind in linking]


def action_document(
    request: ActionRequest,
    *,
    flag_id: str,
    tenant: str,
    identifier: tuple[str, str],
    user: str,
    now: datetime,
    event_id: str,
) -> dict[str, Any]:
    """The touchpoint event recording an action on a flag, carrying the customer's identifier
    so that ingest stitches it into the flag's journey."""
    payload: dict[str, Any] = {"flag_id": flag_id, "by": user}
    if request.note is not None:
        payload["note"] = request.note
    if request.assignee is not None:
        payload["assignee"] = request.assignee
    if request.until is not None:
        payload["until"] = request.until.isoformat()
    kind, value = identifier
    return {
        "event_id": event_id,
        "type": EVENT_TYPE_OF[request.action],
        "occurred_at": now.isoformat(),
        "tenant": tenant,
        "source": {"system": "journeys", "channel": "system", "actor": user},
        "customer": {kind: value},
        "payload": payload,
        "schema_version": 1,
    }


def _required(body: Mapping[str, Any], field: str, longest: int) -> str:
    value = _text(body, field, longest=longest)
    if value is None:
        raise RequestError(field, "required")
    return value


def _identifier(fields: Mapping[str, Any], field: str) -> str | None:
    """A `KIND:VALUE` field checked (None when absent)."""
    identifier = _text(fields, field, longest=400)
    if identifier is None:
        return None
    try:
        query = parse_query(identifier)
    except JourneyLedgerError as exc:
        raise RequestError(field, Exception.__str__(exc)) from None
    if query.kind == CUSTOMER_ID:
        named = BY_CUSTOMERS.get(str(fields.get("decision")))
        instead = f" (give customer ids in {named!r})" if named and field == "identifier" else ""
        raise RequestError(field, f"an identifier (KIND:VALUE), not a customer id{instead}")
    return identifier


def _customer_ids(fields: Mapping[str, Any], field: str, count: int) -> tuple[str, ...]:
    """`customers` (a list of `count` distinct ids) or `customer` (one id), checked."""
    value = fields.get(field)
    given = value if count > 1 else [value]
    if not isinstance(given, list) or len(given) != count:
        raise RequestError(field, f"a list of {count} customer ids (cus_…)")
    ids = []
    for item in given:
        if not isinstance(item, str) or not _CUSTOMER_ID.match(item.strip().lower()):
            what = "each a customer id" if count > 1 else "a customer id"
            raise RequestError(field, f"{what} (cus_ and 16 hex digits)")
        ids.append(item.strip().lower())
    if len(set(ids)) != count:
        raise RequestError(field, "two different customers")
    return tuple(ids)


def parse_decision(body: Any) -> DecisionRequest:
    """Check an identity decision's body; `RequestError` naming the field otherwise.

    A merge may name two customers (`customers`) and a split one (`customer`) instead of the
    identifier; `via` then narrows a choice among several identifiers to one.
    """
    fields = _object(body, DECISION_FIELDS)
    decision = fields.get("decision")
    if not isinstance(decision, str) or decision not in DECISIONS:
        raise RequestError("decision", f"one of {', '.join(DECISIONS)}")
    for name in ("customers", "customer"):
        if fields.get(name) is not None and BY_CUSTOMERS.get(decision) != name:
            only = "merge" if name == "customers" else "split"
            raise RequestError(name, f"only for {only}")
    by_customers = BY_CUSTOMERS.get(decision)
    named = by_customers is not None and fields.get(by_customers) is not None
    identifier = _identifier(fields, "identifier")
    if named and identifier is not None:
        raise RequestError("identifier", f"give the identifier or {by_customers!r}, not both")
    if not named and identifier is None:
        either = f" (or {by_customers!r})" if by_customers else ""
        raise RequestError("identifier", f"required{either}")
    via = _identifier(fields, "via")
    if via is not None and not named:
        raise RequestError("via", f"only with {by_customers or 'customers'!r}")
    tenant = _required(fields, "tenant", 100)
    reason = _required(fields, "reason", MAX_NAME)
    customers: tuple[str, ...] = ()
    if named and by_customers is not None:
        customers = _customer_ids(fields, by_customers, 2 if decision == "merge" else 1)
    return DecisionRequest(DECISIONS[decision], identifier, tenant, reason, customers, via)


def decision_document(
    type_: str,
    identifier: str,
    tenant: str,
    reason: str,
    *,
    by: str,
    now: datetime,
    event_id: str,
    system: str,
    customers: Sequence[str] = (),
) -> dict[str, Any]:
    """The event recording an identity decision about `KIND:VALUE`, made by `by`; a split or
    confirmed merge resolved from customer ids records them (`payload.customers`).

    Raises `UnknownIdentifierError` for a malformed identifier or a customer id.
    """
    query = parse_query(identifier)
    if query.kind == CUSTOMER_ID:
        raise UnknownIdentifierError(
            "a decision names an identifier, not a customer id", hint="give KIND:VALUE"
        )
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": now.isoformat(),
        "tenant": tenant,
        "source": {"system": system, "channel": "system", "actor": by},
        "customer": {query.kind: query.value},
        "payload": {
            "reason": reason,
            "decided_by": by,
            **({"customers": list(customers)} if customers else {}),
        },
    }
