"""The ledger's own records read back without the contract's Python checks again (`reader`)."""

from schemas.trusted.reader import read_event, read_events, without_content_checks

__all__ = ["read_event", "read_events", "without_content_checks"]
