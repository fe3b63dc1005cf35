"""The pure parts of notifying: matching, bodies, e-mail text, signatures, retries, limits."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from types import MappingProxyType

import orjson
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from schemas.outputs import FlagChange
from streams.notify.compose import (
    NO_SITE,
    OffsetTracker,
    RateLimit,
    email_message,
    email_sites,
    email_subject,
    email_text,
    journey_link,
    matches,
    receiver_label,
    retry_delays,
    retry_window_s,
    webhook_body,
    webhook_document,
)
from streams.notify.config import EmailTarget, Filter, RetryPolicy
from streams.notify.delivery import DeliveryLog, Notification
from streams.notify.signing import secret_problem, signed_headers
from tests.factories import flag_change

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def change(kind: str = "opened", **fields: object) -> FlagChange:
    defaults: dict[str, object] = {
        "rule": "DUPLICATE_ORDER",
        "severity": "high",
        "sites": ["leeds"],
        "message": "Two orders for one car",
    }
    defaults.update(fields)
    return flag_change(kind, "acme-motors", "cust-1", "flag-1", **defaults)


# --- matching ---------------------------------------------------------------------------------


def test_a_filter_that_names_nothing_covers_every_tenant_rule_and_site() -> None:
    everything = Filter()
    assert matches(everything, change())
    assert matches(everything, change(sites=[]))
    assert matches(everything, change(rule="ANYTHING", severity="low"))


def test_tenants_rules_and_sites_narrow_what_matches() -> None:
    assert matches(Filter(tenants=frozenset({"acme-motors"})), change())
    assert not matches(Filter(tenants=frozenset({"other"})), change())
    assert matches(Filter(rules=frozenset({"DUPLICATE_ORDER"})), change())
    assert not matches(Filter(rules=frozenset({"DATE_MISMATCH"})), change())
    assert matches(Filter(sites=frozenset({"york", "leeds"})), change(sites=["leeds", "hull"]))
    assert not matches(Filter(sites=frozenset({"york"})), change())
    assert not matches(Filter(sites=frozenset({"york"})), change(sites=[]))


@pytest.mark.parametrize(
    ("minimum", "severity", "notified"),
    [
        ("low", "low", True),
        ("low", "high", True),
        ("medium", "low", False),
        ("medium", "medium", True),
        ("medium", "high", True),
        ("high", "medium", False),
        ("high", "high", True),
    ],
)
def test_min_severity(minimum: str, severity: str, notified: bool) -> None:
    assert matches(Filter(min_severity=minimum), change(severity=severity)) is notified


def test_opened_and_reopened_by_default_and_the_kinds_are_an_option() -> None:
    assert matches(Filter(), change("opened"))
    assert matches(Filter(), change("reopened", status="open"))
    assert not matches(Filter(), change("resolved", status="resolved"))
    assert not matches(Filter(), change("withdrawn"))
    resolved = Filter(changes=frozenset({"resolved"}))
    assert matches(resolved, change("resolved", status="resolved"))
    assert not matches(resolved, change("opened"))


def test_an_updated_flag_is_notified_only_to_a_subscription_that_names_it() -> None:
    updated = change("updated", message="Two orders for one car (held from web-shop)")
    assert not matches(Filter(), updated)
    assert matches(Filter(changes=frozenset({"opened", "updated"})), updated)
    assert webhook_document(updated, None)["type"] == "flag.updated"


def test_a_withdrawn_flag_matches_only_an_unrestricted_filter() -> None:
    withdrawn = frozenset({"withdrawn"})
    assert matches(Filter(changes=withdrawn), change("withdrawn"))
    assert not matches(Filter(changes=withdrawn, rules=frozenset({"X"})), change("withdrawn"))
    assert not matches(Filter(changes=withdrawn, min_severity="high"), change("withdrawn"))


# --- what is sent -----------------------------------------------------------------------------


def test_the_webhook_body_is_the_change_with_its_type_and_journey_link() -> None:
    flag = change()
    body = orjson.loads(webhook_body(flag, "https://ledger.example/"))
    assert body["type"] == "flag.opened"
    assert {k: body[k] for k in ("change_id", "change", "tenant", "customer_id", "flag")} == (
        flag.to_document()
    )
    assert body["journey_url"] == (
        "https://ledger.example/ui/journey?customer_id=cust-1#flag=flag-1"
    )
    assert "journey_url" not in orjson.loads(webhook_body(flag, None))


def test_the_journey_link_escapes_the_customer_id() -> None:
    flag = flag_change("opened", "t", "a b/&c", "f 1")
    assert (
        journey_link("http://x", flag) == "http://x/ui/journey?customer_id=a%20b%2F%26c#flag=f%201"
    )


def target(**recipients: tuple[str, ...]) -> EmailTarget:
    return EmailTarget(
        host="smtp.example",
        sender="ledger@example.com",
        recipients=MappingProxyType({k.replace("_", "*"): v for k, v in recipients.items()}),
    )


def test_each_site_gets_its_own_recipients_and_the_star_ones() -> None:
    mail = target(leeds=("leeds@x",), york=("york@x",), _=("ops@x",))
    assert email_sites(mail, change(sites=["leeds", "hull"])) == {
        "leeds": ("leeds@x", "ops@x"),
        "hull": ("ops@x",),
    }
    assert email_sites(mail, change(sites=[])) == {NO_SITE: ("ops@x",)}
    assert email_sites(target(leeds=("leeds@x",)), change(sites=["york"])) == {}


def test_the_subject_names_severity_rule_and_site_and_control_characters_are_escaped() -> None:
    flag = change(message="line one\n\x1b[2Jforged", rule="DUPLICATE_ORDER")
    assert (
        email_subject(flag, "leeds") == "[HIGH] DUPLICATE_ORDER at leeds: flag opened (acme-motors)"
    )
    hostile = change(rule="R\r\nBcc: all@x")
    assert "\n" not in email_subject(hostile, "leeds")
    text = email_text(flag, "leeds", "https://ledger.example")
    assert "line one\\n\\x1b[2Jforged" in text
    assert "\x1b" not in text
    assert "Journey:   https://ledger.example/ui/journey?customer_id=cust-1#flag=flag-1" in text


def test_the_email_message_has_a_stable_message_id_per_change_and_site() -> None:
    flag = change()
    mail = target(leeds=("a@x", "b@x"))
    message = email_message(mail, flag, "leeds", ("a@x", "b@x"), None)
    again = email_message(mail, flag, "leeds", ("a@x", "b@x"), None)
    parsed = message_from_bytes(message.as_bytes(), policy=default_policy)
    assert parsed["To"] == "a@x, b@x"
    assert parsed["From"] == "ledger@example.com"
    assert parsed["Message-ID"] == again["Message-ID"]
    assert parsed["Message-ID"].endswith("@example.com>")
    assert flag.change_id in parsed["X-Journeys-Change-Id"]


# --- signing ----------------------------------------------------------------------------------


def test_signing_matches_the_specifications_test_vector() -> None:
    headers = signed_headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        b'{"test": 2432232314}',
        datetime.fromtimestamp(1614265330, UTC),
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_a_signed_body_passes_the_librarys_verifier_and_a_changed_one_fails() -> None:
    body = webhook_body(change(message="café ✓"), None)
    headers = signed_headers(SECRET, "chg_1", body, datetime.now(UTC))
    assert Webhook(SECRET).verify(body, headers)["change"] == "opened"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("k" * 40, "must start with whsec_"),
        ("whsec_not base64!!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
    ],
)
def test_malformed_secrets_are_named_without_repeating_them(secret: str, problem: str) -> None:
    said = secret_problem(secret)
    assert said is not None
    assert problem in said
    assert secret not in said
    assert secret_problem(SECRET) is None


# --- retries, rate limits, commits ------------------------------------------------------------


def test_the_backoff_doubles_up_to_its_cap_one_wait_fewer_than_attempts() -> None:
    assert retry_delays(RetryPolicy(attempts=6, first_delay_s=1, max_delay_s=10)) == (
        1,
        2,
        4,
        8,
        10,
    )
    assert retry_delays(RetryPolicy(attempts=1)) == ()
    default = RetryPolicy()
    assert retry_delays(default) == (1, 2, 4, 8)
    assert retry_window_s(default) == 15 + 5 * 10


def test_the_rate_limit_lets_a_burst_through_then_spaces_deliveries() -> None:
    limit = RateLimit(rate_per_s=2, burst=3)
    assert [limit.reserve(100.0) for _ in range(3)] == [0, 0, 0]
    assert limit.reserve(100.0) == pytest.approx(0.5)
    assert limit.reserve(100.0) == pytest.approx(1.0)
    assert limit.reserve(110.0) == 0  # refilled, never past the burst
    assert [limit.reserve(110.0) for _ in range(2)] == [0, 0]
    assert limit.reserve(110.0) == pytest.approx(0.5)


def test_offsets_are_committed_only_up_to_the_oldest_unsettled_change() -> None:
    tracker = OffsetTracker()
    tracker.read(0, 10, 0)
    assert tracker.committable() == {0: 11}
    tracker.read(0, 11, 2)
    tracker.read(0, 12, 1)
    tracker.read(1, 5, 1)
    assert tracker.committable() == {0: 11, 1: 5}
    assert tracker.pending() == 3
    epoch = tracker.epoch(0)
    tracker.settle(0, 12, epoch)
    tracker.settle(0, 11, epoch)
    assert tracker.committable()[0] == 11  # one of offset 11's two is still under way
    tracker.settle(0, 11, epoch)
    assert tracker.committable()[0] == 13


def test_a_partition_given_away_ignores_settlements_from_before() -> None:
    tracker = OffsetTracker()
    tracker.read(0, 7, 1)
    old = tracker.epoch(0)
    tracker.forget({0})
    assert tracker.committable() == {}
    tracker.read(0, 7, 1)
    tracker.settle(0, 7, old)
    assert tracker.committable() == {0: 7}
    tracker.settle(0, 7, tracker.epoch(0))
    assert tracker.committable() == {0: 8}


def test_the_receiver_label_drops_credentials_query_and_fragment() -> None:
    assert receiver_label("https://user:pw@hooks.example:8443/in/x?token=abc#f") == (
        "https://hooks.example:8443/in/x"
    )
    assert receiver_label("http://[::1]:9000/h") == "http://[::1]:9000/h"


# --- the delivery log -------------------------------------------------------------------------


class _Hook:
    kind = "webhook"
    key = "https://h.example/in?token=x"
    label = "https://h.example/in"

    async def send(self, notification: Notification, timeout_s: float) -> None:
        del notification, timeout_s


def test_the_delivery_log_keeps_the_latest_counts_by_kind_and_filters_by_tenant() -> None:
    log = DeliveryLog(size=3)
    receiver = _Hook()
    records = []
    for n, tenant in enumerate(["a", "b", "a", "b"]):
        record = log.start(Notification(f"chg_{n}", tenant, b"{}"), receiver)
        log.attempt(record, 1_000.0 + n)
        records.append(record)
    log.failed(records[1], "HTTP 500", final=False, now=1_010.0)
    log.failed(records[1], "HTTP 500", final=True, now=1_011.0)
    log.succeeded(records[2], 1_012.0)
    assert [e["id"] for e in log.entries(None, 10)] == ["chg_3", "chg_2", "chg_1"]
    assert [e["id"] for e in log.entries(frozenset({"b"}), 10)] == ["chg_3", "chg_1"]
    assert [e["id"] for e in log.entries(None, 1)] == ["chg_3"]
    dead = log.entries(frozenset({"b"}), 10)[1]
    assert dead["status"] == "dead-lettered"
    assert dead["last_error"] == "HTTP 500"
    assert dead["receiver"] == "https://h.example/in"
    assert dead["finished_at"] == "1970-01-01T00:16:51+00:00"
    assert (log.retried["webhook"], log.dead_lettered["webhook"], log.delivered["webhook"]) == (
        1,
        1,
        1,
    )
