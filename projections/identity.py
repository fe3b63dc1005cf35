"""Identity stitching: events that share a normalised identifier belong to one customer.

The graph is kept as an index (key -> customer id) and member sets (customer id -> keys).
`link` is pure: it reads through an `IdentityView` and returns an `IdentityChange` that the
driver (an in-memory dict here, RocksDB in the worker) writes back. A customer's id is derived
from the smallest key it holds, so the id that survives a merge does not depend on the order
the events arrived in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from projections.identifiers import NormalisedId


class IdentityView(Protocol):
    """Read access to one tenant's identity graph."""

    def customer_of(self, key: str) -> str | None:
        """The customer that holds this identifier key, if any."""

    def members(self, customer_id: str) -> frozenset[str]:
        """The identifier keys a customer holds."""

    def phone_countries(self, nsn: str) -> frozenset[int]:
        """Country codes of international phone keys registered with this national number."""


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """What linking one event's identifiers does to the graph."""

    customer_id: str
    members: frozenset[str]
    absorbed: tuple[str, ...] = ()
    """Customer ids that are now `customer_id` (merged or renamed), sorted."""
    new_phone_countries: tuple[tuple[str, int], ...] = ()
    changed: bool = True


def customer_id_for(tenant: str, keys: Iterable[str]) -> str:
    """The deterministic id of a customer holding these keys."""
    smallest = min(keys)
    digest = hashlib.blake2b(f"{tenant}\x00{smallest}".encode(), digest_size=8).hexdigest()
    return f"cus_{digest}"


def stitch_keys(view: IdentityView, ids: Iterable[NormalisedId]) -> set[str]:
    """The keys whose owners this event's identifiers stitch to (phones cross formats)."""
    keys: set[str] = set()
    for ident in ids:
        keys.add(ident.key)
        phone = ident.phone
        if phone is None or phone.national_key is None:
            continue
        if phone.country_code is None:
            keys.update(f"phone:+{cc}:{phone.nsn}" for cc in view.phone_countries(phone.nsn))
        else:
            keys.add(phone.national_key)
    return keys


def link(view: IdentityView, tenant: str, ids: Iterable[NormalisedId]) -> IdentityChange:
    """Attach an event's identifiers to the graph, merging the customers they join."""
    ids = list(ids)
    own_keys = {ident.key for ident in ids}
    owners = sorted(
        {owner for key in stitch_keys(view, ids) if (owner := view.customer_of(key)) is not None}
    )
    members = set(own_keys)
    for owner in owners:
        members |= view.members(owner)
    frozen = frozenset(members)
    customer_id = customer_id_for(tenant, frozen)
    new_countries = tuple(
        sorted(
            (ident.phone.nsn, ident.phone.country_code)
            for ident in ids
            if ident.phone is not None
            and ident.phone.country_code is not None
            and ident.phone.national_key is not None
            and ident.phone.country_code not in view.phone_countries(ident.phone.nsn)
        )
    )
    if len(owners) == 1 and owners[0] == customer_id and own_keys <= view.members(customer_id):
        return IdentityChange(
            customer_id, frozen, changed=bool(new_countries), new_phone_countries=new_countries
        )
    absorbed = tuple(owner for owner in owners if owner != customer_id)
    return IdentityChange(customer_id, frozen, absorbed, new_countries)


@dataclass(slots=True)
class MemoryIdentity:
    """An in-memory identity graph for one tenant: the driver used offline and in tests."""

    index: dict[str, str] = field(default_factory=dict)
    member_sets: dict[str, frozenset[str]] = field(default_factory=dict)
    countries: dict[str, frozenset[int]] = field(default_factory=dict)

    def customer_of(self, key: str) -> str | None:
        """The customer that holds this identifier key, if any."""
        return self.index.get(key)

    def members(self, customer_id: str) -> frozenset[str]:
        """The identifier keys a customer holds."""
        return self.member_sets.get(customer_id, frozenset())

    def phone_countries(self, nsn: str) -> frozenset[int]:
        """Country codes of international phone keys registered with this national number."""
        return self.countries.get(nsn, frozenset())

    def apply(self, change: IdentityChange) -> None:
        """Write a change back."""
        if not change.changed:
            return
        for old in change.absorbed:
            self.member_sets.pop(old, None)
        self.member_sets[change.customer_id] = change.members
        for key in change.members:
            self.index[key] = change.customer_id
        for nsn, country in change.new_phone_countries:
            self.countries[nsn] = self.countries.get(nsn, frozenset()) | {country}

    def as_mapping(self) -> Mapping[str, frozenset[str]]:
        """Customer id -> keys, for inspection."""
        return dict(self.member_sets)
