"""Keyed identity hashes: stable per tenant, different across tenants, never the identifier."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.crypto.hashing import HASH_PREFIX, identity_hash, tenant_secret

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
