"""Trends of the flags for a manager: open over time, how long people take, what waits longest.

Pure: a function over flag documents (as the flag index shows them: `FlagSnapshot.to_document()`
plus `tenant` and `customer_id`) and a window; no clock, the caller says `until`. A flag is open
at moment t when `opened_at <= t` and it was not resolved by then (`resolved_at` unset or after
t). The counts over time come from one sorted sweep over the openings and resolutions, so the
cost is O(flags log flags + buckets x (rules + sites)), never flags x buckets.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.errors import JourneyLedgerError

BUCKETS: dict[str, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
"""The bucket sizes a caller may ask for, by name."""

MAX_BUCKETS = 400
"""The most buckets one answer holds: a wider window needs a larger bucket."""

DEFAULT_WINDOW = timedelta(days=30)
"""The window when the caller gives no `since`."""

MAX_OLDEST = 10
"""The unacknowledged high flags listed (the oldest)."""

MAX_LOW_SCORES = 100
"""The low-score flags listed (the newest of the window); `low_scores_total` counts them all."""

LOW_SCORE_RULE = "LOW_SCORE_AFTER_FLAGS"
"""The rule whose flags put a survey score next to the flags that preceded it."""

NO_SITE = ""
"""The site key of flags whose events carry no site."""

_SHOWN = (
    "flag_id",
    "tenant",
    "customer_id",
    "rule",
    "severity",
    "status",
    "message",
    "opened_at",
    "resolved_at",
    "sites",
    "systems",
)
"""The fields of a flag the lists carry (its events and handling history stay on the journey)."""


class StatsRequestError(JourneyLedgerError, ValueError):
    """A trends request the computation refuses; `field` names the parameter at fault."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", hint=hint)


@dataclass(frozen=True, slots=True)
class StatsWindow:
    """What a trends answer covers: tenants, the window and the bucket size."""

    since: datetime
    until: datetime
    bucket: str = "day"
    tenant: str | None = None
    """The tenant asked for (None: every tenant the caller may see)."""
    tenants: frozenset[str] | None = None
    """The tenants the caller may see (None: every tenant)."""


def bucket_ends(since: datetime, until: datetime, bucket: str) -> list[datetime]:
    """The end of each bucket from `since`: a step apart, the last one cut at `until`.

    StatsRequestError (naming `since`, `bucket` or the window) when the window is empty or
    needs more than `MAX_BUCKETS` buckets.
    """
    if bucket not in BUCKETS:
        raise StatsRequestError("bucket", f"must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    if since >= until:
        raise StatsRequestError(
            "since", "must be before until", hint="give since earlier than until"
        )
    step = BUCKETS[bucket]
    count = -(-(until - since) // step)  # ceiling: a last, shorter bucket ends at until
    if count > MAX_BUCKETS:
        raise StatsRequestError(
            "bucket",
            f"{count} {bucket} buckets between since and until; at most {MAX_BUCKETS}",
            hint="choose a larger bucket (hour, day, week) or a shorter window",
        )
    return [min(since + step * k, until) for k in range(1, count + 1)]


def flag_stats(flags: Iterable[Mapping[str, Any]], window: StatsWindow) -> dict[str, Any]:
    """The trends document of the flags the window's tenants cover (see the module docstring).

    Keys: `tenant`, `since`, `until`, `bucket`, `open_over_time` (one point per bucket end:
    `at`, `total`, `by_rule`, `by_site`; a flag with several sites counts under each, one with
    none under ""), `time_to_acknowledge` and `time_to_resolve` (per rule and site: `median_s`
    and `count` of the flags acknowledged, resolved, within the window),
    `oldest_unacknowledged_high` (open, nobody acknowledged it, oldest first, at most 10, each
    with `waiting_s` at `until`) and its `unacknowledged_high_total`, `low_scores` (the
    `LOW_SCORE_AFTER_FLAGS` flags opened within the window, oldest first) and `low_scores_total`.
    """
    ends = bucket_ends(window.since, window.until, window.bucket)
    chosen = [_Parsed.of(flag) for flag in flags if _covered(flag, window)]
    return {
        "tenant": window.tenant,
        "since": _iso(window.since),
        "until": _iso(window.until),
        "bucket": window.bucket,
        "open_over_time": _open_over_time(chosen, ends),
        "time_to_acknowledge": _medians(
            (p, at) for p in chosen if (at := p.acknowledged_at) and _within(at, window)
        ),
        "time_to_resolve": _medians(
            (p, at) for p in chosen if (at := p.resolved_at) and _within(at, window)
        ),
        **_oldest_unacknowledged_high(chosen, window.until),
        **_low_scores(chosen, window),
    }


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One flag with its moments parsed once."""

    document: Mapping[str, Any]
    rule: str
    sites: tuple[str, ...]
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None

    @classmethod
    def of(cls, flag: Mapping[str, Any]) -> _Parsed:
        opened = _moment(flag["opened_at"]) or _unset("opened_at")
        resolved = _moment(flag.get("resolved_at")) if flag.get("status") == "resolved" else None
        handling = flag.get("handling") or {}
        return cls(
            document=flag,
            rule=str(flag["rule"]),
            sites=tuple(flag.get("sites") or ()) or (NO_SITE,),
            opened_at=opened,
            # A resolution dated before the opening (clocks disagree) means never open.
            resolved_at=None if resolved is None else max(resolved, opened),
            acknowledged_at=_moment(handling.get("acknowledged_at")),
        )


def _open_over_time(flags: Iterable[_Parsed], ends: list[datetime]) -> list[dict[str, Any]]:
    # Flags open at each bucket end, in all, by rule and by site, in one sorted sweep.
    changes: list[tuple[datetime, int, _Parsed]] = []
    for flag in flags:
        changes.append((flag.opened_at, 1, flag))
        if flag.resolved_at is not None:
            changes.append((flag.resolved_at, -1, flag))
    changes.sort(key=lambda change: change[0])
    by_rule: Counter[str] = Counter()
    by_site: Counter[str] = Counter()
    total = 0
    position = 0
    points: list[dict[str, Any]] = []
    for end in ends:
        while position < len(changes) and changes[position][0] <= end:
            _, delta, flag = changes[position]
            total += delta
            by_rule[flag.rule] += delta
            for site in flag.sites:
                by_site[site] += delta
            position += 1
        points.append(
            {
                "at": _iso(end),
                "total": total,
                "by_rule": {rule: n for rule, n in sorted(by_rule.items()) if n},
                "by_site": {site: n for site, n in sorted(by_site.items()) if n},
            }
        )
    return points


def median_seconds(spans: list[float]) -> float:
    """The median of some spans in seconds (the mean of the middle two for an even count)."""
    return float(statistics.median(spans))


def _medians(found: Iterable[tuple[_Parsed, datetime]]) -> list[dict[str, Any]]:
    spans: dict[tuple[str, str], list[float]] = {}
    for flag, at in found:
        # Clocks of different systems disagree a little: a span is never negative.
        seconds = max((at - flag.opened_at).total_seconds(), 0.0)
        for site in flag.sites:
            spans.setdefault((flag.rule, site), []).append(seconds)
    return [
        {"rule": rule, "site": site, "median_s": median_seconds(values), "count": len(values)}
        for (rule, site), values in sorted(spans.items())
    ]


def _oldest_unacknowledged_high(flags: list[_Parsed], until: datetime) -> dict[str, Any]:
    waiting = sorted(
        (
            p
            for p in flags
            if p.document.get("severity") == "high"
            and p.document.get("status") == "open"
            and p.acknowledged_at is None
            and p.opened_at <= until
        ),
        key=lambda p: (p.opened_at, str(p.document.get("flag_id"))),
    )
    return {
        "oldest_unacknowledged_high": [
            {**_shown(p), "waiting_s": (until - p.opened_at).total_seconds()}
            for p in waiting[:MAX_OLDEST]
        ],
        "unacknowledged_high_total": len(waiting),
    }


def _low_scores(flags: list[_Parsed], window: StatsWindow) -> dict[str, Any]:
    found = sorted(
        (p for p in flags if p.rule == LOW_SCORE_RULE and _within(p.opened_at, window)),
        key=lambda p: (p.opened_at, str(p.document.get("flag_id"))),
    )
    return {
        "low_scores": [_shown(p) for p in found[-MAX_LOW_SCORES:]],
        "low_scores_total": len(found),
    }


def _shown(flag: _Parsed) -> dict[str, Any]:
    return {key: flag.document.get(key) for key in _SHOWN}


def _covered(flag: Mapping[str, Any], window: StatsWindow) -> bool:
    tenant = flag.get("tenant")
    if window.tenants is not None and tenant not in window.tenants:
        return False
    return window.tenant is None or tenant == window.tenant


def _within(moment: datetime, window: StatsWindow) -> bool:
    return window.since <= moment <= window.until


def _unset(field: str) -> datetime:
    raise ValueError(f"a flag without {field}: not a flag document of the flag index")


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    # Flag moments keep their source's offset; a naive one (never written by the ledger) is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
