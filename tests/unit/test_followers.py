"""Followers skip a bad record (counted, one escaped log line) and are restarted when they die."""

from __future__ import annotations

import asyncio
import logging

import pytest

from schemas.outputs import FlagChange
from streams.directory import Directory
from streams.flag_index import FlagIndex
from streams.kafka.follow import FollowerHealth, Followers, guarded, supervise


def test_a_bad_record_is_skipped_counted_and_logged_once_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    index, directory = FlagIndex(), Directory()
    followers = Followers()
    flags = guarded(
        lambda _k, v: index.apply(FlagChange.from_bytes(v or b"")), followers.add("flags")
    )
    members = guarded(lambda k, v: directory.apply(k or b"", v), followers.add("members"))
    with caplog.at_level(logging.WARNING):
        flags(None, b"\x1b[2J not json")
        members(b"w9", b'{"no": "worker_id"}')
        members(b"w9", b"\x1b]0;owned\x07")
    health = followers.to_dict()
    assert health["flags"]["skipped_records"] == 1
    assert health["members"]["skipped_records"] == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert not any("\x1b" in line or "\x07" in line for line in lines)
    assert len(index) == 0
    assert directory.members == {}


def test_a_follower_that_dies_is_restarted_with_backoff_until_stopped() -> None:
    health = FollowerHealth("flags")
    runs: list[str] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def run() -> None:
            runs.append(health.state)
            if len(runs) <= 2:
                raise RuntimeError("broker said no \x1b[2J")
            stop.set()  # the third run lasts until the worker stops

        await supervise(health, run, stop, first_backoff=0.001, max_backoff=0.002)

    asyncio.run(main())
    assert runs == ["running", "running", "running"]
    assert health.restarts == 2
    assert health.state == "stopped"
    assert health.last_error is not None
    assert "\x1b" not in health.last_error


def test_a_follower_that_ends_on_its_own_is_restarted_too() -> None:
    health = FollowerHealth("members")
    calls = 0

    async def main() -> None:
        stop = asyncio.Event()

        async def run() -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                stop.set()

        await supervise(health, run, stop, first_backoff=0.001)

    asyncio.run(main())
    assert calls == 2
    assert health.restarts == 1
    assert health.last_error == "ended before it was stopped"
