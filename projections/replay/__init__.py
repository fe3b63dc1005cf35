"""Replay: one customer's journey, flags and knowledge as they stood at a past moment.

Pure: the caller reads the events (from the log, a file, a test) and passes them in, in any
order, duplicates included; nothing here reads a clock or does I/O.

What "as it stood at `as_of`" means here: only events whose `occurred_at` is at or before
`as_of` are considered, for identity as for flags. An identity link made by a later event
does not pull earlier events into the journey, and the flags are `detect(events, as_of)` of
that journey: exactly what `journeys check --as-of T` gives for the same events cut at T.
`occurred_at` (when it happened in the source system), not the time the ledger received the
event, is the clock: it is what the rules reason with, and what a source system knew at T
is what its own events up to T said. An event that arrived late is shown at the moment it
happened; a caller who wants only what had reached the ledger by T can cut the events it
passes by their log time.

A flag's `first_visible_at` is the earliest moment t <= `as_of` at which a replay as of t
would have shown a flag with that id (open or resolved): `detect` over the events up to t,
grouped by identity as it stood at t. For a flag that opens when time passes (an unanswered
enquiry) that is its deadline: it shows at any moment after it.

Modules: `query` (parsing what the reviewer asked for), `resolution` (which journey that is as
of the moment), `replaying` (the replay itself), `visibility` (when each flag first showed) and
`document` (the JSON shape).
"""

from __future__ import annotations

from projections.replay.document import replay_to_dict
from projections.replay.query import CUSTOMER_ID, Query, parse_identifier, parse_query
from projections.replay.replaying import (
    FlagReplay,
    Replay,
    ReplayStats,
    events_to_fold,
    replay,
    unique_events,
)
from projections.replay.resolution import Resolution
from projections.replay.visibility import first_visible

__all__ = [
    "CUSTOMER_ID",
    "FlagReplay",
    "Query",
    "Replay",
    "ReplayStats",
    "Resolution",
    "events_to_fold",
    "first_visible",
    "parse_identifier",
    "parse_query",
    "replay",
    "replay_to_dict",
    "unique_events",
]
