"""Flag changes: what to tell the flag topic when a customer's flags go from one set to another.

Pure: the journey stage stores the status of each flag it last emitted and hands it here with
the flags the rules find now; the changes come back as `schemas.outputs.FlagChange` records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

import orjson

from projections.flags import Flag
from projections.handling.handling import Handling
from schemas.outputs import (
    FlagChange,
    FlagChangeKind,
    FlagSnapshot,
    HandlingAction,
    HandlingNote,
    HandlingSnapshot,
    WithdrawnFlag,
)


def change_id(customer_id: str, flag_id: str, change: str, *moments: datetime | None) -> str:
    """A flag change's id: the same change replayed after a crash gets the same id.

    The flag topic is at-least-once (no transactions); consumers drop repeats by this id.
    """
    stamps = (m.isoformat() if m else "" for m in moments)
    text = "|".join([customer_id, flag_id, change, *stamps])
    return "chg_" + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def flag_snapshot(flag: Flag) -> FlagSnapshot:
    """A flag as the flag topic carries it (built from a checked `Flag`: not validated again)."""
    return FlagSnapshot.model_construct(
        flag_id=flag.flag_id,
        rule=flag.rule,
        severity=flag.severity.value,
        status=flag.status,
        message=flag.message,
        event_ids=flag.event_ids,
        opened_at=flag.opened_at.isoformat(),
        resolved_at=flag.resolved_at.isoformat() if flag.resolved_at else None,
        resolution=flag.resolution,
        systems=flag.systems,
        sites=flag.sites,
        handling=None if flag.handling is None else handling_snapshot(flag.handling),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def handling_snapshot(handling: Handling) -> HandlingSnapshot:
    """A flag's handling as the flag topic carries it (built from checked values)."""
    return HandlingSnapshot.model_construct(
        state=handling.state,
        assignee=handling.assignee,
        acknowledged_at=_iso(handling.acknowledged_at),
        acknowledged_by=handling.acknowledged_by,
        resolved_at=_iso(handling.resolved_at),
        resolved_by=handling.resolved_by,
        snoozed_until=_iso(handling.snoozed_until),
        reopened_because=handling.reopened_because,
        notes=tuple(
            HandlingNote.model_construct(at=n.at.isoformat(), by=n.by, text=n.text)
            for n in handling.notes
        ),
        actions=tuple(
            HandlingAction.model_construct(
                action=a.action,
                at=a.at.isoformat(),
                by=a.by,
                event_id=a.event_id,
                note=a.note,
                assignee=a.assignee,
                until=_iso(a.until),
            )
            for a in handling.actions
        ),
        action_count=handling.action_count,
    )


def handling_mark(flag: Flag) -> str:
    """A short digest of a flag's handling: stored with its status, so a person's action on
    a flag is told to the flag topic once ("" for a flag nobody acted on)."""
    if flag.handling is None:
        return ""
    document = handling_snapshot(flag.handling).to_document()
    return hashlib.blake2b(orjson.dumps(document), digest_size=6).hexdigest()


def shape_mark(flag: Flag) -> str:
    """A short digest of what a flag says (message, events, severity, systems, sites, opening):
    stored with its status, so a flag whose content changes while its status stands is told to
    the flag topic once (`updated`)."""
    document = (
        flag.message,
        flag.event_ids,
        flag.severity.value,
        flag.systems,
        flag.sites,
        flag.opened_at.isoformat(),
    )
    return hashlib.blake2b(orjson.dumps(document), digest_size=6).hexdigest()


def flag_status(flag: Flag, stored: str | None = None) -> str:
    """What the journey stage keeps of one flag it emitted: `status[#handling]@shape[.n]`.

    The handling mark (`handling_mark`) is there once people acted on the flag, so that each
    change of its handling is emitted once; the shape (`shape_mark`), so that each change of
    its content is; `n` counts the changes of shape since the flag opened (from the value kept
    before, `stored`), so that each has a change id of its own, even one back to an earlier
    shape.
    """
    mark = handling_mark(flag)
    head = flag.status if not mark else f"{flag.status}#{mark}"
    shape = shape_mark(flag)
    count = 0
    if stored is not None:
        _, _, before, count = stored_status(stored)
        count += 1 if before and before != shape else 0
    return f"{head}@{shape}.{count}" if count else f"{head}@{shape}"


def stored_status(stored: str) -> tuple[str, str, str, int]:
    """A kept status read back: status, handling mark, shape and changes of shape ("" or 0 for
    what it lacks; a value kept before shapes were kept has none)."""
    head, _, kept = stored.partition("@")
    status, _, mark = head.partition("#")
    shape, _, count = kept.partition(".")
    return status, mark, shape, int(count) if count.isdigit() else 0


GENERATION = "~"
"""The key under which the journey stage keeps a customer's generation among its flag statuses."""


def flag_changed(
    tenant: str,
    customer_id: str,
    flag: Flag,
    change: FlagChangeKind,
    mark: str = "",
    generation: str = "",
) -> FlagChange:
    """The record of a flag opened, resolved, reopened, handled or updated.

    `generation` (set once a split touched the customer) gives a flag that opens again after a
    split withdrew it a change id of its own: consumers drop repeats by change id.
    """
    kind = change if not mark else f"{change}#{mark}"
    kind = kind if not generation else f"{kind}~{generation}"
    return FlagChange.model_construct(
        change_id=change_id(customer_id, flag.flag_id, kind, flag.opened_at, flag.resolved_at),
        change=change,
        tenant=tenant,
        customer_id=customer_id,
        flag=flag_snapshot(flag),
    )


def flag_withdrawn(
    tenant: str,
    customer_id: str,
    flag_id: str,
    merged_into: str | None = None,
    reason: str | None = None,
    generation: str = "",
) -> FlagChange:
    """The record of a flag taken back (it never held, its customer merged, or was split).

    A withdrawal with a reason, or in a later `generation`, gets its own change id: a value
    blocked, unblocked and blocked again withdraws the same flag twice, and consumers drop
    repeats by change id.
    """
    kind = "withdrawn" if reason is None else f"withdrawn#{reason}"
    kind = kind if not generation else f"{kind}~{generation}"
    return FlagChange.model_construct(
        change_id=change_id(customer_id, flag_id, kind),
        change="withdrawn",
        tenant=tenant,
        customer_id=customer_id,
        flag=WithdrawnFlag.model_construct(flag_id=flag_id),
        merged_into=merged_into,
        reason=reason,
    )


def flag_statuses(
    flags: Iterable[Flag], previous: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Flag id -> status: what the journey stage keeps of the flags it emitted (`flag_status`),
    given what it kept before (`previous`)."""
    kept = previous or {}
    return {flag.flag_id: flag_status(flag, kept.get(flag.flag_id)) for flag in flags}


def flag_transitions(
    tenant: str,
    customer_id: str,
    previous: Mapping[str, str],
    flags: Iterable[Flag],
    reason: str | None = None,
    generation: str = "",
) -> list[FlagChange]:
    """The changes from the flags last emitted (`previous`: id -> `flag_status`) to `flags`.

    New flags open (and resolve at once if already resolved); a flag resolves or reopens when
    its status moves; a flag no longer found is withdrawn: late events showed it never held.
    A flag whose handling changed while its status stood is `handled`; one whose content
    (`shape_mark`) changed while its status and handling stood is `updated`: each of these
    records carries the whole flag, so a consumer keeping the latest snapshot has its content.
    A kept status without a shape (kept before shapes were) takes the flag's as it is: no
    `updated` for it. `reason` says why flags are withdrawn when a person's decision (a split)
    is the cause.
    """
    flags = list(flags)
    gone = previous.keys() - {flag.flag_id for flag in flags}
    return flag_updates(tenant, customer_id, previous, flags, gone, reason, generation)


def flag_updates(
    tenant: str,
    customer_id: str,
    previous: Mapping[str, str],
    changed: Iterable[Flag],
    gone: Iterable[str],
    reason: str | None = None,
    generation: str = "",
) -> list[FlagChange]:
    """`flag_transitions` told only the flags that changed and the ids of those gone (a flag
    gone that was never emitted is not withdrawn): what a reading of the incremental
    evaluation gives (`projections.evaluation.FlagChanges`), at a cost proportional to it."""
    out: list[FlagChange] = []
    for flag in changed:
        stored = previous.get(flag.flag_id)
        before, before_mark, before_shape, count = (
            stored_status(stored) if stored is not None else (None, "", "", 0)
        )
        mark = handling_mark(flag)
        moved = len(out)
        if before is None:
            out.append(flag_changed(tenant, customer_id, flag, "opened", "", generation))
        if flag.status == "resolved" and before != "resolved":
            out.append(flag_changed(tenant, customer_id, flag, "resolved", mark, generation))
        elif flag.status == "open" and before == "resolved":
            out.append(flag_changed(tenant, customer_id, flag, "reopened", mark, generation))
        if len(out) == moved and mark != before_mark:
            out.append(flag_changed(tenant, customer_id, flag, "handled", mark, generation))
        if len(out) == moved and before_shape and (shape := shape_mark(flag)) != before_shape:
            # the id names both shapes and the count of changes (`flag_status`): the same
            # update replayed gets the same id, any later one another
            update = f"{before_shape}>{shape}.{count + 1}"
            out.append(flag_changed(tenant, customer_id, flag, "updated", update, generation))
    out.extend(
        flag_withdrawn(tenant, customer_id, flag_id, reason=reason, generation=generation)
        for flag_id in sorted(set(gone) & previous.keys())
    )
    return out


def withdraw_all(
    tenant: str,
    customer_id: str,
    previous: Iterable[str],
    merged_into: str | None,
    reason: str | None = None,
    generation: str = "",
) -> list[FlagChange]:
    """Withdraw every flag of a customer that is no more: merged into `merged_into`, or split
    away entirely (`reason`)."""
    return [
        flag_withdrawn(tenant, customer_id, flag_id, merged_into, reason, generation)
        for flag_id in sorted(previous)
    ]
