"""Replay and rebuild on a real broker: the events topic, read back, equals the pure fold.

The demo journeys (plus one journey whose chat carries a card number) go through a real worker
(`InProcessWorker`, clock fixed at NOW) once per module. Then `journeys replay` as of many
moments must equal the pure replay and `journeys check` of the events that had occurred by
then; `journeys rebuild` with a test-only rule must find the flags the live projections
missed and leave the live state alone; the reports must render and never show a card number.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from typer.testing import CliRunner

from journeys.bench.synthetic import demo_documents
from journeys.cli import app
from journeys.cli import replay as replaying
from journeys.cli.check import check_lines
from journeys.forensics.rebuild import rebuild
from journeys.forensics.report import ReportFormat, render
from journeys.forensics.source import ReadStats, read_events
from projections.flags import FlagDraft, Severity
from projections.replay import replay
from projections.settings import FoldSettings, RuleSettings
from projections.view import JourneyView, view_to_dict
from schemas.codec import decode_event
from schemas.events import IDENTIFIER_KINDS, Event
from schemas.outputs import FlagChange, FlagSnapshot
from schemas.redaction import mask_text
from streams.config import KafkaSettings, TopicNames
from streams.stages.journey.segments import journeys_in
from streams.store import keys
from streams.store.state import LocalStore
from tests.integration.ledger_log import (
    InProcessWorker,
    converge,
    create,
    kafka_for_test,
    produce,
    pure_fold,
    read_topic_sync,
    sdk_keyed,
    wait_for,
    write_config,
)

NOW = datetime(2026, 11, 22, tzinfo=UTC)
TICK = timedelta(microseconds=1)
SETTINGS = FoldSettings()
CARD = "4111 1111 1111 1111"
TOKEN = "jl-replay-test-token"

CARD_JOURNEY = [
    {
        "event_id": "card-0001",
        "type": "chat.message",
        "occurred_at": "2026-11-03T10:00:00+00:00",
        "tenant": "acme-motors",
        "source": {"system": "chat-vendor", "channel": "chat"},
        "customer": {"email": "card.holder@example.com", "name": "Card Holder"},
        "payload": {"speaker": "customer", "text": f"please charge my card {CARD} for the service"},
    },
    {
        "event_id": "card-0002",
        "type": "chat.message",
        "occurred_at": "2026-11-03T10:02:00+00:00",
        "tenant": "acme-motors",
        "source": {"system": "chat-vendor", "channel": "chat"},
        "customer": {"email": "card.holder@example.com"},
        "payload": {"speaker": "agent", "text": "never send card numbers in chat; we will call"},
    },
]


@dataclass(frozen=True)
class Ledger:
    """The module's ledger on the broker, as the worker left it."""

    kafka: KafkaSettings
    names: TopicNames
    config: Path
    data_dir: Path
    lines: list[bytes]
    events: list[Event]


def input_lines() -> list[bytes]:
    documents = demo_documents() + CARD_JOURNEY
    return [orjson.dumps(d) for d in documents]


@pytest.fixture(scope="module")
def ledger(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    kafka = kafka_for_test(bootstrap_servers)
    names = create(kafka)
    lines = input_lines()
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(lines)))
    base = tmp_path_factory.mktemp("replay")
    data_dir = base / "worker"
    expected = pure_fold(lines, NOW)
    with InProcessWorker(kafka, data_dir, lambda: NOW):
        state = converge(kafka, lambda: expected, 90)
    assert state == expected
    config = write_config(base / "settings.toml", kafka, data_dir=str(data_dir))
    return Ledger(kafka, names, config, data_dir, lines, [decode_event(line) for line in lines])


def cli(ledger: Ledger, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(ledger.config), *args])


def query_of(event: Event) -> str:
    """An identifier the event carries, as a reviewer would type it."""
    held = event.customer.model_dump(exclude_none=True)
    kind = next(k for k in IDENTIFIER_KINDS if held.get(k))
    return f"{kind}:{held[kind]}"


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A JSON report without what depends on the reading (generation time, copies read)."""
    report = dict(report)
    report.pop("report")
    summary = dict(report["summary"])
    for key in ("events_read", "duplicates", "after_as_of"):
        summary.pop(key)
    report["summary"] = summary
    return report


def check_at(ledger: Ledger, moment: datetime) -> list[JourneyView]:
    lines = [
        line
        for line, event in zip(ledger.lines, ledger.events, strict=True)
        if event.occurred_at <= moment
    ]
    return check_lines(lines, SETTINGS, moment).journeys


def has_card(text: str) -> bool:
    return mask_text(text)[1] or CARD.replace(" ", "") in re.sub(r"[ -]", "", text)


# --- replay as of T equals the pure replay and `journeys check` of the events up to T ---------


@dataclass(frozen=True)
class Cut:
    moment: datetime
    query: str
    why: str


def cuts(ledger: Ledger) -> list[Cut]:
    found: dict[tuple[datetime, str], Cut] = {}

    def add(moment: datetime, event: Event, why: str) -> None:
        if event.occurred_at <= moment:
            found.setdefault((moment, query_of(event)), Cut(moment, query_of(event), why))

    for journey in check_at(ledger, NOW):
        events = journey.events
        first = events[0]
        for moment in (first.occurred_at, events[len(events) // 2].occurred_at, NOW):
            add(moment, first, "journey")
        for flag in journey.flags:
            add(flag.opened_at - TICK, first, "just before a flag opened")
            anchor = journey.events[[e.event_id for e in events].index(flag.event_ids[0])]
            add(flag.opened_at, anchor, "as a flag opened")
            if flag.resolved_at is not None:
                add(flag.resolved_at - TICK, anchor, "just before a flag resolved")
    return sorted(found.values(), key=lambda c: (c.moment, c.query))


def test_replay_as_of_each_cut_equals_the_pure_replay_and_check(ledger: Ledger) -> None:
    final = {f.flag_id: f for v in check_at(ledger, NOW) for f in v.flags}
    assert any(f.resolved_at for f in final.values()), "the demo should resolve some flag"
    before_open = still_open = 0
    for cut in cuts(ledger):
        result = cli(
            ledger, "replay", cut.query, "--as-of", cut.moment.isoformat(), "--format", "json"
        )
        assert result.exit_code == 0, (cut, result.stdout, result.stderr)
        got = orjson.loads(result.stdout)
        pure = replay(ledger.events, cut.query, cut.moment, SETTINGS)
        expected = orjson.loads(render(pure, ReportFormat.JSON, NOW))
        assert comparable(got) == comparable(expected), cut

        # `journeys check --as-of T` of the events that had occurred by T: the same journey.
        views = {v.customer_id: view_to_dict(v) for v in check_at(ledger, cut.moment)}
        checked = views[got["resolution"]["customer_id"]]
        assert [t["event_id"] for t in got["timeline"]] == [
            e["event_id"] for e in checked["events"]
        ]
        assert [
            {k: v for k, v in f.items() if not k.startswith("first_visible")} for f in got["flags"]
        ] == checked["flags"]
        assert got["identifiers"] == checked["identifiers"]
        assert got["names"] == checked["names"]

        shown = {f["flag_id"]: f for f in got["flags"]}
        every_flag_at_cut = {f["flag_id"] for v in views.values() for f in v["flags"]}
        for flag_id, flag in final.items():
            if flag.opened_at > cut.moment:
                # raised after T: absent, from this journey and from every other
                assert flag_id not in shown, (cut, flag.rule)
                assert flag_id not in every_flag_at_cut, (cut, flag.rule)
                before_open += 1
            elif (
                flag.resolved_at is not None and flag.resolved_at > cut.moment and flag_id in shown
            ):
                # resolved after T: still open at T
                assert shown[flag_id]["status"] == "open", (cut, flag.rule)
                assert shown[flag_id]["resolved_at"] is None
                still_open += 1
    assert before_open > 0
    assert still_open > 0


def test_replay_window_tenant_and_stderr_throughput(ledger: Ledger) -> None:
    journey = max(check_at(ledger, NOW), key=lambda v: len(v.events))
    events = journey.events
    start, end = events[1].occurred_at, events[-2].occurred_at
    result = cli(
        ledger,
        "replay",
        query_of(events[0]),
        "--as-of",
        NOW.isoformat(),
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--tenant",
        journey.tenant,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    got = orjson.loads(result.stdout)
    assert [t["event_id"] for t in got["timeline"]] == [
        e.event_id for e in events if start <= e.occurred_at <= end
    ]
    assert len(got["flags"]) == len(journey.flags)
    assert "events/s" in result.stderr

    other = cli(ledger, "replay", query_of(events[0]), "--tenant", "no-such-tenant")
    assert other.exit_code == 2
    assert "error:" in other.stderr
    assert "hint:" in other.stderr


def test_replay_errors_exit_2_with_message_and_hint(ledger: Ledger, tmp_path: Path) -> None:
    bad = cli(ledger, "replay", "shoe-size:42")
    assert bad.exit_code == 2
    assert "unknown kind of identifier" in bad.stderr
    assert "hint: write KIND:VALUE" in bad.stderr

    early = cli(ledger, "replay", query_of(ledger.events[0]), "--as-of", "2020-01-01T00:00:00Z")
    assert early.exit_code == 2
    assert "first appears at" in early.stderr

    window = cli(
        ledger, "replay", query_of(ledger.events[0]), "--as-of", NOW.isoformat(), "--to",
        (NOW + TICK).isoformat(),
    )  # fmt: skip
    assert window.exit_code == 2
    assert "after as_of" in window.stderr

    config = tmp_path / "nowhere.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\ntopic_prefix = "nowhere"\n', encoding="utf-8"
    )
    unreachable = CliRunner().invoke(
        app, ["--config", str(config), "replay", query_of(ledger.events[0])]
    )
    assert unreachable.exit_code == 2
    assert "cannot reach the brokers at 127.0.0.1:1" in unreachable.stderr

    missing = write_config(
        tmp_path / "missing.toml",
        KafkaSettings(bootstrap_servers=ledger.kafka.bootstrap_servers, topic_prefix="t-missing"),
    )
    # Metadata for a missing topic may create it on brokers that auto-create: either way, 2.
    absent = CliRunner().invoke(app, ["--config", str(missing), "replay", "email:a@b.example"])
    assert absent.exit_code == 2
    assert "error:" in absent.stderr


def test_read_events_throughput_is_reported(ledger: Ledger) -> None:
    stats = ReadStats()
    events = asyncio.run(read_events(ledger.kafka, stats=stats))
    assert {e.event_id for e in events} == {e.event_id for e in ledger.events}
    assert stats.events == len(events) >= len(ledger.events)
    assert stats.events_per_second > 0


# --- the live projection through the API -------------------------------------------------------


class ApiThread:
    """A tiny stand-in for the ledger API: GET /v1/journeys/{customer_id} with a Bearer token."""

    def __init__(self, journeys: dict[str, dict[str, Any]]) -> None:
        self.journeys = journeys
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        application = web.Application()
        application.router.add_get("/v1/journeys/{customer_id}", self._journey)
        self._runner = web.AppRunner(application, access_log=None)
        self.url = ""

    async def _journey(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": {"code": "unauthorized"}}, status=401)
        found = self.journeys.get(request.match_info["customer_id"])
        if found is None:
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        return web.json_response(found)

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def __enter__(self) -> ApiThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=15)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        self._loop.close()


@pytest.fixture
def live_views(ledger: Ledger) -> dict[str, dict[str, Any]]:
    return {v.customer_id: view_to_dict(v) for v in check_at(ledger, NOW)}


def test_replay_compares_with_the_live_projection(
    ledger: Ledger, live_views: dict[str, dict[str, Any]]
) -> None:
    journey = next(v for v in live_views.values() if v["flags"] and len(v["events"]) > 2)
    query = f"{journey['identifiers'][0]['kind']}:{journey['identifiers'][0]['value']}"
    args = ["replay", query, "--as-of", NOW.isoformat(), "--format", "json"]

    with ApiThread(live_views) as api:
        same = cli(ledger, *args, "--api", api.url, "--token", TOKEN)
        assert same.exit_code == 0, same.stderr
        assert "no differences" in same.stderr

    changed = dict(journey)
    dropped = journey["events"][-1]["event_id"]
    changed["events"] = journey["events"][:-1]
    flipped = dict(journey["flags"][0])
    flipped["status"] = "resolved" if flipped["status"] == "open" else "open"
    changed["flags"] = [flipped, *journey["flags"][1:]]
    with ApiThread({**live_views, journey["customer_id"]: changed}) as api:
        differs = CliRunner().invoke(
            app,
            ["--config", str(ledger.config), *args],
            env={"JOURNEYS_API": api.url, "JOURNEYS_TOKEN": TOKEN},
        )
        assert differs.exit_code == 0, differs.stderr
        assert f"events only in the replay: {dropped}" in differs.stderr
        assert f"flag {flipped['flag_id']} {flipped['rule']}" in differs.stderr

        refused = cli(ledger, *args, "--api", api.url, "--token", "wrong")
        assert refused.exit_code == 0
        assert "warning:" in refused.stderr
        assert "refused the token" in refused.stderr

    unreachable = cli(ledger, *args, "--api", "http://127.0.0.1:1", "--token", TOKEN)
    assert unreachable.exit_code == 0
    assert "warning:" in unreachable.stderr
    assert orjson.loads(unreachable.stdout)["resolution"]["customer_id"] == journey["customer_id"]

    silent = cli(ledger, *args)
    assert silent.exit_code == 0
    assert "live projection" not in silent.stderr
    assert "warning" not in silent.stderr


# --- reports -------------------------------------------------------------------------------------


def test_reports_render_and_hold_no_card_number(ledger: Ledger, tmp_path: Path) -> None:
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    card_query = "email:card.holder@example.com"
    flagged = max(check_at(ledger, NOW), key=lambda v: len(v.flags))
    outputs: dict[str, str] = {}
    for query in (card_query, query_of(flagged.events[0])):
        for fmt in ("text", "json", "md", "html"):
            path = tmp_path / f"{len(outputs)}.{fmt}"
            result = cli(
                ledger, "replay", query, "--as-of", NOW.isoformat(), "--format", fmt,
                "--output", str(path),
            )  # fmt: skip
            assert result.exit_code == 0, result.stderr
            outputs[str(path)] = path.read_text(encoding="utf-8")
            assert not has_card(result.stdout + result.stderr)
    printed = cli(ledger, "replay", card_query, "--as-of", NOW.isoformat())
    assert printed.exit_code == 0
    assert "Card Holder" in printed.stdout
    assert "1111" in printed.stdout  # the masked number's last four are kept
    for name, text in outputs.items():
        assert not has_card(text), name

    html_path = tmp_path / "flagged.html"
    result = cli(
        ledger, "replay", query_of(flagged.events[0]), "--as-of", NOW.isoformat(),
        "--format", "html", "--output", str(html_path),
    )  # fmt: skip
    assert result.exit_code == 0

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(html_path.as_uri())
            cards = page.locator("#flags article.flag")
            assert cards.count() == len(flagged.flags)
            rules = [r.strip() for r in page.locator("#flags .rule").all_inner_texts()]
            assert sorted(rules) == sorted(f.rule for f in flagged.flags)
            body = page.inner_text("body")
            assert not has_card(body)
            assert errors == []
        finally:
            browser.close()


# --- rebuild ------------------------------------------------------------------------------------


def cancelled_noted(
    events: Sequence[Event], as_of: datetime, rules: RuleSettings
) -> list[FlagDraft]:
    """A test-only rule: every cancelled order is worth a note."""
    del rules
    drafts = []
    for event in events:
        if event.type == "order.cancelled" and event.occurred_at <= as_of:
            draft = FlagDraft(
                "CANCELLED_ORDER_NOTED",
                Severity.LOW,
                event.event_id,
                f"{event.source.system} cancelled an order",
                event.occurred_at,
            )
            draft.involve(event)
            drafts.append(draft)
    return drafts


def store_items(path: Path, partitions: int) -> dict[int, dict[bytes, bytes]]:
    store = LocalStore(path)
    try:
        return {p: dict(store.items(p)) for p in range(partitions)}
    finally:
        store.close()


def journeys_of(items: dict[int, dict[bytes, bytes]]) -> dict[tuple[str, str], list[str]]:
    found = {}
    for entries in items.values():
        for ref, journey in journeys_in(entries).items():
            found[ref] = [e.event_id for e in journey.events]
    return found


def flags_of(items: dict[int, dict[bytes, bytes]]) -> dict[tuple[str, str], str]:
    """Each flag's stored status and content digest, without its count of content updates: that
    count is arrival history (touchpoints reach ingest in any order), which a generation
    folding the log again does not share."""
    found = {}
    for entries in items.values():
        for key, value in entries.items():
            ref = keys.customer_of(keys.Prefix.FLAGS, key)
            if ref is not None:
                customer = ref[1]
                for flag_id, status in orjson.loads(value).items():
                    found[(customer, flag_id)] = re.sub(r"\.\d+$", "", status)
    return found


def topics_now(ledger: Ledger) -> dict[str, list[tuple[int, int, bytes | None]]]:
    names = ledger.names
    return {
        topic: [(r.partition, r.offset, r.value) for r in read_topic_sync(ledger.kafka, topic)]
        for topic in (names.events, names.flags, names.journey_changelog)
    }


def test_rebuild_builds_a_new_generation_and_the_switch_restores_it_without_refolding(
    ledger: Ledger, tmp_path: Path
) -> None:
    partitions = ledger.kafka.partitions
    live_before = store_items(ledger.data_dir / "journeys", partitions)
    topics_before = topics_now(ledger)
    rule = {"CANCELLED_ORDER_NOTED": cancelled_noted}

    result = asyncio.run(
        rebuild(
            ledger.kafka,
            SETTINGS,
            tmp_path / "rebuilt",
            lambda: NOW,
            generation=1,
            extra_rules=rule,
        )
    )

    cancelled = [e for e in ledger.events if e.type == "order.cancelled"]
    assert cancelled
    assert [c.kind for c in result.changes] == ["missed"] * len(cancelled)
    missed = result.of_kind("missed")
    assert {c.rebuilt.rule for c in missed if c.rebuilt} == {"CANCELLED_ORDER_NOTED"}
    assert result.records >= len(ledger.events)

    rebuilt = store_items(tmp_path / "rebuilt" / "journeys.g1", partitions)
    # The stage's own layout and the same journeys, on the same partitions, as the live stage.
    assert journeys_of(rebuilt) == journeys_of(live_before)
    for p in range(partitions):
        kept = (keys.Prefix.JOURNEY.value, keys.Prefix.FORWARD.value)
        live_keys = {k for k in live_before[p] if k.startswith(kept)}
        assert {k for k in rebuilt[p] if k.startswith(kept)} == live_keys
        # the rebuild read the whole log: at least as far as the live worker had got
        assert int(rebuilt[p][keys.OFFSET_KEY]) >= int(live_before[p][keys.OFFSET_KEY])
    new_flags = flags_of(rebuilt)
    old_flags = flags_of(live_before)
    assert {k: v for k, v in new_flags.items() if k in old_flags} == old_flags
    assert len(new_flags) - len(old_flags) == len(cancelled)

    # The live generation's store, state and flag topics are as they were. The events topic may
    # have gained copies of events a merge forwards (the stage re-keys them there): copies of
    # events already in the log, which every generation folds as no-ops.
    assert store_items(ledger.data_dir / "journeys", partitions) == live_before
    after = topics_now(ledger)
    names = ledger.names
    for topic in (names.flags, names.journey_changelog):
        assert after[topic] == topics_before[topic]
    before_events = {v for _, _, v in topics_before[names.events]}
    assert {v for _, _, v in after[names.events]} == before_events

    # The switch: a worker on generation 1 with an empty disk restores, and folds nothing again.
    switched = replace(ledger.kafka, journey_generation=1)
    with InProcessWorker(switched, tmp_path / "switched", lambda: NOW, extra_rules=rule) as w:
        wait_for(
            lambda: len(w.worker.owned("journeys")) == partitions,
            60,
            "the switched worker owning every journey partition",
            0.5,
        )
        time.sleep(2)
        assert w.worker.journeys.stats.restored > 0
        assert w.worker.journeys.stats.records == 0
    served = store_items(tmp_path / "switched" / "journeys.g1", partitions)
    assert journeys_of(served) == journeys_of(rebuilt)
    assert flags_of(served) == new_flags
    # An unchanged flag has the same change ids in both generations: consumers drop repeats.
    # (`updated` records are arrival history: the live stage saw a flag's content before a late
    # event changed it, which a generation folding the log again may never see.)
    old_changes = [FlagChange.from_bytes(v) for _, _, v in topics_before[ledger.names.flags] if v]
    old_ids = {c.change_id for c in old_changes if c.change != "updated"}
    new_topic = read_topic_sync(ledger.kafka, switched.names().flags)
    new_ids = {FlagChange.from_bytes(r.value).change_id for r in new_topic if r.value}
    fresh = [FlagChange.from_bytes(r.value) for r in new_topic if r.value]
    only_new = {
        c.flag.rule if isinstance(c.flag, FlagSnapshot) else None
        for c in fresh
        if c.change_id not in old_ids and c.change != "updated"
    }
    assert only_new == {"CANCELLED_ORDER_NOTED"}
    assert old_ids <= new_ids


def test_rebuild_command(ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replaying, "wall_clock", lambda: NOW)
    same = cli(ledger, "rebuild", "--output", str(tmp_path / "same"), "--generation", "2")
    assert same.exit_code == 0, same.stderr
    assert "no differences with the live flag topic" in same.stdout
    assert "journey_generation = 2" in same.stdout

    asks = sum(1 for v in check_at(ledger, NOW) for f in v.flags if f.rule == "REPEATED_ASK")
    assert asks
    fewer = cli(
        ledger,
        "rebuild",
        "--output",
        str(tmp_path / "fewer"),
        "--generation",
        "3",
        "--rules-disabled",
        "REPEATED_ASK",
    )
    assert fewer.exit_code == 0, fewer.stderr
    assert f"0 flag(s) the live projections missed, {asks} no longer raised" in fewer.stdout

    into_live = cli(ledger, "rebuild", "--output", str(ledger.data_dir))
    assert into_live.exit_code == 2
    assert "data directory" in into_live.stderr
    unknown = cli(ledger, "rebuild", "--output", str(tmp_path / "x"), "--rules-disabled", "NOPE")
    assert unknown.exit_code == 2
    live = cli(ledger, "rebuild", "--output", str(tmp_path / "y"), "--generation", "0")
    assert live.exit_code == 2
