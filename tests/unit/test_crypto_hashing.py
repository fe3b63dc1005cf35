"""Keyed identity hashes: stable per tenant, different across tenants, never the identifier."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.crypto.hashing import (
    HASH_PREFIX,
    IdentityHasher,
    base32_256,
    identity_hash,
    tenant_secret,
)

MASTER = bytes(range(32))


def test_the_same_identifier_gives_the_same_hash_within_a_tenant() -> None:
    secret = tenant_secret(MASTER, "acme")
    assert identity_hash(secret, "email:priya.shah@example.com") == identity_hash(
        tenant_secret(MASTER, "acme"), "email:priya.shah@example.com"
    )
    assert identity_hash(secret, "email:priya.shah@example.com").startswith(HASH_PREFIX)


def test_tenants_and_master_keys_give_different_hashes() -> None:
    key = "phone:+447700900123"
    acme = identity_hash(tenant_secret(MASTER, "acme"), key)
    globex = identity_hash(tenant_secret(MASTER, "globex"), key)
    rotated = identity_hash(tenant_secret(bytes(32), "acme"), key)
    assert len({acme, globex, rotated}) == 3


def test_the_hash_is_hmac_sha256_in_unpadded_lower_base32() -> None:
    digest = identity_hash(tenant_secret(MASTER, "acme"), "plate:YD19KXR")
    body = digest.removeprefix(HASH_PREFIX)
    assert len(body) == 52  # 32 bytes in base32, unpadded
    assert len(base64.b32decode(body.upper() + "====")) == 32


def test_the_tenant_secret_is_not_the_master_key() -> None:
    secret = tenant_secret(MASTER, "acme")
    assert len(secret) == 32
    assert secret != MASTER


@given(key=st.text(min_size=1, max_size=60), tenant=st.sampled_from(["acme", "initech"]))
def test_the_hash_never_holds_the_identifier(key: str, tenant: str) -> None:
    digest = identity_hash(tenant_secret(MASTER, tenant), key)
    if len(key) >= 6:  # shorter strings may be spelt by base32 by chance
        assert key.casefold() not in digest
    assert digest != key


@pytest.mark.parametrize("key", ["", "email:a@b.c"])
def test_any_key_hashes(key: str) -> None:
    assert identity_hash(tenant_secret(MASTER, "acme"), key).startswith("h:")


@given(digest=st.binary(min_size=32, max_size=32))
def test_the_table_base32_spells_as_the_standard_library(digest: bytes) -> None:
    assert base32_256(digest) == base64.b32encode(digest).decode().rstrip("=").lower()


@pytest.mark.parametrize("digest", [bytes(32), b"\xff" * 32, bytes(range(32))])
def test_the_table_base32_at_the_edges(digest: bytes) -> None:
    assert base32_256(digest) == base64.b32encode(digest).decode().rstrip("=").lower()


@given(key=st.text(max_size=80), tenant=st.sampled_from(["acme", "initech"]))
def test_a_keyed_once_hasher_gives_hmac_sha256_of_each_key(key: str, tenant: str) -> None:
    secret = tenant_secret(MASTER, tenant)
    hasher = IdentityHasher(secret)
    expected = hmac.new(secret, key.encode(), hashlib.sha256).digest()
    for _ in range(2):  # the keyed state is copied, never consumed
        assert hasher(key) == HASH_PREFIX + base64.b32encode(expected).decode().rstrip("=").lower()
    assert "secret" in repr(hasher)
    assert secret.hex() not in repr(hasher)
