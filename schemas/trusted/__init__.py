"""The ledger's own records read back without validating them again (`reader`)."""

from schemas.trusted.reader import UntrustedRecord, read_event, read_events

__all__ = ["UntrustedRecord", "read_event", "read_events"]
