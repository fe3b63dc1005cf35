"""Settles that follow each other quickly, live: the journeys still equal the pure fold's.

Ingest settles customers past a limit and the journey stage deals their events out as `moved`
records. When ingest runs ahead (it processes every batch of a dense log before the journey
stage reads any of its records), a customer that events were moved to may have been settled
again before they arrive: they must still end with the customer the pure fold gives them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from journeys.cli.check import check_lines
from projections.settings import FoldSettings
from tests.unit.test_identity_limits import _customers, _live, line
from tests.unit.test_stages import NOW

REFS = tuple(f"ACME-{n}" for n in range(1, 7))
EMAILS = tuple(f"u{n}@shop.net" for n in range(10))
PHONES = tuple(f"+44 7700 900{n:03d}" for n in range(100, 108))


def dense_lines(seed: int = 0, count: int = 40) -> list[bytes]:
    """Customers sharing references, e-mails and phones past the default limits many ways."""
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        customer: dict[str, str] = {}
        for kind, pool, share in (
            ("customer_ref", REFS, 0.4),
            ("email", EMAILS, 0.8),
            ("phone", PHONES, 0.7),
        ):
            if rng.random() < share:
                customer[kind] = rng.choice(pool)
        if len(customer) < 2:
            customer.update(email=rng.choice(EMAILS), phone=rng.choice(PHONES))
        lines.append(line(f"e-{n:02d}", "form.submitted", 5 * n, customer))
    return lines


def _pure(lines: list[bytes]) -> dict[tuple[str, str], list[str]]:
    report = check_lines(lines, FoldSettings(), NOW)
    return {(j.tenant, j.customer_id): [e.event_id for e in j.events] for j in report.journeys}


@pytest.mark.parametrize("seed", range(30))
def test_settles_ahead_of_the_journey_stage_still_give_the_pure_fold_s_journeys(
    tmp_path: Path, seed: int
) -> None:
    lines = dense_lines()
    random.Random(seed).shuffle(lines)
    pipeline = _live(tmp_path, lines)  # ingest processes every batch before any journey batch
    pure = _pure(lines)
    assert len(pure) > 3
    assert _customers(pipeline) == pure
    assert pipeline.dead == []
