"""The rules of one journey evaluated incrementally: each rule's walk carried on event by event.

`rules.detect` walks the whole journey every time; an `Evaluation` keeps every rule's walk
(`rules.rule.Walker`) and steps only the events added since it last looked, so an event that
comes in journey order costs each rule one step, whatever the journey's length. A rule's
`detect` is its walker stepped over the whole journey, so both give the same flags (property
tests hold it for every rule, events one by one and in batches, late ones included).

Costs, plainly:

- An event in journey order: one step per rule (a `REFERRAL_LOOP` step looks back over the
  customer's handoffs, a `DUPLICATE_ORDER` step over the orders placed within its window).
- A late event (one that sorts before the last event stepped), a merge or a split: every walk
  starts again over the whole journey, once.
- A `DATE_MISMATCH` walk that learns of a booking an earlier message named is walked again
  over the whole journey, once (the whole walk knows each booking's first slot beforehand).
- Reading the flags: proportional to the journey's flags (each is built again only when its
  rule changed it; they are sorted, and laid over people's handling). The derived
  `LOW_SCORE_AFTER_FLAGS` reads again only the surveys a new or changed flag can reach
  (`projections.evaluation.derived`), each against the flags opened before it.
- Memory: the walks' state, and the journey's events by id (the journey is in memory anyway).

Rules given as extra detectors, or whose detector was replaced, run over the whole journey as
`detect` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from projections.evaluation.derived import LowScores
from projections.flags import Flag, FlagDraft, sort_flags
from projections.handling.handling import lay_over, snooze_deadline
from projections.rules import DERIVED, DETECTORS, REGISTRY, Detector, scores
from projections.rules.rule import Walker, WalkerFactory, walk
from projections.settings import RuleSettings
from schemas.events import HANDLING_TYPES, Event, FlagAction
from schemas.people import FlagSnoozed

_Shape = tuple[int, datetime | None, str | None, str]
"""What of a draft can change as its walk goes on: events involved, resolution, message."""


class Evaluation:
    """One journey's rules, evaluated as the journey grows (see the module's docstring)."""

    def __init__(self, rules: RuleSettings, extra: Mapping[str, Detector] | None = None) -> None:
        self.rules = rules
        self.extra = extra = dict(extra or {})
        self.whole: dict[str, Detector] = {}
        """Rules run over the whole journey each time: extra ones, replaced ones."""
        self.factories: dict[str, WalkerFactory] = {}
        """Rules walked incrementally, by name."""
        by_name = {rule.name: rule for rule in REGISTRY}
        for name, detector in {**DETECTORS, **extra}.items():
            if name not in rules.enabled and name not in extra:
                continue
            rule = by_name.get(name)
            if rule is not None and rule.walker is not None and rule.detect is detector:
                self.factories[name] = rule.walker
            else:
                self.whole[name] = detector
        self.walkers: dict[str, Walker] = {}
        self.events: Sequence[Event] = ()
        self.last: Event | None = None
        self.by_id: dict[str, Event] = {}
        self.actions: dict[str, list[FlagAction]] = {}
        self.snoozes: list[FlagSnoozed] = []
        self.low = LowScores()
        self.built: dict[int, tuple[FlagDraft, _Shape, Flag]] = {}

    def sync(self, events: Sequence[Event]) -> None:
        """Catch up with the journey's events: step the new ones, or walk again from the start
        if the journey is not the one walked with events added after its last."""
        held = len(self.events)
        if held and (len(events) < held or events[held - 1] is not self.last):
            held = 0  # a late event, a merge or a split: start again
        if held == 0:
            self.walkers = {
                name: factory(self.rules, events) for name, factory in self.factories.items()
            }
            self.by_id, self.actions, self.snoozes, self.low = {}, {}, [], LowScores()
        for event in events[held:]:
            self._step(event)
        self.events = events
        self.last = events[-1] if events else None
        for name, walker in self.walkers.items():
            if walker.stale:
                self.walkers[name] = walk(self.factories[name], events, self.rules)

    def _step(self, event: Event) -> None:
        for walker in self.walkers.values():
            walker.step(event)
        self.by_id[event.event_id] = event
        if event.type in HANDLING_TYPES:
            action: FlagAction = event  # type: ignore[assignment]
            self.actions.setdefault(action.payload.flag_id, []).append(action)
            if isinstance(event, FlagSnoozed):
                self.snoozes.append(event)
        elif scores.is_low_survey(event):
            self.low.add(event)

    def flags(self, as_of: datetime) -> tuple[Flag, ...]:
        """What `rules.detect` gives for the journey synced last, as of a moment."""
        drafts: list[FlagDraft] = []
        for walker in self.walkers.values():
            drafts.extend(walker.drafts(as_of))
        for detector in self.whole.values():
            drafts.extend(detector(self.events, as_of, self.rules))
        base = sort_flags(self._build(drafts))
        by_flag = self._handling(as_of)
        if by_flag:
            base = lay_over(base, by_flag, self.by_id, as_of)
        derived = self._derived(base, as_of)
        if by_flag and derived:
            derived = list(lay_over(derived, by_flag, self.by_id, as_of))
        return sort_flags((*base, *derived)) if derived else base

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
        snoozed = snooze_deadline(self.snoozes, as_of)
        return min([*deadlines, *([snoozed] if snoozed else [])], default=None)

    def _build(self, drafts: list[FlagDraft]) -> list[Flag]:
        """Each draft's flag, built again only if its walk changed it since the last time."""
        built: dict[int, tuple[FlagDraft, _Shape, Flag]] = {}
        flags = []
        for draft in drafts:
            shape = (len(draft.events), draft.resolved_at, draft.resolution, draft.message)
            known = self.built.get(id(draft))
            if known is not None and known[0] is draft and known[1] == shape:
                flag = known[2]
            else:
                flag = draft.build()
            built[id(draft)] = (draft, shape, flag)
            flags.append(flag)
        self.built = built
        return flags

    def _handling(self, as_of: datetime) -> dict[str, list[FlagAction]]:
        by_flag: dict[str, list[FlagAction]] = {}
        for flag_id, actions in self.actions.items():
            taken = [a for a in actions if a.occurred_at <= as_of]
            if taken:
                by_flag[flag_id] = taken
        return by_flag

    def _derived(self, base: Sequence[Flag], as_of: datetime) -> list[Flag]:
        derived: list[Flag] = []
        for rule in DERIVED:
            if rule.name not in self.rules.enabled:
                continue
            if rule is scores.RULE:
                derived.extend(self.low.evaluate(base, self.by_id, as_of, self.rules))
            else:
                drafts = rule.detect(self.events, base, as_of, self.rules)
                derived.extend(draft.build() for draft in drafts)
        return derived
