"""`journeys journey` and `journeys flags` against the stand-in API (tests/browser/demo_api.py).

The stand-in answers the `/v1` contract from the demo journeys folded by the pure code; it runs
on a free local port in a background thread. The commands run in-process through CliRunner.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from journeys.cli import app
from journeys.sdk.client import ApiClient, ApiError, api_base, view_from_dict
from journeys.settings import API_ENV, TOKEN_ENV, load_settings
from projections.view import view_to_dict
from schemas.errors import JourneyLedgerError, UnknownIdentifierError
from tests.browser.demo_api import TOKEN, Demo, ServerThread, load_demo, make_app

PAGE_LIMIT = 4
"""The stand-in serves at most this many flags a page, so that `--all` has pages to follow."""


@pytest.fixture(scope="module")
def demo() -> Demo:
    return load_demo()


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[ServerThread]:
    with ServerThread(make_app(demo, max_limit=PAGE_LIMIT)) as running:
        yield running


def invoke(server: ServerThread | None, *args: str, token: str = TOKEN) -> Result:
    """Run the CLI with JOURNEYS_API / JOURNEYS_TOKEN pointing at the stand-in."""
    env = {API_ENV: server.url if server else "", TOKEN_ENV: token}
    return CliRunner().invoke(app, list(args), env=env)


def as_json(server: ServerThread, *args: str) -> Any:
    result = invoke(server, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def customer_holding(demo: Demo, kind: str, value: str) -> str:
    found = demo.find(kind, value)
    assert found is not None
    return found.customer_id


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- journey -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "kind", "value"),
    [
        ("phone:+44 7700 900123", "phone", "+447700900123"),
        ("phone:07700 900123", "phone", "+447700900123"),
        ("plate:LM19 XKD", "plate", "LM19XKD"),
        ("plate:lm19xkd", "plate", "LM19XKD"),
    ],
)
def test_journey_by_identifier_is_the_apis_json(
    server: ServerThread, demo: Demo, identifier: str, kind: str, value: str
) -> None:
    expected = demo.journey_dict(customer_holding(demo, kind, value))
    assert as_json(server, "journey", identifier) == expected


def test_journey_by_customer_id_is_the_apis_json(server: ServerThread, demo: Demo) -> None:
    for customer_id in demo.views:
        assert as_json(server, "journey", customer_id) == demo.journey_dict(customer_id)


def test_identifier_goes_as_its_kind_and_customer_id_in_the_path(
    server: ServerThread, demo: Demo
) -> None:
    customer_id = next(iter(demo.views))
    before = len(server.seen)
    invoke(server, "journey", "order_id:NW-100482", "--format", "json")
    invoke(server, "journey", customer_id, "--format", "json")
    by_order, by_id = server.seen[before:]
    assert (by_order.path, by_order.query) == ("/v1/journeys", "order_id=NW-100482")
    assert (by_id.path, by_id.query) == (f"/v1/journeys/{customer_id}", "")
    assert by_id.authorization == f"Bearer {TOKEN}"


def test_journey_text_shows_identifiers_timeline_and_flags(server: ServerThread) -> None:
    result = invoke(server, "journey", "phone:+44 7700 900123")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Priya Shah" in out
    assert "+447700900123" in out
    assert "sms-gateway" in out
    assert "acm-0006" in out
    assert "DATE_MISMATCH" in out
    assert "sms-gateway told the customer" in " ".join(out.split())


def test_unknown_identifier_exits_1_and_says_it_may_be_another_tenants(
    server: ServerThread,
) -> None:
    for identifier in ("plate:ZZ99ZZZ", "cus_0123456789abcdef"):
        result = invoke(server, "journey", identifier)
        assert result.exit_code == 1, result.output
        assert f"no journey found for {identifier}" in result.output
        assert "another tenant" in result.output or "does not cover" in result.output


def test_malformed_identifier_is_a_usage_error_before_any_request(server: ServerThread) -> None:
    before = len(server.seen)
    for identifier in ("colour:red", "name:Priya Shah", "AB12CDE", "cus_nothex"):
        result = invoke(server, "journey", identifier)
        assert result.exit_code == 2, (identifier, result.output)
        assert "error:" in result.output
    assert len(server.seen) == before


def test_wrong_token_exits_2_with_the_hint(server: ServerThread) -> None:
    for args in (("journey", "plate:LM19XKD"), ("flags",)):
        result = invoke(server, *args, token="not-the-token")
        assert result.exit_code == 2, result.output
        assert "401" in result.output
        assert "check JOURNEYS_TOKEN / --token" in result.output


def test_token_option_wins_over_the_environment(server: ServerThread, demo: Demo) -> None:
    customer_id = next(iter(demo.views))
    result = invoke(
        server, "journey", customer_id, "--token", TOKEN, "--format", "json", token="wrong"
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == demo.journey_dict(customer_id)


def test_connection_refused_exits_2_with_the_hint() -> None:
    port = closed_port()
    for args in (("journey", "plate:LM19XKD"), ("flags", "--all")):
        result = invoke(None, *args, "--api", f"http://127.0.0.1:{port}")
        assert result.exit_code == 2, result.output
        assert "connection refused" in result.output
        assert "is `journeys up` running? check JOURNEYS_API / --api" in result.output


def test_missing_api_or_token_exits_2_naming_the_variable(server: ServerThread) -> None:
    result = invoke(None, "journey", "plate:LM19XKD")
    assert result.exit_code == 2
    assert "JOURNEYS_API" in result.output
    result = invoke(server, "flags", token="")
    assert result.exit_code == 2
    assert "JOURNEYS_TOKEN" in result.output


# --- flags -------------------------------------------------------------------------------------


def test_flags_first_page_is_the_apis_json(server: ServerThread, demo: Demo) -> None:
    page = as_json(server, "flags")
    assert page["flags"] == demo.flags()[:PAGE_LIMIT]
    assert page["next_cursor"] == str(PAGE_LIMIT)


def test_flags_all_follows_every_page(server: ServerThread, demo: Demo) -> None:
    assert len(demo.flags()) > 2 * PAGE_LIMIT
    page = as_json(server, "flags", "--all", "--limit", "3")
    assert page == {"flags": demo.flags(), "next_cursor": None}


def test_flags_cursor_starts_at_that_page(server: ServerThread, demo: Demo) -> None:
    page = as_json(server, "flags", "--limit", "2", "--cursor", "2")
    assert page["flags"] == demo.flags()[2:4]


@pytest.mark.parametrize(
    ("args", "keep"),
    [
        (("--status", "open"), lambda f: f["status"] == "open"),
        (("--status", "resolved"), lambda f: f["status"] == "resolved"),
        (("--tenant", "northwind"), lambda f: f["tenant"] == "northwind"),
        (("--rule", "DATE_MISMATCH"), lambda f: f["rule"] == "DATE_MISMATCH"),
        (("--site", "leeds"), lambda f: "leeds" in f["sites"]),
        (
            ("--since", "2026-11-04T00:00:00Z", "--until", "2026-11-05T00:00:00Z"),
            lambda f: "2026-11-04" <= f["opened_at"] < "2026-11-05",
        ),
        (
            ("--tenant", "acme-motors", "--status", "open", "--site", "leeds"),
            lambda f: (
                f["tenant"] == "acme-motors" and f["status"] == "open" and "leeds" in f["sites"]
            ),
        ),
    ],
)
def test_flags_filters(server: ServerThread, demo: Demo, args: tuple[str, ...], keep: Any) -> None:
    expected = [f for f in demo.flags() if keep(f)]
    assert expected, "the demo should have flags for every filter tested"
    page = as_json(server, "flags", *args, "--all")
    assert page["flags"] == expected


def test_flags_text_shows_severity_status_message_and_customer(
    server: ServerThread, demo: Demo
) -> None:
    result = invoke(server, "flags", "--all", "--tenant", "acme-motors")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    acme = [f for f in demo.flags() if f["tenant"] == "acme-motors"]
    for flag in acme:
        assert flag["rule"] in out
        assert flag["customer_id"] in out
        assert " ".join(flag["message"].split()) in out
    assert "HIGH" in out
    assert "[resolved]" in out
    assert f"{len(acme)} flags" in out


def test_flags_text_says_when_more_pages_remain(server: ServerThread) -> None:
    result = invoke(server, "flags", "--limit", "2")
    assert result.exit_code == 0
    assert "--cursor 2" in result.stdout


def test_flags_rejects_bad_options_without_a_request(server: ServerThread) -> None:
    before = len(server.seen)
    for args in (("--status", "closed"), ("--since", "yesterday"), ("--limit", "0")):
        result = invoke(server, "flags", *args)
        assert result.exit_code == 2, (args, result.output)
    assert len(server.seen) == before


def test_no_matching_flags_is_not_an_error(server: ServerThread) -> None:
    result = invoke(server, "flags", "--tenant", "nobody")
    assert result.exit_code == 0
    assert "no flags match" in result.stdout


# --- the client and settings directly ----------------------------------------------------------


def test_client_raises_api_errors_from_the_hierarchy(server: ServerThread) -> None:
    with ApiClient(server.url, "wrong") as client, pytest.raises(ApiError) as refused:
        client.flags()
    assert refused.value.status == 401
    assert refused.value.code == "unauthorized"
    assert isinstance(refused.value, JourneyLedgerError)
    with ApiClient(server.url, TOKEN) as client:
        with pytest.raises(ApiError) as missing:
            client.journey("email:nobody@example.com")
        assert missing.value.status == 404
        with pytest.raises(UnknownIdentifierError):
            client.journey("shoe_size:9")
    with ApiClient(f"127.0.0.1:{closed_port()}", TOKEN) as client, pytest.raises(ApiError) as down:
        client.journey("plate:LM19XKD")
    assert down.value.status is None
    assert "journeys up" in str(down.value)


def test_client_iterates_every_flag(server: ServerThread, demo: Demo) -> None:
    with ApiClient(server.url + "/v1/", TOKEN) as client:
        assert list(client.iter_flags(status="open", limit=2)) == demo.open_flags()


def test_api_base_is_forgiving() -> None:
    assert api_base("localhost:8080") == "http://localhost:8080"
    assert api_base("http://localhost:8080/") == "http://localhost:8080"
    assert api_base("https://ledger.example.com/v1") == "https://ledger.example.com"


def test_settings_read_api_and_token_from_environment_and_file(tmp_path: Any) -> None:
    assert load_settings(None, {}).client.api is None
    settings = load_settings(None, {API_ENV: "http://api:8080", TOKEN_ENV: "t0k"})
    assert (settings.client.api, settings.client.token) == ("http://api:8080", "t0k")
    assert "t0k" not in repr(settings)
    config = tmp_path / "settings.toml"
    config.write_text('[client]\napi = "http://file:8080"\ntoken = "from-file"\n')
    from_file = load_settings(config, {})
    assert (from_file.client.api, from_file.client.token) == ("http://file:8080", "from-file")
    both = load_settings(config, {TOKEN_ENV: "from-env"})
    assert (both.client.api, both.client.token) == ("http://file:8080", "from-env")


# --- identity show -----------------------------------------------------------------------------


def test_identity_show_is_the_journeys_identifiers_as_json(
    server: ServerThread, demo: Demo
) -> None:
    customer_id = customer_holding(demo, "phone", "+447700900123")
    expected = demo.journey_dict(customer_id)
    shown = as_json(server, "identity", "show", "phone:07700 900123")
    assert shown["customer_id"] == customer_id
    assert shown["identifiers"] == expected["identifiers"]
    assert "events" not in shown


def test_identity_show_text_says_how_each_identifier_matches(server: ServerThread) -> None:
    result = invoke(server, "identity", "show", "phone:+44 7700 900123")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert lines
    assert all(line.endswith("used for matching") for line in lines)
    assert any("+447700900123" in line for line in lines)


def test_identity_show_of_an_unknown_value_exits_1(server: ServerThread) -> None:
    result = invoke(server, "identity", "show", "plate:ZZ99ZZZ")
    assert result.exit_code == 1, result.output


def test_the_client_keeps_why_an_identifier_is_not_used_for_matching(demo: Demo) -> None:
    document = demo.journey_dict(next(iter(demo.views)))
    document["identifiers"][0]["not_used_for_matching"] = "placeholder number (a run of one digit)"
    seen = view_from_dict(document).identifiers[0]
    assert seen.not_matched == "placeholder number (a run of one digit)"


def test_journey_text_says_which_identifier_linked_each_event(
    server: ServerThread, demo: Demo
) -> None:
    customer = customer_holding(demo, "phone", "+44 7700 900123")
    links = demo.journey_dict(customer)["linked_by"]
    assert links
    env = {API_ENV: server.url, TOKEN_ENV: TOKEN, "COLUMNS": "300"}  # no cell cut short
    result = CliRunner().invoke(app, ["journey", "phone:+44 7700 900123"], env=env)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    for by in set(links.values()):
        assert f"via {by}" in out


def test_a_journey_s_links_and_merges_read_back_from_the_api_s_json(demo: Demo) -> None:
    customer = customer_holding(demo, "phone", "+44 7700 900123")
    document = demo.journey_dict(customer)
    merge = {
        "at": "2026-11-05T17:00:00+00:00",
        "event_id": "why-1",
        "identifier": "phone 01134960000",
        "from_customer": "cus_other",
        "into": customer,
        "decision": "merge confirmed by r.khan on 2026-11-05: same person",
    }
    view = view_from_dict({**document, "merges": [merge]})
    assert view.linked_by == document["linked_by"]
    assert view_to_dict(view)["merges"] == [merge]
    assert view_from_dict({k: v for k, v in document.items() if k != "linked_by"}).linked_by is None


# --- identity stats from the running stack ------------------------------------------------------


def test_identity_stats_without_a_file_asks_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    import httpx

    from journeys.cli.query import identity_stats_command

    figures = {
        "tenant": "acme",
        "worker_id": "w1",
        "held_here": True,
        "customers": 7,
        "largest_customer_identifiers": 3,
        "largest_customers": [{"identifiers": 3}],
        "suspected_shared_identifiers": 1,
        "suspected_shared": [{"kind": "phone", "strong_identifiers": 2}],
        "truncated": False,
        "refused_links_this_worker": {"junk": 2, "blocked": 1, "limit": 0},
    }
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json=figures)

    def client() -> ApiClient:
        return ApiClient("http://api", "viewer", transport=httpx.MockTransport(answer))

    assert identity_stats_command(client(), "acme", as_json=True) == 0
    assert orjson.loads(capsys.readouterr().out) == figures
    assert asked[0].url.path == "/v1/identity/stats"
    assert asked[0].url.params["tenant"] == "acme"
    assert identity_stats_command(client(), "acme", as_json=False) == 0
    text = capsys.readouterr().out
    assert "acme: 7 customers" in text
    assert "2 junk, 1 blocked, 0" in text
    assert "phone  2" in text


def test_identity_stats_with_a_file_and_an_api_is_refused(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"")
    for option in ("--api", "--token"):
        result = invoke(None, "identity", "stats", str(events), "--tenant", "acme", option, "x")
        assert result.exit_code == 2, result.output
        assert "not both" in result.output
    alone = invoke(None, "identity", "stats", str(events), "--tenant", "acme")
    assert alone.exit_code == 0, alone.output
    assert "acme: 0 customers" in alone.output


def test_identity_stats_without_a_file_or_an_api_says_how_to_give_one() -> None:
    result = invoke(None, "identity", "stats", "--tenant", "acme")
    assert result.exit_code == 2, result.output
    assert "--api" in result.output
