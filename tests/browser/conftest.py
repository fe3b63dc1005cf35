"""Browser tests: the web pages in Debian's headless Chromium, driven by Playwright.

The pages are served by `journeys.server.web.add_pages` on an aiohttp application whose `/v1` is the
stand-in in `demo_api` (the demo journeys folded by the pure code, a fixed token and `as_of`).
The server runs in a background thread; the tests use Playwright's sync API. Screenshots go to
`test-artifacts/`.

Chromium is required, never skipped: `apt-get install chromium` (`.ci/run` does it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.browser.demo_api import AS_OF, Demo, ServerThread, load_demo, make_app

_HERE = Path(__file__).resolve().parent
ARTIFACTS = _HERE.parents[1] / "test-artifacts"

CHROMIUM = os.environ.get("JOURNEYS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PAGE_LIMIT = 4
"""The stand-in serves at most this many flags a page, so that paging is exercised."""

BROWSER_NOW = AS_OF + timedelta(hours=2)
"""The browser's clock: relative times ("2 days ago") are stable and screenshots realistic."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/browser with ``browser``."""
    del config
    for item in items:
        if item.path.resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def demo() -> Demo:
    """The demo journeys, folded as `journeys check --demo` folds them."""
    return load_demo()


@pytest.fixture(scope="session")
def server(demo: Demo) -> Iterator[ServerThread]:
    """The pages and the stand-in API on a free local port."""
    with ServerThread(make_app(demo, max_limit=PAGE_LIMIT)) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's package; Playwright's own browsers are not downloaded).

    Module-scoped: Playwright's sync API keeps an event loop current on the main thread while
    it runs, and tests elsewhere call asyncio.run().
    """
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not Path(path).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium "
            "(or set JOURNEYS_TEST_CHROMIUM to a Chromium binary)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are kept."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def new_context(browser: Browser, **options: object) -> BrowserContext:
    """A fresh browser profile (empty session storage) in a British locale and time zone."""
    settings: dict[str, object] = {
        "viewport": {"width": 1440, "height": 900},
        "locale": "en-GB",
        "timezone_id": "Europe/London",
        "device_scale_factor": 1,
    }
    settings.update(options)
    context = browser.new_context(**settings)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    return context


class PageErrors:
    """JavaScript errors and console errors seen by a page (HTTP errors the page handles aside)."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # A 401 or 404 from the API is logged by Chromium; the pages handle those themselves.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.messages.append(f"console: {message.text}")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile for one test."""
    created = new_context(browser)
    yield created
    created.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page whose clock reads `BROWSER_NOW`; the test fails on any script or CSP error."""
    opened = context.new_page()
    opened.clock.set_fixed_time(BROWSER_NOW)
    errors = PageErrors(opened)
    yield opened
    assert errors.messages == []
