"""`journeys check`'s output on generated files stays what it was before the speed work.

The digests were taken with the code before issue 14's `check` throughput changes (main at
ae3b4aa): any change in what `check_lines` reports (journeys, events, flags, identifiers,
links, merges, rejected lines, summary) changes them. When a change of output is intended,
print the new digest with `python -m tests.unit.test_check_output` and say why in the commit.
"""

from __future__ import annotations

import gc
import hashlib
import random

import orjson
import pytest

from journeys.bench.load import skewed_lines
from journeys.cli.check import RARE_COLLECTIONS, check_lines, rare_collections, report_to_dict
from projections.settings import FoldSettings

EXPECTED = {
    2: "ae79a6488e4c9774f74665ca9770fcd3c8e58701189ca50d9d4f964d475bf7ef",
    5: "ebee4bfe280f7c69cf3003a80784943a47c0f3b8301bfbf040bccbb0ef187a18",
}
"""Seed of the generated file -> sha256 of `journeys check --format json` on it."""


def hostile_file(seed: int) -> list[bytes]:
    """A generated load, shuffled, with a repeated line, a bad line and a conflicting event id."""
    lines = list(skewed_lines(3_000, 600, seed))
    random.Random(seed).shuffle(lines)
    lines.insert(5, lines[10])  # a duplicate
    lines.insert(7, b'{"bad": 1}')
    changed = orjson.loads(lines[20])
    changed["source"]["system"] = "another-system"  # the same event id, other content
    lines.insert(9, orjson.dumps(changed))
    lines.insert(11, b"")
    return lines


def output_digest(seed: int) -> str:
    """The sha256 of the JSON `journeys check` writes for the seed's file."""
    report = check_lines(hostile_file(seed), FoldSettings())
    document = orjson.dumps(report_to_dict(report), option=orjson.OPT_INDENT_2)
    return hashlib.sha256(document).hexdigest()


@pytest.mark.parametrize("seed", sorted(EXPECTED))
def test_check_output_is_unchanged_on_generated_files(seed: int) -> None:
    assert output_digest(seed) == EXPECTED[seed]


def test_the_generated_files_hold_what_they_are_meant_to() -> None:
    report = check_lines(hostile_file(2), FoldSettings())
    assert report.duplicates >= 1
    reasons = [r.reason for r in report.rejected]
    assert any("already used on line" in reason for reason in reasons)
    assert len(report.rejected) >= 2
    assert sum(len(j.events) for j in report.journeys) == report.accepted
    assert any(len(j.events) > 1 for j in report.journeys)
    assert any(j.flags for j in report.journeys)


def test_rare_collections_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    with rare_collections():
        assert gc.get_threshold() == RARE_COLLECTIONS
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), rare_collections():
        raise RuntimeError("a failing check")
    assert gc.get_threshold() == before


if __name__ == "__main__":
    for number in sorted(EXPECTED):
        print(f"    {number}: {output_digest(number)!r},")
