"""Replay queries: an identifier (`phone:07700 900123`, `registration:AB12 CDE`) or a customer id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from pydantic import ValidationError

from projections.identifiers import GraphHasher, NormalisedId, normalise
from projections.rules.readers import field_name
from schemas.codec import problems_of
from schemas.errors import UnknownIdentifierError
from schemas.events import IDENTIFIER_KINDS, Customer
from schemas.redaction import mask_text

CUSTOMER_ID = "customer_id"
"""The query kind of a customer id (`cus_…`)."""

_CUSTOMER_ID = re.compile(r"^cus_[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class Query:
    """What the reviewer asked for: an identifier kind and its value as given, or a customer id."""

    kind: str
    """One of `IDENTIFIER_KINDS`, or `customer_id`."""
    value: str

    def normalised(self, region: str | None, hasher: GraphHasher | None = None) -> NormalisedId:
        """The identifier normalised (and its key hashed) as events of a tenant with this phone
        region (and graph hasher) are."""
        if self.kind == CUSTOMER_ID:
            raise ValueError("a customer id is not normalised")
        return normalise(self.kind, self.value, region, hasher)

    def __str__(self) -> str:
        return self.value if self.kind == CUSTOMER_ID else f"{self.kind}:{self.value}"


def parse_query(text: str) -> Query:
    """Parse `KIND:VALUE` (any identifier kind, common aliases such as `registration:`) or `cus_…`.

    The value is validated as an event's customer field would be. Raises
    `UnknownIdentifierError` naming what is wrong.
    """
    stripped = text.strip()
    if not stripped:
        raise UnknownIdentifierError("the identifier is empty")
    if _CUSTOMER_ID.match(stripped.lower()):
        return Query(CUSTOMER_ID, stripped.lower())
    kind_text, colon, value = stripped.partition(":")
    if not colon:
        if stripped.lower().startswith("cus_"):
            raise UnknownIdentifierError(
                f"{stripped!r} is not a customer id: cus_ followed by 16 hex digits"
            )
        raise UnknownIdentifierError(f"{_safe(stripped)!r} names no kind of identifier")
    kind = field_name(kind_text)
    value = value.strip()
    if kind in (CUSTOMER_ID, "customer", "cus"):
        return parse_query(value) if _CUSTOMER_ID.match(value.lower()) else _bad_id(value)
    if kind == "name":
        raise UnknownIdentifierError("a name is not an identifier: two people can share a name")
    if kind not in IDENTIFIER_KINDS:
        raise UnknownIdentifierError(f"unknown kind of identifier {kind_text.strip()!r}")
    masked, had_card = mask_text(value)
    if had_card:
        raise UnknownIdentifierError(
            f"{kind}: {masked!r} holds a card number, which the ledger never stores",
            hint="query by card_token, order_id or another identifier",
        )
    try:
        # The same validation as an event's customer field, so a query that passes can match.
        Customer.model_validate({kind: value})
    except ValidationError as exc:
        reasons = "; ".join(p.reason for p in problems_of(exc, {kind: value}))
        raise UnknownIdentifierError(f"{kind}: {_safe(value)!r} is not valid: {reasons}") from None
    return Query(kind, value)


def _bad_id(value: str) -> NoReturn:
    raise UnknownIdentifierError(
        f"{_safe(value)!r} is not a customer id: cus_ followed by 16 hex digits"
    )


def _safe(text: str) -> str:
    return mask_text(text)[0]


def parse_identifier(text: str, region: str | None = None) -> str:
    """The identity key a query names (`phone:+44:7700900123`), or the customer id it is.

    Raises `UnknownIdentifierError` naming what is wrong.
    """
    query = parse_query(text)
    return query.value if query.kind == CUSTOMER_ID else query.normalised(region).key
