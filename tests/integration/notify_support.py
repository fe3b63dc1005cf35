"""Test support for notifications: a webhook receiver that verifies signatures, an SMTP server,
and a notifier run in the test's event loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from journeys.devbroker import find_free_port
from streams.config import KafkaSettings
from streams.notify.config import NotifySettings
from streams.notify.delivery import DeliveryLog
from streams.notify.notifier import Notifier

SECRET = "whsec_" + base64.b64encode(b"notification-test-key-0123456789").decode()


@dataclass
class Received:
    """One request a receiver got."""

    webhook_id: str
    body: bytes
    verified: bool
    status: int


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 in a thread; `answer(n)` gives the status of the nth request
    (0-based), and `delay_s` holds each answer back (to make the notifier time out)."""

    answer: Callable[[int], int] = lambda _n: 200
    delay_s: float = 0.0
    secret: str = SECRET
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/in"

    def delivered(self) -> list[Received]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except Exception:
                    verified = False
                with receiver._lock:
                    status = receiver.answer(len(receiver.requests))
                    receiver.requests.append(
                        Received(headers.get("webhook-id", ""), body, verified, status)
                    )
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with contextlib.suppress(OSError):  # the notifier may have given up
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextlib.contextmanager
def receivers(*made: WebhookReceiver) -> Iterator[tuple[WebhookReceiver, ...]]:
    """Start the receivers; stop them at the end."""
    for receiver in made:
        receiver.start()
    try:
        yield made
    finally:
        for receiver in made:
            receiver.stop()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        del server, session
        message = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; yields its port and what it received."""
    mailbox = _Mailbox()
    port = find_free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def running(
    kafka: KafkaSettings, settings: NotifySettings, *, group_id: str | None = None
) -> AsyncIterator[tuple[Notifier, DeliveryLog]]:
    """A notifier running in this event loop until the block ends."""
    log = DeliveryLog(settings.log_size)
    notifier = Notifier(kafka, settings, log, group_id=group_id)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        yield notifier, log
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll until `check` holds, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f}s")
