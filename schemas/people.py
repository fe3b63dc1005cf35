"""Events people write about the ledger itself: identity decisions and handling of flags.

They sit on the touchpoint stream like any touchpoint, so replay and rebuild apply them at the
same point; a decision joins no journey, a handling event joins the journey of its flag.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import _Envelope, _Payload
from schemas.types import Name, Text, Timestamp


class IdentityDecisionPayload(_Payload):
    """A person's decision about the identifier the event's customer carries: who and why."""

    reason: Name
    decided_by: Name


CustomerId = Annotated[str, StringConstraints(pattern=r"^cus_[0-9a-f]{16}$")]
"""A customer's id as the ledger makes them (`projections.identity.customer_id_for`)."""


class IdentityResolvedPayload(IdentityDecisionPayload):
    """A split or confirmed merge: who and why, and (optional, informational) the customer
    ids the person named when deciding; the identifier in the envelope is what applies."""

    customers: Annotated[tuple[CustomerId, ...], Field(min_length=1, max_length=2)] | None = None


class ErasurePayload(_Payload):
    """A person's order to erase a customer: which customer (the ledger's id), who, on what
    grounds. It holds no personal data: the grounds are a reference, not the request's text."""

    customer_id: CustomerId
    decided_by: Name
    grounds: Name


FlagId = Annotated[str, StringConstraints(pattern=r"^flg_[0-9a-f]{16}$")]
"""A flag's id as the ledger makes them (`projections.flags.flag_id`)."""


class FlagActionPayload(_Payload):
    """A person acting on a flag: which flag, who, and an optional note."""

    flag_id: FlagId
    by: Name
    note: Text | None = None


class FlagAssignedPayload(FlagActionPayload):
    """A flag given to a person or a team."""

    assignee: Name


class FlagNotedPayload(FlagActionPayload):
    """A note added to a flag."""

    note: Text


class FlagResolvedPayload(FlagActionPayload):
    """A flag resolved by hand, with the reason (what was done)."""

    note: Text


class FlagSnoozedPayload(FlagActionPayload):
    """A flag put aside until a moment."""

    until: Timestamp


# --- events -------------------------------------------------------------------------------


class IdentityBlocked(_Envelope):
    """A person decided that the customer's identifier never links events (a shared value)."""

    type: Literal["identity.blocked"]
    payload: IdentityDecisionPayload


class IdentityUnblocked(_Envelope):
    """A person withdrew an earlier block: the identifier links events again."""

    type: Literal["identity.unblocked"]
    payload: IdentityDecisionPayload


class IdentitySplit(_Envelope):
    """A person split a customer along the identifier its customer carries: it links no more."""

    type: Literal["identity.split"]
    payload: IdentityResolvedPayload


class IdentityMergeConfirmed(_Envelope):
    """A person confirmed that the identifier joins one person: links past limits, unsplit."""

    type: Literal["identity.merge_confirmed"]
    payload: IdentityResolvedPayload


class IdentityErased(_Envelope):
    """A person erased a customer (a data subject's request): ingest destroys its keys.

    The envelope's `customer` names the same customer id as an `anonymous_id` (an envelope
    needs an identifier); ingest never links it. The event joins no journey.
    """

    type: Literal["identity.erased"]
    payload: ErasurePayload


class FlagAcknowledged(_Envelope):
    """A person saw the flag and took it on."""

    type: Literal["flag.acknowledged"]
    payload: FlagActionPayload


class FlagAssigned(_Envelope):
    """A person gave the flag to someone (a person or a team)."""

    type: Literal["flag.assigned"]
    payload: FlagAssignedPayload


class FlagNoted(_Envelope):
    """A person added a note to the flag."""

    type: Literal["flag.noted"]
    payload: FlagNotedPayload


class FlagResolvedByHand(_Envelope):
    """A person resolved the flag: the contradiction was dealt with outside the source systems."""

    type: Literal["flag.resolved"]
    payload: FlagResolvedPayload


class FlagReopened(_Envelope):
    """A person reopened a flag resolved by hand."""

    type: Literal["flag.reopened"]
    payload: FlagActionPayload


class FlagSnoozed(_Envelope):
    """A person put the flag aside until a moment."""

    type: Literal["flag.snoozed"]
    payload: FlagSnoozedPayload
