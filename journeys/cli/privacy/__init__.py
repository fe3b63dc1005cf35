"""The data-protection commands: `journeys forget` (erasure), `journeys export` (access) and
`journeys keys rotate` (master-key rotation)."""

from __future__ import annotations

from journeys.cli.privacy import export, forget, keys

__all__ = ["export", "forget", "keys"]
