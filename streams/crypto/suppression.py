"""Suppression: a tenant that asks for it never stitches an erased customer's identifiers again.

When such a tenant erases a customer, ingest keeps each of the customer's identifier keys as a
keyed hash (`streams.crypto.hashing`: HMAC-SHA256 under the tenant's secret, derived from the
identity root: `[privacy] identity_key`, else the master key), never the identifier. A later event carrying one of them is dropped before
stitching and counted under the field that carried it (`customer.email`, ...): it is not
dead-lettered, since a dead letter would keep its personal data in clear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

from projections.identifiers import NormalisedId
from streams.crypto.hashing import IdentityHasher, tenant_secret
from streams.store import keys
from streams.store.state import BatchState


class Suppression:
    """The tenants that suppress erased customers' identifiers, with their identity secrets."""

    __slots__ = ("_hashers",)

    def __init__(self, identity_root: bytes, tenants: Iterable[str]) -> None:
        self._hashers: Mapping[str, IdentityHasher] = {
            t: IdentityHasher(tenant_secret(identity_root, t)) for t in tenants
        }

    def __repr__(self) -> str:
        return f"Suppression(tenants={sorted(self._hashers)})"

    def covers(self, tenant: str) -> bool:
        """Whether the tenant suppresses its erased customers' identifiers."""
        return tenant in self._hashers

    def hashed(self, tenant: str, key: str) -> str:
        """An identifier key's keyed hash in the tenant (the only form kept)."""
        return self._hashers[tenant](key)

    def remember(self, state: BatchState, tenant: str, member_keys: Iterable[str]) -> int:
        """Keep an erased customer's identifier keys, hashed, when the tenant suppresses; how
        many were kept."""
        if not self.covers(tenant):
            return 0
        kept = 0
        for key in member_keys:
            state.put(keys.suppressed_key(tenant, self.hashed(tenant, key)), b"")
            kept += 1
        return kept

    def field_of(self, state: BatchState, tenant: str, ids: Iterable[NormalisedId]) -> str | None:
        """The field (`customer.<kind>`) of the first identifier of an event that an erased
        customer held, or None (also when the tenant does not suppress or has erased nobody)."""
        if not self.covers(tenant):
            return None
        prefix = keys.suppressed_prefix(tenant)
        # asked once a batch of the store (then one look at the batch's own writes): a tenant
        # that has erased nobody yet hashes nothing
        if not state.stored_any(prefix) and not state.any_under(prefix):
            return None
        for ident in ids:
            if ident.unusable is None and ident.kind != "event":
                marker = keys.suppressed_key(tenant, self.hashed(tenant, ident.key))
                if state.get(marker) is not None:
                    return f"customer.{ident.kind}"
        return None


def count_suppressed(
    suppressed: MutableMapping[tuple[str, str], int] | None, tenant: str, field: str
) -> None:
    """Count a suppressed event under its tenant and the field that carried the identifier."""
    if suppressed is not None:
        suppressed[(tenant, field)] = suppressed.get((tenant, field), 0) + 1
