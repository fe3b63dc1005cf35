"""Keyed hashes of identifiers: the identity graph finds customers without storing identifiers.

Derivation (README, "Privacy (in progress)"): each tenant's secret is
`HKDF-SHA256(master key, salt = none, info = "journeys identity v1|" + tenant)`, 32 bytes; an
identity key is `h:` + the lower-case base32 (unpadded) of `HMAC-SHA256(tenant secret,
normalised key)`. Nothing new to keep secret, the same identifier gives the same key within a
tenant, and other tenants' keys differ. Rotating the master key changes every hash: the
identity graph is then rebuilt from the log (the wiring session decides how).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from streams.crypto.keys import derive

HASH_PREFIX = "h:"
"""How a keyed identity hash starts (so it never passes for a normalised identifier)."""


def tenant_secret(master_key: bytes, tenant: str) -> bytes:
    """The tenant's 32-byte identity secret, derived from the master key."""
    return derive(master_key, f"journeys identity v1|{tenant}")


def identity_hash(secret: bytes, normalised_key: str) -> str:
    """`h:` + base32 of HMAC-SHA256 of a normalised identity key under a tenant's secret."""
    digest = hmac.new(secret, normalised_key.encode(), hashlib.sha256).digest()
    return HASH_PREFIX + base64.b32encode(digest).decode().rstrip("=").lower()
