"""Encrypt an event document's personal fields with the customer's data key, and back.

Each personal value (`schemas.privacy.personal`) becomes `enc:v1:<data key id>:<base64>`: the
96-bit random nonce, then the AES-GCM ciphertext and tag. The associated data binds the tenant,
the event id and the field's path, so a ciphertext moved to another event or field does not
decrypt. A string is encrypted as its UTF-8 bytes, anything else (a producer's own number,
list or object) as JSON, so decryption gives back the same JSON type.

Decryption without the key is a normal state (the customer was erased): the field reads
`[erased]` and the caller is told, never an exception and never a retry.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Iterable, Mapping
from hashlib import blake2b
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.errors import JourneyLedgerError
from schemas.privacy.personal import ERASED as ERASED  # read `[erased]` where keys are gone
from schemas.privacy.personal import personal_paths
from streams.crypto.keys import NONCE_BYTES, Random

PREFIX = "enc:v1:"
"""How an encrypted field value starts."""


SECTIONS = ("customer", "source", "payload")
"""The blocks whose fields may be encrypted."""

_ENVELOPE = re.compile(
    r"^enc:v1:(dk_[0-9a-f]{16}):([A-Za-z0-9+/]+={0,2})(?::(h:[a-z2-7]{52}|t:[A-Za-z0-9_-]{27}))?$"
)
"""A sealed value; a linking identifier's carries its link tag last (`link_tag`): `h:` and the
keyed hash of a clear key, or `t:` and the digest of a hashed graph key."""
_TEXT, _JSON = b"s", b"j"


class UndecryptableFieldError(JourneyLedgerError, ValueError):
    """An encrypted field does not decrypt with its key: altered, or moved from elsewhere."""

    hint = "the event was altered after it was encrypted: keep the original record"


def field_context(tenant: str, event_id: str, path: str) -> bytes:
    """The associated data of one field: what a ciphertext is bound to (lengths first, so no
    two (tenant, event id, path) triples give the same bytes)."""
    return (_context_head(tenant, event_id) + path).encode()


def _context_head(tenant: str, event_id: str) -> str:
    """What every field context of one event starts with (`field_context`)."""
    return f"journeys field v1|{len(tenant)}|{len(event_id)}|{tenant}{event_id}"


def is_encrypted(value: object) -> bool:
    """Whether a field value is an encrypted envelope."""
    return isinstance(value, str) and _ENVELOPE.match(value) is not None


_NONCE_PERSON = b"journeys nonce"
"""BLAKE2b personalisation of synthetic nonces (domain separation, at most 16 bytes)."""


def nonce_prf_for(data_key: bytes) -> blake2b:
    """The synthetic nonces' PRF under a data key: keyed BLAKE2b (a PRF like HMAC, at about half
    its cost here), its personalisation keeping this use of the key apart from AES-GCM's. Each
    nonce hashes a copy of it (`encrypt_personal`)."""
    return blake2b(key=data_key, digest_size=NONCE_BYTES, person=_NONCE_PERSON)


def encrypt_personal(
    document: Mapping[str, Any],
    data_key: bytes,
    key_id: str,
    tenant_paths: Iterable[str] = (),
    random: Random = os.urandom,
    *,
    synthetic_nonces: bool = False,
    aead: AESGCM | None = None,
    tags: Mapping[str, str] | None = None,
    nonce_prf: blake2b | None = None,
) -> dict[str, Any]:
    """A copy of the event document with every personal value encrypted under the data key.

    `tags`: field path -> link tag (`streams.crypto.links`), written after the ciphertext
    (`enc:v1:<key id>:<base64>:h:<tag>` or `...:t:<tag>`) so the journey stage deals events
    out on a split without opening them.

    With `synthetic_nonces`, each nonce is a keyed hash (BLAKE2b, keyed by the data key) of the
    field's context and value instead of random, so the same event sealed twice with the same key gives the
    same bytes (a replayed batch repeats its outputs exactly); nonces of different values
    still differ. `aead`: the data key's cipher, and `nonce_prf`: its `nonce_prf_for`, when the
    caller keeps them (keying either costs more than a field's use of it).
    """
    out = dict(document)
    paths = personal_paths(document, tenant_paths)
    if not paths:
        return out
    aead = aead if aead is not None else AESGCM(data_key)
    prf_of = None
    if synthetic_nonces:
        prf_of = nonce_prf if nonce_prf is not None else nonce_prf_for(data_key)
    tenant, event_id = str(document["tenant"]), str(document["event_id"])
    head = _context_head(tenant, event_id)
    start = f"{PREFIX}{key_id}:"
    blocks: dict[str, dict[str, Any]] = {}
    nonces = b"" if synthetic_nonces else random(NONCE_BYTES * len(paths))  # one system call
    for number, path in enumerate(paths):
        section, _, name = path.partition(".")
        block = blocks.get(section)
        if block is None:
            block = blocks[section] = out[section] = dict(out[section])
        value = block[name]
        plain = _TEXT + value.encode() if isinstance(value, str) else _JSON + orjson.dumps(value)
        context = (head + path).encode()
        if prf_of is not None:
            prf = prf_of.copy()
            prf.update(context + plain)
            nonce = prf.digest()
        else:
            nonce = nonces[number * NONCE_BYTES : (number + 1) * NONCE_BYTES]
        encoded = binascii.b2a_base64(nonce + aead.encrypt(nonce, plain, context), newline=False)
        tag = tags.get(path) if tags else None
        if tag is None:
            block[name] = start + encoded.decode()
        else:
            block[name] = f"{start}{encoded.decode()}:{tag}"
    return out


def link_tag(value: object) -> str | None:
    """The link tag a sealed value carries (None: clear, or sealed without one)."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return None
    match = _ENVELOPE.match(value)
    return None if match is None else match.group(3)


def decrypt_personal(
    document: Mapping[str, Any], keys: Mapping[str, bytes]
) -> tuple[dict[str, Any], bool]:
    """The document with its encrypted fields decrypted, and whether any read `[erased]`.

    `keys` maps data key ids to keys: after a merge, the survivor's set (each customer merged
    into it kept its own key). A field whose key is absent reads `[erased]`.
    """
    out = dict(document)
    erased = False
    tenant, event_id = str(document.get("tenant")), str(document.get("event_id"))
    ciphers: dict[str, AESGCM] = {}
    for section in SECTIONS:
        block = document.get(section)
        if not isinstance(block, Mapping):
            continue
        copy: dict[str, Any] | None = None
        for name, value in block.items():
            # The prefix test first: most values are clear, and it is cheaper than the regex.
            if not isinstance(value, str) or not value.startswith(PREFIX):
                continue
            match = _ENVELOPE.match(value)
            if match is None:
                continue
            copy = copy if copy is not None else dict(block)
            key_id, encoded, _ = match.groups()
            key = keys.get(key_id)
            if key is None:
                copy[name] = ERASED
                erased = True
                continue
            aead = ciphers.get(key_id) or ciphers.setdefault(key_id, AESGCM(key))
            path = f"{section}.{name}"
            copy[name] = _open(aead, encoded, field_context(tenant, event_id, path), path)
        if copy is not None:
            out[section] = copy
    return out, erased


def _open(aead: AESGCM, encoded: str, context: bytes, path: str) -> Any:
    try:
        raw = binascii.a2b_base64(encoded, strict_mode=True)
        plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
    except (binascii.Error, ValueError, InvalidTag):
        raise UndecryptableFieldError(f"{path} does not decrypt with its data key") from None
    kind, body = plain[:1], plain[1:]
    return body.decode() if kind == _TEXT else orjson.loads(body)
