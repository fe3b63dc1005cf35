"""REPEATED_ASK: the business asks the customer for something the journey already held."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from projections.rules.readers import field_name, requested_slot
from projections.rules.rule import Rule, Untimed
from schemas.events import IDENTIFIER_KINDS, CallLogged, ChatMessage, Event

if TYPE_CHECKING:
    from projections.settings import RuleSettings


def asked_for(event: Event) -> tuple[str, ...]:
    """What a business-side event asked the customer for."""
    if isinstance(event, ChatMessage) and event.payload.speaker in ("agent", "bot"):
        return event.payload.asked_for
    if isinstance(event, CallLogged):
        return event.payload.asked_for
    return ()


class _Held:
    """What the journey held so far, with the system that first supplied each thing."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.sites: dict[str | None, str] = {}

    def learn(self, event: Event) -> None:
        system = event.source.system
        customer = event.customer
        for kind, value in zip(IDENTIFIER_KINDS, customer.identifier_values(), strict=True):
            if value:
                self.fields.setdefault(kind, system)
        if customer.name:
            self.fields.setdefault("name", system)
        if isinstance(event, ChatMessage) and event.payload.speaker == "customer":
            for provided in event.payload.provided:
                self.fields.setdefault(field_name(provided), system)
        if requested_slot(event) is not None:
            self.fields.setdefault("slot", system)

    def learn_site(self, event: Event) -> None:
        if event.source.site:
            self.sites.setdefault(event.correlation_id, event.source.system)
            self.sites.setdefault(None, event.source.system)

    def supplier(self, name: str, conversation: str | None) -> str | None:
        if name == "site":
            return self.sites.get(conversation)
        return self.fields.get(name)


class _Walk(Untimed):
    """Each business-side ask for something held before that moment is flagged once."""

    stale = False

    def __init__(self, rules: RuleSettings, ahead: Sequence[Event] = ()) -> None:
        del ahead  # looks only back
        del rules  # no thresholds
        self.held = _Held()
        self.found: list[FlagDraft] = []

    def step(self, event: Event) -> None:
        # The asking event's own site counts: the conversation itself names it.
        self.held.learn_site(event)
        repeated: list[str] = []
        for asked in asked_for(event):
            supplier = self.held.supplier(field_name(asked), event.correlation_id)
            if supplier is not None:
                repeated.append(f"{asked} (held from {supplier})")
        if repeated:
            message = f"{event.source.system} asked the customer for {', '.join(repeated)}"
            self.found.append(RULE.draft(event.event_id, message, event.occurred_at, [event]))
        self.held.learn(event)


RULE = Rule.walking("REPEATED_ASK", Severity.LOW, _Walk)
RULES = (RULE,)
