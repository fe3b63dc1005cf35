"""Keyed hashes of identifiers: the identity graph finds customers without storing identifiers.

Derivation (README, "Privacy (in progress)"): each tenant's secret is
`HKDF-SHA256(identity root, salt = none, info = "journeys identity v1|" + tenant)`, 32 bytes;
an identity key is `h:` + the lower-case base32 (unpadded) of `HMAC-SHA256(tenant secret,
normalised key)`. The same identifier gives the same key within a tenant, and other tenants'
keys differ. The identity root is `[privacy] identity_key` when set, else the master key: a
root kept apart from the wrapping key lets `journeys keys rotate` change the master key and
keep every hash (suppressed identifiers, link tags, identity-graph keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from streams.crypto.keys import derive

HASH_PREFIX = "h:"
"""How a keyed identity hash starts (so it never passes for a normalised identifier)."""


def tenant_secret(identity_root: bytes, tenant: str) -> bytes:
    """The tenant's 32-byte identity secret, derived from the identity root."""
    return derive(identity_root, f"journeys identity v1|{tenant}")


def identity_key_id(identity_root: bytes) -> str:
    """`ik_` + 12 hex digits derived from the identity root: names it, shows nothing of it."""
    return "ik_" + derive(identity_root, "journeys identity key id v1", 6).hex()


def identity_hash(secret: bytes, normalised_key: str) -> str:
    """`h:` + base32 of HMAC-SHA256 of a normalised identity key under a tenant's secret."""
    digest = hmac.new(secret, normalised_key.encode(), hashlib.sha256).digest()
    return HASH_PREFIX + base64.b32encode(digest).decode().rstrip("=").lower()
