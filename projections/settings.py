"""What the pure folds need to know: rule thresholds and each tenant's phone region."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import lru_cache
from types import MappingProxyType

from projections.identifiers import GraphHasher
from projections.identity import IdentityPolicy, decide
from projections.rules import RULE_NAMES
from schemas.events import DECISION_TYPES, Event

RULES: tuple[str, ...] = RULE_NAMES
"""Every rule the ledger knows, in the order they are documented."""


DEFAULT_POLICY = IdentityPolicy()
"""The identity rules of a tenant with none configured: built-in junk, default limits."""


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Thresholds of the rules; the defaults are the documented ones."""

    duplicate_order_window: timedelta = timedelta(hours=24)
    enquiry_response_window: timedelta = timedelta(hours=24)
    referral_window: timedelta = timedelta(hours=72)
    referral_count: int = 3
    low_score_window: timedelta = timedelta(days=30)
    enabled: frozenset[str] = frozenset(RULES)


@dataclass(frozen=True, slots=True)
class FoldSettings:
    """Everything the folds are parameterised by, read once by the entry point."""

    rules: RuleSettings = RuleSettings()
    default_regions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    identity: Mapping[str, IdentityPolicy] = field(default_factory=lambda: MappingProxyType({}))
    default_identity: IdentityPolicy = DEFAULT_POLICY
    """The identity rules of a tenant not in `identity` (the default limits)."""
    identity_secret: Callable[[str], bytes] | None = field(default=None, repr=False)
    """Tenant -> its identity secret (`KeyProvider.identity_secret`) when the graph's keys are
    keyed hashes (sealing on); None: clear keys."""

    def hasher_for(self, tenant: str) -> GraphHasher | None:
        """What hashes the tenant's graph keys, or None when they are kept clear."""
        if self.identity_secret is None:
            return None
        return _hasher(self.identity_secret, tenant)

    def identity_for(self, tenant: str) -> IdentityPolicy:
        """The tenant's identity rules: blocked values, limits, priority (defaults when unset)."""
        return self.identity.get(tenant, self.default_identity)

    def with_decisions(self, decisions: Iterable[Event]) -> FoldSettings:
        """These settings with people's identity decisions applied (blocks, unblocks)."""
        by_tenant: dict[str, list[Event]] = {}
        for event in decisions:
            if event.type in DECISION_TYPES:
                by_tenant.setdefault(event.tenant, []).append(event)
        if not by_tenant:
            return self
        identity = dict(self.identity)
        for tenant, events in by_tenant.items():
            identity[tenant] = decide(
                self.identity_for(tenant), events, self.region_for(tenant), self.hasher_for(tenant)
            )
        return replace(self, identity=MappingProxyType(identity))

    def with_decided(self, tenant: str, decided: Mapping[str, str]) -> FoldSettings:
        """These settings with values a person blocked (blocked key -> why) for one tenant, as
        a live reader learns them from ingest's state."""
        policy = self.identity_for(tenant)
        both = MappingProxyType({**policy.decided, **decided})
        identity = {**self.identity, tenant: replace(policy, decided=both)}
        return replace(self, identity=MappingProxyType(identity))

    def region_for(self, tenant: str) -> str | None:
        """The tenant's default phone region (ISO 3166 alpha-2), if one is configured."""
        return self.default_regions.get(tenant)


# Cached: deriving a tenant's secret (HKDF) costs more than the hashes it keys, and every event
# of the tenant asks for it.
@lru_cache(maxsize=4096)
def _hasher(identity_secret: Callable[[str], bytes], tenant: str) -> GraphHasher:
    return GraphHasher(identity_secret(tenant))
