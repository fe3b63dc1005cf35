"""The rules of one journey evaluated incrementally: each rule's walk carried on event by event.

`rules.detect` walks the whole journey every time; an `Evaluation` keeps every rule's walk
(`rules.rule.Walker`) and steps only the events added since it last looked, so an event that
comes in journey order costs each rule one step, whatever the journey's length. A rule's
`detect` is its walker stepped over the whole journey, so both give the same flags (property
tests hold it for every rule, events one by one and in batches, late ones included).

Reading tells what changed (`changes`): the steps note the drafts they make, change or drop
(`flags.DraftJournal`), and only those flags are built again, with the drafts made afresh at
each reading (`Walker.due`: an enquiry waiting past its window) and the flags whose handling
may have changed: a new action, or an action or a snooze's end that the moment read at passed
since the reading before (found by bisection among those moments; every flag people acted on
when the moment goes back). The flags are kept by id and, for the derived rule, in
the order they opened, each moved by bisection; nothing is sorted or compared whole.

Costs, plainly:

- An event in journey order: one step per rule (a `REFERRAL_LOOP` step looks back over the
  customer's handoffs, a `DUPLICATE_ORDER` step over the orders placed within its window),
  then reading: proportional to the flags it touched and those whose handling changed.
- A late event (one that sorts before the last event stepped), a merge or a split: every walk
  starts again over the whole journey, once, and the reading gives every flag (`whole`).
- A `DATE_MISMATCH` walk that learns of a booking an earlier message named is walked again
  over the whole journey, once (the whole walk knows each booking's first slot beforehand).
- The derived `LOW_SCORE_AFTER_FLAGS` reads again only the surveys a new, changed or gone
  flag can reach (`projections.evaluation.derived`): those answered within its window of the
  flag's opening; each survey reads the flags opened in its window (two bisections, then the
  events of the few its message names). Bounded by the window, not by the journey.
- `flags` (every flag, sorted) is for callers that want them all; the journey stage reads
  `changes`.
- Memory: the walks' state, the flags by id, and the events the flags point at by id; none of
  it holds every event (a test holds it flat for a hot customer whose events raise no flags).
  Some walks keep what a later event may still need, each thing once: order ids and cancels,
  payments, handoffs, bookings, written facts, and conversations that named a site.

Rules given as extra detectors, or whose detector was replaced, run over the whole journey at
each reading, as `detect` runs them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from projections.evaluation.derived import LowScores
from projections.flags import DraftJournal, Flag, FlagDraft, flag_id, sort_flags
from projections.handling.handling import lay_over
from projections.rules import DERIVED, DETECTORS, REGISTRY, Detector, scores
from projections.rules.rule import Walker, WalkerFactory, walk
from projections.settings import RuleSettings
from schemas.events import HANDLING_TYPES, Event, FlagAction
from schemas.people import FlagSnoozed


def _order(flag: Flag) -> tuple[datetime, str, str]:
    return flag.opened_at, flag.rule, flag.flag_id


@dataclass(frozen=True, slots=True)
class FlagChanges:
    """What a reading found changed in a journey's flags since the reading before."""

    flags: tuple[Flag, ...]
    """The flags new or changed, in the order they opened (every flag when `whole`)."""
    gone: tuple[str, ...]
    """The ids of flags no longer found (empty when `whole`)."""
    whole: bool
    """Read afresh (the first reading, or after a walk from the start): `flags` is every flag,
    and a flag the caller knows that is not among them is gone."""


class Evaluation:
    """One journey's rules, evaluated as the journey grows (see the module's docstring)."""

    def __init__(self, rules: RuleSettings, extra: Mapping[str, Detector] | None = None) -> None:
        self.rules = rules
        self.extra = extra = dict(extra or {})
        self.whole: dict[str, Detector] = {}
        """Rules run over the whole journey each time: extra ones, replaced ones."""
        self.factories: dict[str, WalkerFactory] = {}
        """Rules walked incrementally, by name."""
        self.types: dict[str, frozenset[str] | None] = {}
        """The event types each of those rules' walker acts on (`Rule.types`; None: all)."""
        by_name = {rule.name: rule for rule in REGISTRY}
        for name, detector in {**DETECTORS, **extra}.items():
            if name not in rules.enabled and name not in extra:
                continue
            rule = by_name.get(name)
            if rule is not None and rule.walker is not None and rule.detect is detector:
                self.factories[name] = rule.walker
                self.types[name] = rule.types
            else:
                self.whole[name] = detector
        self.walkers: dict[str, Walker] = {}
        self.events: Sequence[Event] = ()
        self.last: Event | None = None
        self.involved: dict[str, Event] = {}
        """The events some flag (or low survey) points at, by id: what handling and the derived
        rule look up. Not every event: it grows with the flags, not with the journey."""
        self.actions: dict[str, list[FlagAction]] = {}
        """People's handling events, by the flag they name."""
        self.moments: list[tuple[datetime, str]] = []
        """When each flag's handling changes with no new event (an action's moment, a snooze's
        end), with its id, in time order: a reading lays again only the flags whose moment it
        passed since the reading before (`_acted_on`), not every flag people acted on."""
        self.acted: set[str] = set()
        """Flags given a handling event since the last reading."""
        self.read_at: datetime | None = None
        """The moment of the last reading (None: nothing read since the walk began)."""
        self.snooze_ends: list[tuple[datetime, datetime]] = []
        """Each snooze's end and its moment, in order of their ends (`deadline`)."""
        self.low = LowScores()
        self.journal = DraftJournal()
        """The drafts the steps made, changed or dropped since the last reading."""
        self.afresh = True
        """The next reading gives every flag (nothing read yet, or walked from the start)."""
        self.base: dict[str, tuple[FlagDraft, Flag]] = {}
        """The rules' flags (before handling) with the draft behind each, by id."""
        self.moment: dict[str, FlagDraft] = {}
        """The drafts made afresh at the last reading (`Walker.due`, whole rules), by flag id."""
        self.base_shown: dict[str, Flag] = {}
        """The rules' flags as last read (handling laid over), by id."""
        self.ordered: list[Flag] = []
        """The same in the order they opened: what the derived rule reads."""
        self.derived: dict[str, Flag] = {}
        """The derived rules' flags (before handling), by id."""
        self.shown: dict[str, Flag] = {}
        """Every flag as last read, by id: what `changes` compares with."""
        self.pending: set[str] = set()
        """Flags taken out of `base` between readings (a walk done again): read them next."""

    def sync(self, events: Sequence[Event]) -> None:
        """Catch up with the journey's events: step the new ones, or walk again from the start
        if the journey is not the one walked with events added after its last."""
        held = len(self.events)
        if held and (len(events) < held or events[held - 1] is not self.last):
            held = 0  # a late event, a merge or a split: start again
        if held == 0:
            self._restart(events)
        with self.journal:
            for event in events[held:]:
                self._step(event)
            self.events = events
            self.last = events[-1] if events else None
            for name, walker in self.walkers.items():
                if walker.stale:  # walked again: its flags are those the new walk notes
                    for key in [k for k, (_, f) in self.base.items() if f.rule == name]:
                        self._unbase(key)
                    touched = self.journal.touched
                    for ref in [r for r, d in touched.items() if d.rule == name]:
                        del touched[ref]  # the old walk's drafts
                    self.walkers[name] = walk(
                        self.factories[name], events, self.rules, self.types[name]
                    )

    def _restart(self, events: Sequence[Event]) -> None:
        self.walkers = {
            name: factory(self.rules, events) for name, factory in self.factories.items()
        }
        self.involved, self.actions, self.low = {}, {}, LowScores()
        self.moments, self.acted, self.read_at, self.snooze_ends = [], set(), None, []
        self.journal.clear()
        self.base, self.moment, self.derived, self.base_shown = {}, {}, {}, {}
        self.ordered = []
        self.afresh = True

    def _step(self, event: Event) -> None:
        types = self.types
        for name, walker in self.walkers.items():
            acts_on = types[name]
            if acts_on is None or event.type in acts_on:
                walker.step(event)
        if event.type in HANDLING_TYPES:
            action: FlagAction = event  # type: ignore[assignment]
            key = action.payload.flag_id
            self.actions.setdefault(key, []).append(action)
            self.acted.add(key)
            bisect.insort(self.moments, (action.occurred_at, key))
            if isinstance(event, FlagSnoozed):
                until = event.payload.until
                bisect.insort(self.moments, (until, key))
                bisect.insort(self.snooze_ends, (until, event.occurred_at))
        elif scores.is_low_survey(event):
            self.low.add(event)
            self.involved[event.event_id] = event

    def flags(self, as_of: datetime) -> tuple[Flag, ...]:
        """What `rules.detect` gives for the journey synced last, as of a moment (every flag:
        this sorts them all; `changes` is the reading that costs what changed)."""
        self.changes(as_of)
        return sort_flags(self.shown.values())

    def changes(self, as_of: datetime) -> FlagChanges:
        """Read the flags as of a moment: those new or changed since the last reading, and the
        ids of those gone (or every flag, the first time and after a walk from the start)."""
        candidates = self._read_base(as_of)
        by_flag = _Taken(self.actions, as_of)
        candidates.update(self._acted_on(as_of))
        moved = self._show_base(candidates, by_flag, as_of)
        candidates.update(self._read_derived(moved, as_of))
        changed: list[Flag] = []
        gone: list[str] = []
        for key in candidates:
            new = self.base_shown.get(key)
            if new is None and (plain := self.derived.get(key)) is not None:
                new = self._lay(plain, by_flag, as_of)
            old = self.shown.get(key)
            if new is None:
                if old is not None:
                    del self.shown[key]
                    gone.append(key)
            elif old is None or (new is not old and new != old):
                self.shown[key] = new
                changed.append(new)
        if self.afresh:
            self.afresh = False
            return FlagChanges(sort_flags(self.shown.values()), (), True)
        return FlagChanges(sort_flags(changed), tuple(sorted(gone)), False)

    def _read_base(self, as_of: datetime) -> set[str]:
        """Build the flags the steps touched and the drafts due now; the ids that may have
        changed (all those shown before, after a walk from the start)."""
        candidates = self.pending | set(self.shown) if self.afresh else self.pending
        self.pending = set()
        for key, draft in self.moment.items():  # made afresh each reading: last one's go
            if key in self.base and self.base[key][0] is draft:
                self._unbase(key)
            candidates.add(key)
        self.moment = {}
        journal = self.journal
        for draft in journal.dropped.values():
            key = flag_id(draft.rule, draft.anchor)
            if key in self.base and self.base[key][0] is draft:
                self._unbase(key)
            candidates.add(key)
        for ref, draft in journal.touched.items():
            if ref not in journal.dropped:
                candidates.add(self._rebase(draft))
        journal.clear()
        due: list[FlagDraft] = []
        for walker in self.walkers.values():
            due.extend(walker.due(as_of))
        for detector in self.whole.values():
            due.extend(detector(self.events, as_of, self.rules))
        for draft in due:
            key = self._rebase(draft)
            self.moment[key] = draft
            candidates.add(key)
        return candidates

    def _rebase(self, draft: FlagDraft) -> str:
        flag = draft.build()
        involved = self.involved
        for event in draft.events:
            involved[event.event_id] = event
        self.base[flag.flag_id] = (draft, flag)
        return flag.flag_id

    def _unbase(self, key: str) -> None:
        del self.base[key]
        self.pending.add(key)

    def _lay(self, flag: Flag, by_flag: Mapping[str, list[FlagAction]], as_of: datetime) -> Flag:
        if flag.flag_id not in by_flag:
            return flag
        return lay_over((flag,), by_flag, self.involved, as_of)[0]

    def _show_base(
        self, candidates: Iterable[str], by_flag: Mapping[str, list[FlagAction]], as_of: datetime
    ) -> list[Flag]:
        """Lay handling over the rules' flags that may have changed and keep them in order;
        every version of those that did change (old and new), for the derived rule."""
        moved: list[Flag] = []
        for key in candidates:
            held = self.base.get(key)
            new = None if held is None else self._lay(held[1], by_flag, as_of)
            old = self.base_shown.get(key)
            if new is old or (new is not None and old is not None and new == old):
                continue  # the same: the flag keeps its identity
            if old is not None:
                at = bisect.bisect_left(self.ordered, _order(old), key=_order)
                del self.ordered[at]
                moved.append(old)
                del self.base_shown[key]
            if new is not None:
                bisect.insort(self.ordered, new, key=_order)
                self.base_shown[key] = new
                moved.append(new)
        return moved

    def _read_derived(self, moved: Sequence[Flag], as_of: datetime) -> set[str]:
        """Read the derived rules again where the rules' flags moved; the ids read."""
        read: set[str] = set()
        for rule in DERIVED:
            if rule.name not in self.rules.enabled:
                continue
            if rule is scores.RULE:
                for survey_id in self.low.update(
                    self.ordered, moved, self.involved, as_of, self.rules
                ):
                    key = flag_id(rule.name, survey_id)
                    found = self.low.found.get(survey_id)
                    if found is None:
                        self.derived.pop(key, None)
                    else:
                        self.derived[key] = found
                    read.add(key)
            else:  # any other derived rule: read whole
                for key in [k for k, f in self.derived.items() if f.rule == rule.name]:
                    del self.derived[key]
                    read.add(key)
                for draft in rule.detect(self.events, self.ordered, as_of, self.rules):
                    flag = draft.build()
                    self.derived[flag.flag_id] = flag
                    read.add(flag.flag_id)
        return read

    def deadline(self, as_of: datetime) -> datetime | None:
        """What `rules.next_deadline` gives for the journey synced last."""
        deadlines = []
        for rule in REGISTRY:
            if rule.deadline is None or rule.name not in self.rules.enabled:
                continue
            walker = self.walkers.get(rule.name)
            moment = (
                walker.deadline(as_of)
                if walker is not None
                else rule.deadline(self.events, as_of, self.rules)
            )
            if moment is not None:
                deadlines.append(moment)
        snoozed = self._snooze_deadline(as_of)
        return min([*deadlines, *([snoozed] if snoozed else [])], default=None)

    def _acted_on(self, as_of: datetime) -> set[str]:
        """The flags whose handling may differ from the last reading's: those given an action
        since, and those with an action or a snooze's end between the two moments (every flag
        acted on when the moment went back or nothing was read since the walk began)."""
        last, self.read_at = self.read_at, as_of
        acted, self.acted = self.acted, set()
        if last is None or as_of < last:
            return acted | set(self.actions)
        moments = self.moments
        start = bisect.bisect_right(moments, last, key=_moment)
        end = bisect.bisect_right(moments, as_of, lo=start, key=_moment)
        acted.update(key for _, key in moments[start:end])
        return acted

    def _snooze_deadline(self, as_of: datetime) -> datetime | None:
        """`handling.snooze_deadline` of the journey's snoozes: the first end after `as_of`
        of a snooze made by then (the ends in order: usually the first one looked at)."""
        ends = self.snooze_ends
        for index in range(bisect.bisect_right(ends, as_of, key=_moment), len(ends)):
            until, made = ends[index]
            if made <= as_of:
                return until
        return None


def _moment(entry: tuple[datetime, object]) -> datetime:
    return entry[0]


class _Taken(Mapping[str, list[FlagAction]]):
    """Each flag's handling events taken by a moment, worked out for the flags looked up (not
    for every flag people acted on, at each reading)."""

    def __init__(self, actions: Mapping[str, list[FlagAction]], as_of: datetime) -> None:
        self.actions, self.as_of = actions, as_of

    def __getitem__(self, key: str) -> list[FlagAction]:
        taken = [a for a in self.actions.get(key, ()) if a.occurred_at <= self.as_of]
        if not taken:
            raise KeyError(key)
        return taken

    def __contains__(self, key: object) -> bool:
        actions = self.actions.get(key, ()) if isinstance(key, str) else ()
        return any(a.occurred_at <= self.as_of for a in actions)

    def __iter__(self) -> Iterator[str]:
        return (key for key in self.actions if key in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)
