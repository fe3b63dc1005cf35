"""The data-protection commands: `journeys forget` (erasure); one module per command."""

from __future__ import annotations

from journeys.cli.privacy import forget

__all__ = ["forget"]
