"""Keyed hashes of identifiers: the identity graph finds customers without storing identifiers.

Derivation (README, "Privacy"): each tenant's secret is
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


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(first + second for first in _BASE32 for second in _BASE32)
"""Every pair of lower-case base32 digits, indexed by the 10 bits the pair spells."""
_SHIFTS = tuple(range(250, -1, -10))


def base32_256(digest: bytes) -> str:
    """Unpadded lower-case base32 of 32 bytes, as `base64.b32encode` spells it at about half its
    cost (both loop in Python: this one takes 10 bits a step, through a table)."""
    number = int.from_bytes(digest, "big") << 4  # 256 bits padded to 260: 52 digits
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in _SHIFTS])


class IdentityHasher:
    """`identity_hash` under one tenant's secret: the HMAC is keyed once, as keying it costs
    about as much as hashing a key."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: bytes) -> None:
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def __call__(self, normalised_key: str) -> str:
        """`h:` + base32 of HMAC-SHA256 of a normalised identity key under the secret."""
        mac = self._keyed.copy()
        mac.update(normalised_key.encode())
        return HASH_PREFIX + base32_256(mac.digest())

    def __repr__(self) -> str:
        """No secret shown."""
        return "IdentityHasher(secret=…)"


GRAPH_TAG_PREFIX = "t:"
"""How the link tag of a key the identity graph holds hashed starts (`graph_key_tag`)."""

_TAG_PERSON = b"journeys tag v1"
"""BLAKE2b personalisation of graph-key tags (domain separation, at most 16 bytes)."""


def graph_key_tag(graph_key: str) -> str:
    """The link tag of a key the graph holds hashed (`kind:#...`, `projections.identifiers.
    GraphHasher`): `t:` + 27 base64url characters of an unkeyed BLAKE2b-160 of it. The key's
    keyed hash is past guessing already, so a second keyed hash (HMAC, then base32: a third of
    sealing's CPU) adds nothing; this one only hides the key's clear parts (a phone's country
    code) and fixes the tag's length."""
    digest = hashlib.blake2b(graph_key.encode(), digest_size=20, person=_TAG_PERSON).digest()
    return GRAPH_TAG_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def identity_hash(secret: bytes, normalised_key: str) -> str:
    """`h:` + base32 of HMAC-SHA256 of a normalised identity key under a tenant's secret."""
    return IdentityHasher(secret)(normalised_key)
