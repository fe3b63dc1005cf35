"""The bundled demo journeys: two tenants, seven customers, every rule firing at least once."""

from __future__ import annotations

from importlib import resources

DEMO_FILE = "demo-journeys.jsonl"
"""The demo's file name inside this package."""


def demo_bytes() -> bytes:
    """The demo file as it is: JSON Lines."""
    return resources.files(__name__).joinpath(DEMO_FILE).read_bytes()


def demo_lines() -> list[bytes]:
    """The demo's events, one JSON document per item, blank lines left out."""
    return [line for line in demo_bytes().splitlines() if line.strip()]
