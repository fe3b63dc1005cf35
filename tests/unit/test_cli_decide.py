"""`journeys identity merge CUS CUS` / `split CUS` against the stand-in API (tests/browser/
demo_api.py): the customers' journeys are read, the decision resolved to an identifier, and
each refusal says what to do next. Sending the resolved event is tested on a real broker
(tests/integration/test_identity_decisions.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from journeys.cli import app
from journeys.settings import API_ENV, BOOTSTRAP_ENV, TOKEN_ENV, Settings
from tests.browser.demo_api import (
    AS_OF,
    TOKEN,
    VIEWER_TOKEN,
    Demo,
    ServerThread,
    load_demo,
    make_app,
)
from tests.unit.test_client import closed_port

TENANT = "acme-motors"


def _form(number: int, email: str, name: str, phone: str = "+447700900999") -> dict[str, Any]:
    return {
        "event_id": f"idc-{number}",
        "type": "form.submitted",
        "occurred_at": (AS_OF - timedelta(hours=10 - number)).isoformat(),
        "tenant": TENANT,
        "source": {"system": "web-forms", "channel": "web", "site": "leeds"},
        "customer": {"email": email, "phone": phone, "name": name},
        "payload": {"form": "contact"},
    }


@pytest.fixture(scope="module")
def demo() -> Demo:
    """Pat and Lee share a phone; a limit of one e-mail a customer holds the merge back."""
    limited = Settings.model_validate(
        {"tenants": {TENANT: {"identity": {"limits": {"email": 1}}}}}
    ).fold_settings()
    found = load_demo(limited)
    found.add_event(_form(1, "pat@example.com", "Pat"))
    found.add_event(_form(2, "lee@example.com", "Lee"))
    return found


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[ServerThread]:
    with ServerThread(make_app(demo)) as running:
        yield running


def _customer(demo: Demo, email: str) -> str:
    found = demo.find("email", email)
    assert found is not None
    return found.customer_id


def invoke(server: ServerThread, *args: str, token: str = TOKEN) -> Result:
    env = {API_ENV: server.url, TOKEN_ENV: token, BOOTSTRAP_ENV: f"127.0.0.1:{closed_port()}"}
    decision = ["--tenant", TENANT, "--reason", "one person", "--by", "r.khan"]
    return CliRunner().invoke(app, ["identity", *args, *decision], env=env)


def test_merge_of_two_customers_resolves_to_the_phone_held_between_them(
    server: ServerThread, demo: Demo
) -> None:
    pat, lee = _customer(demo, "pat@example.com"), _customer(demo, "lee@example.com")
    assert pat != lee
    result = invoke(server, "merge", pat, lee)
    # resolved through the API, then sent: the broker here is a closed port (status 2)
    assert f"{pat} and {lee}: phone:+447700900999" in result.stdout, result.output
    assert result.exit_code == 2, result.output


def test_customers_with_nothing_held_between_them_are_refused_saying_what_to_do(
    server: ServerThread, demo: Demo
) -> None:
    pat, lee = _customer(demo, "pat@example.com"), _customer(demo, "lee@example.com")
    other = next(c for c, v in demo.views.items() if c not in (pat, lee) and v.tenant == TENANT)
    result = invoke(server, "merge", pat, other)
    assert result.exit_code == 1, result.output
    assert "no identifier is held between" in result.output
    assert "KIND:VALUE" in result.output


def test_an_unknown_customer_is_not_found_and_bad_arguments_are_usage(
    server: ServerThread, demo: Demo
) -> None:
    pat = _customer(demo, "pat@example.com")
    missing = invoke(server, "merge", pat, "cus_00000000000000ff")
    assert missing.exit_code == 1, missing.output
    assert "cus_00000000000000ff" in missing.output
    for args in (
        ["merge", pat],  # one customer id
        ["merge", pat, "phone:+447700900999"],  # a mix
        ["merge", "phone:+447700900999", "--via", "phone:+447700900999"],
        ["split", pat, "--via", "colour:red"],
    ):
        result = invoke(server, *args)
        assert result.exit_code == 2, (args, result.output)


def test_split_of_a_customer_without_listed_merges_asks_for_the_identifier(
    server: ServerThread, demo: Demo
) -> None:
    pat = _customer(demo, "pat@example.com")
    result = invoke(server, "split", pat)
    assert result.exit_code == 1, result.output
    assert "lists no merge" in result.output
    named = invoke(server, "split", pat, "--via", "email:PAT@example.com")
    assert f"{pat}: email:pat@example.com" in named.stdout, named.output


@pytest.mark.parametrize("token", [TOKEN, VIEWER_TOKEN])
def test_another_tenants_customer_is_as_missing(
    server: ServerThread, demo: Demo, token: str
) -> None:
    northwind = next(c for c, v in demo.views.items() if v.tenant != TENANT)
    result = invoke(server, "split", northwind, token=token)
    assert result.exit_code == 1, result.output
    assert f"no journey found for {northwind}" in result.output
