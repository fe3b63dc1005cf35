"""Link tags: how a split deals sealed events out without opening them (README, "Privacy").

With sealing on, the journey stage holds every identifier sealed, yet a split (a person's block,
or a settle by the limits) deals a journey's events out to customers by each event's
highest-priority identifier. So ingest, when it seals an event, writes each linking
identifier's link tag after the ciphertext (`Sealer.link_tag`), and gives each `regroup` record
the tags of every part's keys (`links`). The journey stage matches the one against the other:
it never sees a clear identifier and never decrypts. With a master key the graph's keys are
keyed hashes already (`projections.identifiers.GraphHasher`), so a tag is a plain digest of the
key (`streams.crypto.hashing.graph_key_tag`, `t:`); a clear key's tag is its keyed hash
(`identity_hash`, `h:`). Events sealed with other tags than a split names (before the graph
was hashed, or before digest tags) stand alone on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import phonenumbers

from projections.identifiers import GraphHasher, NormalisedId, held_spellings
from schemas.envelope import IDENTIFIER_KINDS, Customer
from schemas.outputs import HEADER_KIND, KIND_REGROUP, KIND_REJOIN, RegroupRecord, RejoinRecord
from streams.crypto.fields import link_tag
from streams.crypto.sealing import Sealer
from streams.kafka.records import OutRecord

Tagger = Callable[[str, str], str]
"""(tenant, normalised identity key) -> its link tag."""


def linking_paths(ids: Iterable[NormalisedId]) -> dict[str, str]:
    """Field path (`customer.<kind>`) -> normalised key, of an event's usable identifiers."""
    return {
        f"customer.{ident.kind}": ident.key
        for ident in ids
        if ident.unusable is None and ident.kind in IDENTIFIER_KINDS
    }


def tagged_regroups(
    records: Iterable[OutRecord],
    tag: Tagger,
    region: str | None = None,
    hasher: GraphHasher | None = None,
) -> list[OutRecord]:
    """The records, each `regroup` record with the link tags of its parts' keys (`links`), each
    `rejoin` record with those of its values' spellings in the tenant's `region`
    (`lifted_links`); the records of one split keep sharing the same bytes (their generation
    is read from them)."""
    done: dict[bytes, bytes] = {}
    out = []
    for record in records:
        value = record.value
        kind = dict(record.headers).get(HEADER_KIND)
        if value is not None and kind == KIND_REJOIN:
            rejoin = RejoinRecord.from_bytes(value)
            spellings = (
                key for lifted in rejoin.lifted for key in lifted_spellings(lifted, region, hasher)
            )
            lifted_links = tuple(tag(rejoin.tenant, key) for key in spellings)
            value = rejoin.model_copy(update={"lifted_links": lifted_links}).to_bytes()
            out.append(OutRecord(record.destination, record.key, value, record.headers))
            continue
        if value is None or kind != KIND_REGROUP:
            out.append(record)
            continue
        if value not in done:
            regroup = RegroupRecord.from_bytes(value)
            links = {
                part: tuple(tag(regroup.tenant, key) for key in held)
                for part, held in regroup.parts.items()
            }
            dropped = tuple(tag(regroup.tenant, key) for key in regroup.dropped)
            tagged = regroup.model_copy(update={"links": links, "dropped_links": dropped})
            done[value] = tagged.to_bytes()
        out.append(OutRecord(record.destination, record.key, done[value], record.headers))
    return out


def lifted_spellings(
    lifted: str, region: str | None, hasher: GraphHasher | None
) -> tuple[str, ...]:
    """The keys a lifted value (a decided key, `kind:value`) is held under: as `held_spellings`
    finds them; in a hashed graph, read off the key (a phone's national hash, and its spelling
    in the region's country code: the country a national number is read in)."""
    if hasher is None:
        return held_spellings(lifted.replace(":", " ", 1), region)
    kind, _, number = lifted.partition(":")
    country = phonenumbers.country_code_for_region(region) if region else 0
    if kind != "phone" or not country:
        return (lifted,)
    return (f"phone:+{country}:{number}", lifted)


def merge_tags(
    sealer: Sealer,
    tenant: str,
    identifier: str,
    region: str | None,
    hasher: GraphHasher | None = None,
) -> tuple[str, ...]:
    """The link tags of a merge's identifier (`kind value`): of its key, and of its national
    spelling for a phone (`deal_merges` looks for either); keys hashed by `hasher` as the
    graph's are."""
    spellings = held_spellings(identifier, region, hasher)
    return tuple(sealer.link_tag(tenant, key) for key in spellings)


def tags_by_priority(customer: Customer, priority: tuple[str, ...]) -> list[str] | None:
    """The link tags a sealed event's identifiers carry, highest priority first (the order
    `projections.regroup.assign` reads clear keys in); None when it carries none."""
    rank = {kind: n for n, kind in enumerate(priority)}
    found = []
    for kind in IDENTIFIER_KINDS:
        tag = link_tag(getattr(customer, kind))
        if tag is not None:
            # a key starts with its kind: kinds the priority leaves out sort as their keys do
            found.append((rank.get(kind, len(rank)), kind, tag))
    return [tag for _, _, tag in sorted(found)] if found else None


def known_keys(regroup: RegroupRecord) -> dict[str, str]:
    """Link tag -> the key it stands for, of the keys a split names (its parts' and those it
    dropped): how the journey stage reads a sealed event's keys against the split."""
    known = dict(zip(regroup.dropped_links, regroup.dropped, strict=False))
    for part, held in regroup.parts.items():
        known.update(zip(regroup.links.get(part, ()), held, strict=False))
    return known


def keys_by_priority(
    customer: Customer, known: Mapping[str, str], priority: tuple[str, ...]
) -> list[str] | None:
    """A sealed event's keys, highest priority first, as far as `known` tells them (a tag the
    split does not name stays a tag: it matches no part and is no dropped key); None when the
    event carries no tag (held in clear, or sealed before tags)."""
    tags = tags_by_priority(customer, priority)
    return None if tags is None else [known.get(tag, tag) for tag in tags]
