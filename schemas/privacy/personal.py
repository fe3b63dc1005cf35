"""Which fields of an event are personal (encrypted with the customer's key) and which stay clear.

The split, as data in one place (README, "Privacy"):

- personal: every `customer` field (the identifiers and the name); payload free text; any
  payload field of a producer's own (an extra, not in the catalogue) unless it is `null`;
  and whatever a tenant marks in its settings (`[tenants.<name>] personal = [...]`).
- clear: what statistics, rules and routing need: the envelope (ids, type, times, tenant),
  the source (system, channel, site, actor), and the payload's rule inputs (slots, amounts,
  codes, references, flags' ids and times).

A new payload field in the catalogue must be classified here on purpose: a unit test fails for
a model field missing from `PAYLOAD_FIELDS` and for any golden event field left to the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Literal, get_args

from pydantic import BaseModel

from schemas.envelope import IDENTIFIER_KINDS
from schemas.events import Event

ERASED = "[erased]"
"""What a personal field reads once its customer's data key is gone (or the customer erased)."""

Class = Literal["personal", "clear"]
"""What a field is: encrypted with the customer's data key, or left as it is."""

ENVELOPE_FIELDS: Mapping[str, Class] = MappingProxyType(
    {
        "event_id": "clear",  # the dedup key and the encryption's associated data
        "type": "clear",
        "occurred_at": "clear",
        "tenant": "clear",
        "correlation_id": "clear",  # a case or session reference that groups events
        "schema_version": "clear",
        "redacted": "clear",
    }
)
"""Top-level fields besides `source`, `customer` and `payload`: all clear."""

SOURCE_FIELDS: Mapping[str, Class] = MappingProxyType(
    {
        "system": "clear",
        "channel": "clear",
        "site": "clear",  # notifications route by site
        # The member of staff or bot that recorded the touchpoint: the operator's record of who
        # handled a case, not the customer's data (a tenant may mark it personal).
        "actor": "clear",
    }
)
"""The `source` block: which system, channel, site and actor; all clear."""

CUSTOMER_FIELDS: Mapping[str, Class] = MappingProxyType(
    {**dict.fromkeys(IDENTIFIER_KINDS, "personal"), "name": "personal"}
)
"""The `customer` block: every identifier and the name are personal (the identity graph keys
them by keyed hash, `streams.crypto.hashing`, never in clear)."""

PAYLOAD_FIELDS: Mapping[str, Class] = MappingProxyType(
    {
        # Free text: whatever a customer, an agent or a system wrote. No rule reads it.
        "text": "personal",
        "message": "personal",
        "comment": "personal",
        "note": "personal",
        "reason": "personal",
        "error": "personal",  # a form's error often echoes what was typed ("not an e-mail: ...")
        "outcome": "personal",  # a call's outcome is an agent's free text, no rule reads it
        # Rule inputs and statistics: slots, amounts, codes, references, enumerations.
        "form": "clear",
        "requested_slot": "clear",
        "stated_slot": "clear",
        "slot": "clear",
        "effective_from": "clear",
        "until": "clear",
        "speaker": "clear",
        "asked_for": "clear",  # names of what was asked ("phone number"), not the answers
        "provided": "clear",
        "medium": "clear",
        "in_reply_to": "clear",  # an event id
        "via": "clear",
        "direction": "clear",
        "transferred_to": "clear",  # another party (a business), the referral rule's input
        "to": "clear",
        # Business references the order, booking and payment rules join on; pseudonymous on
        # their own. The same value in `customer.order_id` is an identifier there: encrypted.
        "booking_id": "clear",
        "order_id": "clear",
        "payment_id": "clear",
        "service": "clear",
        "template": "clear",
        "score": "clear",
        "scale": "clear",
        "items": "clear",  # product codes (SKUs)
        "amount": "clear",
        "currency": "clear",
        "programme": "clear",
        "found": "clear",
        "recall_code": "clear",
        "flag_id": "clear",
        "customer_id": "clear",  # the ledger's own customer id (an erasure names it)
        "customers": "clear",  # the ledger's customer ids a split or confirmed merge named
        "grounds": "clear",  # an erasure's reference (a ticket), never the request's text
        # Staff acting on flags and identity: the operator's audit trail, as `source.actor`.
        "by": "clear",
        "decided_by": "clear",
        "assignee": "clear",
    }
)
"""Every payload field of the catalogue, by name (a name means the same in every type)."""

EXTRA_FIELD: Class = "personal"
"""A payload field of a producer's own, not in the catalogue: personal unless a tenant says."""


def _catalogue() -> Mapping[str, frozenset[str]]:
    # Read from the models themselves, so a field added to a payload shows up here (and the
    # unit test that every field is classified fails until it is).
    members: tuple[type[BaseModel], ...] = get_args(get_args(Event)[0])
    catalogue = {}
    for model in members:
        (type_,) = get_args(model.model_fields["type"].annotation)
        payload = model.model_fields["payload"].annotation
        if not (isinstance(payload, type) and issubclass(payload, BaseModel)):
            raise TypeError(f"{type_}: a payload is a model")
        catalogue[str(type_)] = frozenset(payload.model_fields)
    return MappingProxyType(catalogue)


CATALOGUE_PAYLOADS: Mapping[str, frozenset[str]] = _catalogue()
"""Event type -> the payload fields its model declares (anything else is an extra)."""


_CLEAR_PAYLOADS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        type_: frozenset(name for name in names if PAYLOAD_FIELDS.get(name) == "clear")
        for type_, names in CATALOGUE_PAYLOADS.items()
    }
)


def tenant_path_problem(path: str) -> str | None:
    """Why a path a tenant marks personal is not one it may mark; None when it may."""
    section, dot, name = path.partition(".")
    if not dot or not name or "." in name:
        return f"{path!r}: write payload.<field> or source.actor"
    if section == "source" and name == "actor":
        return None
    if section != "payload":
        return f"{path!r}: only payload fields and source.actor may be marked personal"
    return None


def classify(
    document: Mapping[str, Any], tenant_paths: Iterable[str] = ()
) -> Iterator[tuple[str, Class, bool]]:
    """Each field of an event document: (dotted path, class, whether the split names it).

    `customer`, `source` and `payload` are walked one level down: a nested value (an extra
    that is an object or a list) is one field, classified as a whole.
    """
    marked = frozenset(tenant_paths)
    known = CATALOGUE_PAYLOADS.get(str(document.get("type")), frozenset())
    for key in document:
        if key in ("source", "customer", "payload") and isinstance(document[key], Mapping):
            table = {"source": SOURCE_FIELDS, "customer": CUSTOMER_FIELDS}.get(key)
            for name in document[key]:
                path = f"{key}.{name}"
                if table is not None:
                    named = name in table
                    cls: Class = table.get(name, "personal")
                else:
                    named = name in known
                    cls = PAYLOAD_FIELDS.get(name, EXTRA_FIELD) if named else EXTRA_FIELD
                yield path, "personal" if path in marked else cls, named or path in marked
        else:
            yield key, ENVELOPE_FIELDS.get(key, "clear"), key in ENVELOPE_FIELDS


def personal_paths(document: Mapping[str, Any], tenant_paths: Iterable[str] = ()) -> list[str]:
    """The dotted paths of the document's personal fields that hold a value (not null).

    The same answer as the personal fields of `classify`, on the hot path of every event.
    """
    customer = document.get("customer")
    payload = document.get("payload")
    paths = [f"customer.{n}" for n, v in customer.items() if v is not None] if customer else []
    if payload:
        clear = _CLEAR_PAYLOADS.get(document.get("type"), frozenset())  # type: ignore[arg-type]
        paths.extend(f"payload.{n}" for n, v in payload.items() if v is not None and n not in clear)
    for path in tenant_paths:
        section, _, name = path.partition(".")
        block = document.get(section)
        if block and block.get(name) is not None and path not in paths:
            paths.append(path)
    return paths
