"""The privacy settings: `[privacy]` (the master key, a new one to rotate to, the identity
hashes' root) and each tenant's `[tenants.<name>.privacy]` (retention, suppression of erased
identifiers)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from streams.crypto.hashing import identity_key_id
from streams.crypto.keys import (
    IDENTITY_KEY_ENV,
    IDENTITY_KEY_SETTING,
    MASTER_KEY_ENV,
    LocalKeyProvider,
    decode_key,
    master_key_problem,
)
from streams.crypto.ring_cache import RING_CACHE_SIZE, RING_CACHE_TTL_S, RingCache
from streams.crypto.suppression import Suppression

NEW_MASTER_KEY_ENV = "JOURNEYS_NEW_MASTER_KEY"
"""The environment variable overriding `[privacy] new_master_key` (what `journeys keys rotate`
re-wraps the data keys with)."""

NEW_MASTER_KEY_SETTING = "[privacy] new_master_key"
"""Where the master key to rotate to is set in the settings file."""

MASTER_KEY_VARIABLES = {
    "master_key": MASTER_KEY_ENV,
    "new_master_key": NEW_MASTER_KEY_ENV,
    "identity_key": IDENTITY_KEY_ENV,
}
"""`[privacy]` key field -> the environment variable that overrides it."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrivacySection(_Section):
    """`[privacy]`: the master key (base64 of 32 bytes) that wraps every customer's data key,
    for a rotation only the master key to re-wrap them with, the identity hashes' root, and
    how many rings read from other workers are kept, for how long."""

    master_key: str | None = Field(default=None, repr=False)
    new_master_key: str | None = Field(default=None, repr=False)
    identity_key: str | None = Field(default=None, repr=False)
    """The root of the tenants' identity secrets (suppressed identifiers, link tags, graph
    keys), base64 of 32 bytes; None: the master key. Set apart, a master-key rotation keeps
    every hash (to keep today's hashes, set it to the current master key)."""
    ring_cache_size: int = Field(default=RING_CACHE_SIZE, ge=0, le=1_000_000)
    """Customers' rings read from other workers kept in memory at most (0: none kept)."""
    ring_cache_seconds: float = Field(default=RING_CACHE_TTL_S, ge=0, le=300)
    """How long a kept ring is used: the most a worker that did not take part in an erasure
    may still open the erased customer's fields (0: rings are asked for every time)."""

    @field_validator("master_key", "new_master_key", "identity_key")
    @classmethod
    def _usable(cls, value: str | None, info: ValidationInfo) -> str | None:
        what = (info.field_name or "").removeprefix("new_").replace("_", " ")
        problem = master_key_problem(value, what) if value is not None else None
        if problem is not None:
            raise ValueError(problem)  # the reason never holds the key (see _load_file)
        return value

    def provider(self, new: bool = False) -> LocalKeyProvider | None:
        """The (new) master key's provider, or None when it is not set; its identity secrets
        derive from `identity_key` when set (the same for the current and the new key)."""
        key = self.new_master_key if new else self.master_key
        if key is None:
            return None
        return LocalKeyProvider.from_setting(key, identity_text=self.identity_key)

    def identity_root(self) -> bytes | None:
        """The root of the identity secrets: `identity_key`, else the master key (or None)."""
        key = self.identity_key if self.identity_key is not None else self.master_key
        return decode_key(key) if key is not None else None

    def identity_root_id(self) -> str | None:
        """The identity root's id (`ik_…`), or None when neither key is set."""
        root = self.identity_root()
        return identity_key_id(root) if root is not None else None

    def ring_cache(self) -> RingCache:
        """An empty cache of rings read from other workers, as these settings size it."""
        return RingCache(self.ring_cache_size, self.ring_cache_seconds)


class TenantPrivacySection(_Section):
    """`[tenants.<name>.privacy]`: how long a silent customer is kept, and whether an erased
    customer's identifiers are refused from then on."""

    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    """Forget a customer whose last event is older than this many days (None: keep)."""
    suppress_erased: bool = False
    """Drop later events carrying an identifier of a customer erased by `journeys forget` or
    the API (kept as keyed hashes only; needs the master key)."""


def retention_days(tenants: Mapping[str, TenantPrivacySection]) -> Mapping[str, int]:
    """Tenant -> retention in days, for the tenants that set one."""
    days = {t: p.retention_days for t, p in tenants.items() if p.retention_days is not None}
    return MappingProxyType(days)


def suppression_problem(
    privacy: PrivacySection, tenants: Mapping[str, TenantPrivacySection]
) -> str | None:
    """Why the tenants' suppression cannot work (no identity root to hash with), or None."""
    asking = sorted(t for t, p in tenants.items() if p.suppress_erased)
    if asking and privacy.identity_root() is None:
        return (
            f"tenants.{asking[0]}.privacy.suppress_erased: suppression keeps identifiers as "
            f"keyed hashes of the master key (or {IDENTITY_KEY_SETTING}): set [privacy] "
            f"master_key or {MASTER_KEY_ENV}"
        )
    return None


def suppression(
    privacy: PrivacySection, tenants: Mapping[str, TenantPrivacySection]
) -> Suppression | None:
    """What suppresses erased identifiers at ingest; None when no tenant asks (or no key)."""
    asking = [t for t, p in tenants.items() if p.suppress_erased]
    root = privacy.identity_root()
    if not asking or root is None:
        return None
    return Suppression(root, asking)
