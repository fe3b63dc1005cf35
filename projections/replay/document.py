"""A replay as a JSON-ready dict."""

from __future__ import annotations

from typing import Any

from projections.knowledge import knowledge_to_dict
from projections.replay.replaying import Replay
from projections.view import flag_to_dict, view_to_dict
from schemas.codec import event_to_dict


def replay_to_dict(result: Replay) -> dict[str, Any]:
    """A replay as a JSON-ready dict (the shape is documented in `journeys.report`)."""
    resolution = result.resolution
    flagged: dict[str, list[str]] = {}
    for flag in result.view.flags:
        for event_id in flag.event_ids:
            flagged.setdefault(event_id, []).append(flag.flag_id)
    journey = view_to_dict(result.view)
    return {
        "query": {
            "text": str(resolution.query),
            "kind": resolution.query.kind,
            "matched_key": resolution.matched_key,
        },
        "resolution": {
            "tenant": resolution.tenant,
            "customer_id": resolution.customer_id,
            "requested_id": resolution.requested_id,
            "superseded": resolution.superseded,
            "note": resolution.note,
        },
        "as_of": result.as_of.isoformat(),
        "window": {
            "from": result.window_from.isoformat() if result.window_from else None,
            "to": result.window_to.isoformat(),
        },
        "summary": {
            "events": len(result.view.events),
            "events_in_window": len(result.timeline),
            "flags": len(result.flags),
            "open_flags": result.open_flags,
            "systems": list(result.knowledge.system_names),
            "events_read": result.stats.events_read,
            "duplicates": result.stats.duplicates,
            "conflicts": result.stats.conflicts,
            "after_as_of": result.stats.after_as_of,
        },
        "names": journey["names"],
        "identifiers": journey["identifiers"],
        "timeline": [
            {
                "event_id": e.event_id,
                "occurred_at": e.occurred_at.isoformat(),
                "system": e.source.system,
                "type": e.type,
                "flag_ids": sorted(flagged.get(e.event_id, [])),
                "event": event_to_dict(e),
            }
            for e in result.timeline
        ],
        "flags": [
            {
                **flag_to_dict(f.flag),
                "first_visible_at": f.first_visible_at.isoformat(),
                "first_visible_systems": list(f.first_visible_systems),
            }
            for f in result.flags
        ],
        "knowledge": knowledge_to_dict(result.knowledge),
    }
