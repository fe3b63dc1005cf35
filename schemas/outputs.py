"""What the ledger writes to Kafka besides touchpoints: flag changes, merges and their headers.

The events topic carries each event under header ``kind: event`` (with the customer id in a
``customer_id`` header) and each merge of two customers under ``kind: merge``. A person's
decision that splits a customer is ``kind: regroup`` (to the customer split and to each
customer it leaves), and the events the split deals out to other customers go to them under
``kind: moved``; an unblock that merges them back tells a customer split before ``kind:
rejoin``, for the events its split left alone. A merged customer's journey stage sends its
merges on to the customer it merged into under ``kind: merges``. The flag topic carries one `FlagChange` per
change of a flag. These records are built and read here, typed;
their bytes on the wire are pinned by a test.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

HEADER_KIND = "kind"
"""The header saying what an events-topic record is: `KIND_EVENT` or `KIND_MERGE`."""

HEADER_CUSTOMER_ID = "customer_id"
"""The header naming the customer an event belongs to (the events topic)."""

KIND_EVENT = b"event"
KIND_MERGE = b"merge"
KIND_REGROUP = b"regroup"
KIND_MOVED = b"moved"
KIND_REJOIN = b"rejoin"
KIND_MERGES = b"merges"
KIND_ERASED = b"erased"
KIND_DEAD_LETTER = b"dead_letter"
"""The kind of a validated-topic record telling ingest whose a dead letter is (no event)."""

FlagChangeKind = Literal["opened", "resolved", "reopened", "withdrawn", "handled", "updated"]
"""What happened to a flag: opened; resolved, reopened; withdrawn (it never held, or merged);
handled (a person acted on it: its `handling` changed); updated (its content changed while its
status stood: message, events, severity, systems, sites; late events rewrote it)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HandlingNote(_Record):
    """A note on a flag."""

    at: str
    by: str
    text: str


class HandlingAction(_Record):
    """One action a person took on a flag."""

    action: str
    at: str
    by: str
    event_id: str
    note: str | None = None
    assignee: str | None = None
    until: str | None = None


class HandlingSnapshot(_Record):
    """What people did about a flag (`projections.handling.handling.Handling`)."""

    state: Literal["unacknowledged", "acknowledged", "assigned", "snoozed", "resolved"]
    assignee: str | None = None
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    resolved_at: str | None = None
    resolved_by: str | None = None
    snoozed_until: str | None = None
    reopened_because: str | None = None
    notes: tuple[HandlingNote, ...] = ()
    actions: tuple[HandlingAction, ...] = ()
    action_count: int = 0

    def to_document(self) -> dict[str, object]:
        """The JSON-ready dict, keys in their wire order (None-valued action fields left out)."""
        return {
            "state": self.state,
            "assignee": self.assignee,
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "snoozed_until": self.snoozed_until,
            "reopened_because": self.reopened_because,
            "notes": [note.model_dump() for note in self.notes],
            "actions": [a.model_dump(exclude_none=True) for a in self.actions],
            "action_count": self.action_count,
        }


class FlagSnapshot(_Record):
    """A flag as the flag topic carries it (the shape of `projections.view.flag_to_dict`)."""

    flag_id: str
    rule: str
    severity: str
    status: Literal["open", "resolved"]
    message: str
    event_ids: tuple[str, ...]
    opened_at: str
    resolved_at: str | None
    resolution: str | None
    systems: tuple[str, ...]
    sites: tuple[str, ...]
    handling: HandlingSnapshot | None = None
    """What people did about the flag; absent until someone acts on it."""

    def to_document(self) -> dict[str, object]:
        """The JSON-ready dict, keys in their wire order (`handling` only once someone acted)."""
        document: dict[str, object] = {
            "flag_id": self.flag_id,
            "rule": self.rule,
            "severity": self.severity,
            "status": self.status,
            "message": self.message,
            "event_ids": list(self.event_ids),
            "opened_at": self.opened_at,
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
            "systems": list(self.systems),
            "sites": list(self.sites),
        }
        if self.handling is not None:
            document["handling"] = self.handling.to_document()
        return document


class WithdrawnFlag(_Record):
    """A withdrawn flag: only its id."""

    flag_id: str

    def to_document(self) -> dict[str, object]:
        """The JSON-ready dict."""
        return {"flag_id": self.flag_id}


class FlagChange(_Record):
    """One record of the flag topic: a flag of a customer opened, resolved, reopened, withdrawn,
    handled or updated.

    The topic is at-least-once; consumers drop repeats by `change_id`.
    """

    change_id: str
    change: FlagChangeKind
    tenant: str
    customer_id: str
    flag: FlagSnapshot | WithdrawnFlag
    merged_into: str | None = None
    """For a flag withdrawn because its customer merged: the surviving customer id."""
    reason: str | None = None
    """For a flag withdrawn by a person's decision (a split): why, in words."""

    @property
    def flag_id(self) -> str:
        """The id of the flag that changed."""
        return self.flag.flag_id

    def to_document(self) -> dict[str, object]:
        """The JSON-ready dict, keys in their wire order (`merged_into`, `reason` only when set)."""
        document: dict[str, object] = {
            "change_id": self.change_id,
            "change": self.change,
            "tenant": self.tenant,
            "customer_id": self.customer_id,
            "flag": self.flag.to_document(),
        }
        if self.merged_into is not None:
            document["merged_into"] = self.merged_into
        if self.reason is not None:
            document["reason"] = self.reason
        return document

    def to_bytes(self) -> bytes:
        """The record's value on the flag topic."""
        return orjson.dumps(self.to_document())

    @classmethod
    def from_bytes(cls, value: bytes) -> FlagChange:
        """Read a flag-topic value back; pydantic's ValidationError when it is not one."""
        return cls.model_validate_json(value)


class MergeRecord(_Record):
    """An events-topic record saying customer `from_` of `tenant` is now `into`.

    `at`, `event_id` and `identifier` say which event merged them and through which identifier
    (`kind value`); `decision`, a person's decision that let it. Written only when set (a
    customer renamed, or a record from before they were carried, has none).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    tenant: str
    from_: str = Field(alias="from")
    into: str
    at: datetime | None = None
    event_id: str | None = None
    identifier: str | None = None
    decision: str | None = None
    settled: int | None = None
    """The number of ingest's latest settle or split of the tenant when they merged (see
    `RegroupRecord.sequence`): a later settle of `into` is a newer word than this merge."""
    links: tuple[str, ...] | None = None
    """With sealing on (`identifier` sealed): the link tags of its key's spellings, by which a
    split finds the part holding it (`streams.crypto.links`)."""

    def to_document(self) -> dict[str, object]:
        """The JSON-ready dict, keys in their wire order (the optional ones only when set)."""
        document: dict[str, object] = {"tenant": self.tenant, "from": self.from_, "into": self.into}
        for name in ("at", "event_id", "identifier", "decision", "settled", "links"):
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        return document

    def to_bytes(self) -> bytes:
        """The record's value on the events topic."""
        return orjson.dumps(self.to_document())

    @classmethod
    def from_bytes(cls, value: bytes) -> MergeRecord:
        """Read a merge record back; pydantic's ValidationError when it is not one."""
        return cls.model_validate_json(value)


class ErasureRecord(_Record):
    """An events-topic record (`kind: erased`): customer `customer` of `tenant` was erased.

    Written by ingest once it destroyed the customer's keys; the journey stage then drops the
    personal fields of the stored journey. It holds no personal data: the ledger's customer
    id, the erasure event's id and time, who ordered it, its grounds (a reference) and how
    many data keys were destroyed.
    """

    tenant: str
    customer: str
    event_id: str
    at: datetime
    decided_by: str
    grounds: str
    keys_destroyed: int

    def to_bytes(self) -> bytes:
        """The record's value on the events topic."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, value: bytes) -> ErasureRecord:
        """Read an erasure record back; pydantic's ValidationError when it is not one."""
        return cls.model_validate_json(value)


class MergeHistory(_Record):
    """An events-topic record (`kind: merges`): the merges a customer carries into `customer`.

    The journey stage of a merged customer sends its merges on to the customer it merged into;
    the journey stage keeps the latest of them per customer (`journey_merges`).
    """

    tenant: str
    customer: str
    merges: tuple[MergeRecord, ...]

    def to_bytes(self) -> bytes:
        """The record's value on the events topic (and in the journey stage's state)."""
        return orjson.dumps(
            {
                "tenant": self.tenant,
                "customer": self.customer,
                "merges": [m.to_document() for m in self.merges],
            }
        )

    @classmethod
    def from_bytes(cls, value: bytes) -> MergeHistory:
        """Read a merge history back; pydantic's ValidationError when it is not one."""
        return cls.model_validate_json(value)


class RegroupRecord(_Record):
    """An events-topic record: customer `customer` of `tenant` is split into `parts`.

    Keyed by `customer`, it tells the journey stage to deal that customer's events out to the
    parts; keyed by another customer of `parts`, that this customer stands again (it no longer
    forwards to the one it had merged into).
    """

    tenant: str
    customer: str
    parts: dict[str, tuple[str, ...]]
    """Customer id -> its identifier keys, as ingest's graph now holds them."""
    reason: str
    """The decision, in words (`blocked by r.khan on 2026-12-02: switchboard`)."""
    decision_id: str
    """The event id of the decision."""
    dropped: tuple[str, ...] = ()
    """The customer's identifier keys no customer holds after the split (refused now)."""
    sequence: int | None = None
    """The number of this settle or split among the tenant's (ingest counts them): a later one
    is ingest's newer word. Absent on records written before it was kept."""
    links: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """With sealing on: customer id -> the link tags of its keys (`streams.crypto.links`), what
    the journey stage matches sealed events against. Left out of the bytes when empty."""
    dropped_links: tuple[str, ...] = ()
    """With sealing on: the link tags of `dropped`, in its order (left out when empty)."""

    def to_bytes(self) -> bytes:
        """The record's value on the events topic (without `sequence` when it is absent, nor
        the link tags without sealing, as such records were written)."""
        document = self.model_dump()
        if document["sequence"] is None:
            del document["sequence"]
        for name in ("links", "dropped_links"):
            if not document[name]:
                del document[name]
        return orjson.dumps(document)

    @classmethod
    def from_bytes(cls, value: bytes) -> RegroupRecord:
        """Read a regroup record back; pydantic's ValidationError when it is not one."""
        return cls.model_validate_json(value)


class RejoinRecord(_Record):
    """An events-topic record: values a split of `customer` dropped link again (an unblock).

    The events the split left standing alone because they held nothing but those values merge
    into `into`, the customer that now holds them.
    """

    tenant: str
    customer: str
    lifted: tuple[str, ...]
    """The values (blocked keys, `phone:<number>`) that link again."""
    into: str
    settled: int | None = None
    """The number of ingest's latest settle or split of the tenant when they link again: the
    merges the journey stage makes carry it (`MergeRecord.settled`)."""
    lifted_links: tuple[str, ...] = ()
    """With sealing on: the link tags of the lifted values' spellings, by which a split record
    that names keys by their tags finds them (`streams.crypto.links`)."""

    def to_bytes(self) -> bytes:
        """The record's value on the events topic (`settled` and `lifted_links` when set)."""
        document = self.model_dump(exclude_none=True)
        if not self.lifted_links:
            del document["lifted_links"]
        return orjson.dumps(document)

    @classmethod
    def from_bytes(cls, value: bytes) -> RejoinRecord:
        """Read a rejoin record back; pydantic's ValidationError when it is not one."""
        return cls.model_validate_json(value)
