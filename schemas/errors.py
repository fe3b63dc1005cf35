"""The root of journey-ledger's errors, and the contract's: every error says what to do next."""

from __future__ import annotations

from dataclasses import dataclass


class JourneyLedgerError(Exception):
    """Root of every error journey-ledger raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason an event was rejected: the dotted field path and what is wrong with it."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class InvalidEventError(JourneyLedgerError, ValueError):
    """An event broke the contract; `problems` names each field and reason."""

    hint = "fix the fields named and send the event again"

    def __init__(self, problems: tuple[FieldProblem, ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class EventConflictError(JourneyLedgerError):
    """The same event_id arrived again with different content; the first one stays."""

    hint = "give a corrected event a new event_id"


class UnknownIdentifierError(JourneyLedgerError, ValueError):
    """A replay query is neither KIND:VALUE with a known kind nor a customer id."""

    hint = (
        "write KIND:VALUE with KIND one of customer_ref, email, phone, plate, vin, order_id, "
        "card_token, membership_id, anonymous_id (e.g. phone:+44 7700 900123), or a customer "
        "id such as cus_0123456789abcdef"
    )


class CustomerNotFoundError(JourneyLedgerError, LookupError):
    """No journey held the identifier or customer id at the moment asked about."""

    hint = "check the identifier and --as-of: identity is taken as it stood at that moment"


class AmbiguousCustomerError(JourneyLedgerError, LookupError):
    """A replay query matches more than one journey; `candidates` lists them."""

    hint = "name the tenant, or query one of the customer ids listed"

    def __init__(
        self, message: str, candidates: tuple[str, ...] = (), *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.candidates = candidates


class InvalidWindowError(JourneyLedgerError, ValueError):
    """The replay's moments are naive or out of order (from after to, to or from after as_of)."""

    hint = "give RFC 3339 times with a UTC offset, with --from <= --to <= --as-of"
