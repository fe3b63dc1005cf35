"""The data-protection commands: `journeys forget` (erasure) and `journeys export` (access)."""

from __future__ import annotations

from journeys.cli.privacy import export, forget

__all__ = ["export", "forget"]
