"""The `journeys` command line: the typer app (`app`), one module per command, registered here."""

from __future__ import annotations

from importlib import import_module

from journeys.cli.app import app

__all__ = ["COMMANDS", "app", "main"]

COMMANDS = (
    "check",
    "topics",
    "send",
    "worker",
    "up",
    "query",
    "flag",
    "privacy",
    "replay",
    "bench",
)
"""The command modules, in the order `journeys --help` lists their commands."""

for _module in COMMANDS:
    import_module(f"{__name__}.{_module}")  # registers the module's commands on `app`


def main() -> None:
    """Console-script entry point."""
    app()
