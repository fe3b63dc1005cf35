"""Helpers shared by test suites (unit and, later, integration)."""
