"""Ingest's side of crypto-shredding: each customer's key ring in the state, events sealed with it.

Called from ingest's emit path, after stitching (only then is the customer known): the ring of
the event's customer is read from the batch state (created on first sight; on a merge the
survivor's ring takes the absorbed customers' keys, whose own rings are deleted), and every
personal field of the event's canonical bytes is encrypted with the ring's current data key.
The ring lives under `streams.store.keys.ring_key`; its changelog record on the compacted
identity changelog is its durable copy (there is no separate keys topic: README, "Privacy").

Unwrapped data keys are kept in a bounded in-process cache so that an event costs one AES-GCM
encryption per personal field, not an unwrap as well.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from hashlib import blake2b
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from projections.identifiers import is_hashed_key
from schemas.errors import JourneyLedgerError
from streams.crypto.fields import (
    PREFIX,
    SECTIONS,
    encrypt_personal,
    is_encrypted,
    nonce_prf_for,
)
from streams.crypto.hashing import IdentityHasher, graph_key_tag
from streams.crypto.keys import KeyProvider, LocalKeyProvider, Random
from streams.crypto.ring import KeyRing
from streams.crypto.ring_cache import RingCache
from streams.store import keys
from streams.store.state import BatchState

NOTE_TYPE = "ledger.note"
"""The `type` of the small document a sealed note (a merge's identifier) is encrypted as."""

KEY_CACHE_SIZE = 100_000
"""Unwrapped data keys kept in memory (about 100 bytes each)."""


class LooksSealedError(JourneyLedgerError, ValueError):
    """A producer's value reads exactly like a sealed field (`enc:v1:dk_...:...`)."""

    hint = "a producer must not send values in the ledger's ciphertext form; send the clear value"


_SEALED_QUOTED = b'"' + PREFIX.encode()


def _refuse_sealed_values(document: Mapping[str, Any]) -> None:
    """`LooksSealedError` naming a field whose value reads like ciphertext: served later, it
    would be taken for one."""
    for section in SECTIONS:
        for name, value in (document.get(section) or {}).items():
            if is_encrypted(value):
                raise LooksSealedError(f"{section}.{name}: reads like a sealed value")


def note_document(tenant: str, event_id: str, value: str) -> dict[str, Any]:
    """A value outside an event (a merge record's identifier) as a document to seal: its
    associated data binds it to the tenant and the event that merged (path `payload.note`)."""
    return {"tenant": tenant, "event_id": event_id, "type": NOTE_TYPE, "payload": {"note": value}}


class Sealer:
    """Encrypts events' personal fields with their customer's data key, kept in a key ring."""

    def __init__(
        self,
        provider: KeyProvider,
        tenant_paths: Mapping[str, tuple[str, ...]] | None = None,
        random: Random = os.urandom,
        cache_size: int = KEY_CACHE_SIZE,
        identity_secret: Callable[[str], bytes] | None = None,
        peer_rings: RingCache | None = None,
    ) -> None:
        self.provider = provider
        self.peer_rings = peer_rings if peer_rings is not None else RingCache()
        """Rings the API read from other workers (`journeys.server.privacy.rings`): kept here,
        with the keys they unwrap to, so that erasing forgets both."""
        if identity_secret is None and isinstance(provider, LocalKeyProvider):
            identity_secret = provider.identity_secret
        self.identity_secret = identity_secret
        """Tenant -> its identity secret, for link tags (None: events carry no tag)."""
        self._taggers: dict[str, IdentityHasher] = {}
        self._tags_seen: dict[str, dict[str, str]] = {}
        """Link tags by tenant, then key (at most `cache_size` a tenant): a customer's
        identifiers come again with its events."""
        self.tenant_paths: Mapping[str, tuple[str, ...]] = tenant_paths or {}
        self.random = random
        self.cache_size = cache_size
        self._keys: OrderedDict[str, bytes] = OrderedDict()
        self._ciphers: dict[str, tuple[AESGCM, blake2b]] = {}
        """An AES-GCM cipher and nonce PRF per cached data key (keying them per event costs)."""
        self._rings: dict[bytes, KeyRing] = {}
        """Rings read from the state by their stored bytes: parsing one per event costs."""

    def __repr__(self) -> str:
        return f"Sealer({self.provider!r})"

    def ring(self, state: BatchState, tenant: str, customer_id: str) -> KeyRing | None:
        """The customer's ring as of the batch so far, if it has one."""
        value = state.get(keys.ring_key(tenant, customer_id))
        if value is None:
            return None
        ring = self._rings.get(value)
        if ring is None:
            if len(self._rings) >= self.cache_size:
                self._rings.clear()  # rarely reached; cheaper than ordering every hit
            ring = self._rings[value] = KeyRing.from_bytes(value)
        return ring

    def ring_for(
        self, state: BatchState, tenant: str, customer_id: str, absorbed: Iterable[str] = ()
    ) -> KeyRing:
        """The customer's ring, made on first sight and joined with the absorbed customers'."""
        ring = self.ring(state, tenant, customer_id)
        changed = ring is None
        if ring is None:
            ring, data = KeyRing.new(self.provider, self.random)
            self._remember(data.key_id, data.key)
        for old in absorbed:
            other = self.ring(state, tenant, old)
            if other is not None:
                ring = ring.merged(other)
                state.delete(keys.ring_key(tenant, old))
                changed = True
        if changed:
            value = ring.to_bytes()
            state.put(keys.ring_key(tenant, customer_id), value)
            self._rings[value] = ring  # read back by the next event without parsing
        return ring

    def seal(
        self,
        state: BatchState,
        tenant: str,
        customer_id: str,
        body: bytes,
        absorbed: Iterable[str] = (),
        links: Mapping[str, str] | None = None,
    ) -> bytes:
        """The event's canonical bytes with every personal value encrypted under the customer's
        current data key (`enc:v1:...`); the ring is made or merged in the state on the way.

        `links`: field path -> normalised key of the event's linking identifiers; each sealed
        value of those carries its link tag (`streams.crypto.links`)."""
        document = orjson.loads(body)
        if _SEALED_QUOTED in body:  # rare: one scan of the bytes spares a look at every value
            _refuse_sealed_values(document)
        ring = self.ring_for(state, tenant, customer_id, absorbed)
        key = self.data_key(ring, ring.current)
        ciphers = self._ciphers.get(ring.current)
        if ciphers is None:
            ciphers = self._ciphers[ring.current] = (AESGCM(key), nonce_prf_for(key))
        sealed = encrypt_personal(
            document,
            key,
            ring.current,
            self.tenant_paths.get(tenant, ()),
            synthetic_nonces=True,  # a replayed batch must send the very same bytes again
            aead=ciphers[0],
            tags=self._tags(tenant, links) if links else None,
            nonce_prf=ciphers[1],
        )
        return orjson.dumps(sealed)

    def link_tag(self, tenant: str, key: str) -> str:
        """A normalised identity key's link tag in the tenant: of a key the graph holds
        hashed, a digest of it (`graph_key_tag`); of a clear key, its keyed hash."""
        seen = self._tags_seen.get(tenant)
        if seen is None:
            seen = self._tags_seen[tenant] = {}
        tag = seen.get(key)
        if tag is not None:
            return tag
        if len(seen) >= self.cache_size:
            seen.clear()  # rarely reached; cheaper than ordering every hit
        if is_hashed_key(key):  # keyed already
            tag = seen[key] = graph_key_tag(key)
            return tag
        tagger = self._taggers.get(tenant)
        if tagger is None:
            assert self.identity_secret is not None  # callers ask `tags_links` first
            tagger = self._taggers[tenant] = IdentityHasher(self.identity_secret(tenant))
        tag = seen[key] = tagger(key)
        return tag

    @property
    def tags_links(self) -> bool:
        """Whether sealed identifiers carry link tags (a provider that gives identity secrets)."""
        return self.identity_secret is not None

    def _tags(self, tenant: str, links: Mapping[str, str]) -> dict[str, str] | None:
        if self.identity_secret is None:
            return None
        return {path: self.link_tag(tenant, key) for path, key in links.items()}

    def seal_note(self, ring: KeyRing, tenant: str, event_id: str, value: str) -> str:
        """A value outside an event sealed under the ring's current key (`note_document`)."""
        document = note_document(tenant, event_id, value)
        key = self.data_key(ring, ring.current)
        sealed = encrypt_personal(document, key, ring.current, synthetic_nonces=True)
        return str(sealed["payload"]["note"])

    def data_key(self, ring: KeyRing, key_id: str) -> bytes:
        """One of the ring's data keys, unwrapped (cached; `WrongMasterKeyError` if foreign)."""
        key = self._keys.get(key_id)
        if key is not None:
            self._keys.move_to_end(key_id)
            return key
        for wrapped in ring.wrapped:
            if wrapped.key_id == key_id:
                key = self.provider.unwrap(wrapped)
                self._remember(key_id, key)
                return key
        raise KeyError(key_id)

    def unwrapped(self, ring: KeyRing) -> dict[str, bytes]:
        """Every data key of the ring by id (what decrypting the customer's events needs)."""
        return {key_id: self.data_key(ring, key_id) for key_id in ring.key_ids}

    def destroy(self, state: BatchState, tenant: str, customer_id: str) -> tuple[str, ...]:
        """Erase: delete the customer's ring (a tombstone on its changelog) and forget its
        keys in memory; the ids of the keys destroyed (none when it had no ring)."""
        ring = self.ring(state, tenant, customer_id)
        if ring is None:
            return ()
        state.delete(keys.ring_key(tenant, customer_id))
        self.peer_rings.drop(tenant, customer_id)  # kept from before this worker held it
        for key_id in ring.key_ids:
            self._keys.pop(key_id, None)
            self._ciphers.pop(key_id, None)
        return ring.key_ids

    def _remember(self, key_id: str, key: bytes) -> None:
        self._keys[key_id] = key
        while len(self._keys) > self.cache_size:
            dropped, _ = self._keys.popitem(last=False)
            self._ciphers.pop(dropped, None)
