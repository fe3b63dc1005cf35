"""`journeys check`'s output on generated files stays what it was before the speed work.

The digests were taken with the code before issue 14's `check` throughput changes (main at
ae3b4aa): any change in what `check_lines` reports (journeys, events, flags, identifiers,
links, merges, rejected lines, summary) changes them. When a change of output is intended,
print the new digest with `python -m tests.unit.test_check_output` and say why in the commit.
"""

from __future__ import annotations

import gc
import hashlib
import io
import random

import orjson
import pytest

from journeys.bench.load import skewed_lines
from journeys.cli.check import (
    RARE_COLLECTIONS,
    CheckReport,
    check_lines,
    rare_collections,
    report_to_dict,
    write_report_json,
)
from projections.ledger import Ledger
from projections.settings import FoldSettings
from schemas.codec import decode_event

EXPECTED = {
    2: "5a1d59a4c68c25aa5a01a7f6572848f96ce3d147aa9d4b0cc29682ae03bb2d29",
    5: "fc5d1f1bfc0c4dc8f76162666fd2f1a02870fb654ab7e5b9c3446c965f50b6a5",
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


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(hostile_file(5), id="generated"),
        pytest.param([], id="empty"),
        pytest.param([b"{}", b"not json"], id="only-rejected"),
        pytest.param(skewed_lines(40, 8, 3), id="no-rejected"),
    ],
)
def test_json_written_a_journey_at_a_time_is_the_document_byte_for_byte(
    lines: list[bytes],
) -> None:
    report = check_lines(lines, FoldSettings())
    out = io.BytesIO()
    write_report_json(out, report)
    expected = orjson.dumps(report_to_dict(report), option=orjson.OPT_INDENT_2) + b"\n"
    assert out.getvalue() == expected


def test_an_empty_report_is_written_as_its_document() -> None:
    out = io.BytesIO()
    write_report_json(out, CheckReport(as_of=None))
    assert orjson.loads(out.getvalue())["journeys"] == []
    assert (
        out.getvalue()
        == orjson.dumps(report_to_dict(CheckReport(as_of=None)), option=orjson.OPT_INDENT_2) + b"\n"
    )


def _sizes(ledger: Ledger) -> dict[str, int]:
    """How many entries each of the ledger's structures holds."""
    return {
        "seen": len(ledger.seen),
        "own_keys": len(ledger.own_keys),
        "journeys": len(ledger.journeys),
        "events": sum(len(j.events) for j in ledger.journeys.values()),
        "merges": sum(len(m) for m in ledger.merges.values()),
        "index": sum(len(g.index) for g in ledger.identities.values()),
        "members": sum(len(m) for g in ledger.identities.values() for m in g.member_sets.values()),
        "edges": sum(len(e) for r in ledger.reach.values() for e in r.edges.values()),
    }


@pytest.mark.parametrize("seed", [2, 5])
def test_what_the_fold_holds_grows_with_distinct_events_only(seed: int) -> None:
    """Memory grows with the events a check holds, never with lines that repeat them: the
    fold keeps one entry per distinct event (and each event once, in one journey)."""
    events = [decode_event(line) for line in skewed_lines(1_500, 300, seed)]
    ledger = Ledger(FoldSettings())
    ledger.add_all(events)
    once = _sizes(ledger)
    assert once["seen"] == once["own_keys"] == once["events"] == len(events)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    ledger.add_all(shuffled)  # every one a duplicate now
    assert _sizes(ledger) == once
    held = [id(e) for j in ledger.journeys.values() for e in j.events]
    assert len(set(held)) == len(held) == len(events)


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
