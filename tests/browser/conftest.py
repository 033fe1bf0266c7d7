"""Browser fixtures: Debian's chromium, driven by playwright (never playwright's own browser build).

`./dev test` installs chromium when it is missing (scripts/browser.sh). Without it, these tests
skip when pytest runs by hand and fail under `./dev test` and CI, like the other services.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import service_missing

CHROMIUM = os.environ.get("TRACKER_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 720}
# A desktop Chrome's user agent. Headless Chromium says "HeadlessChrome", which crawler lists
# rightly name: the server's bot filter would not count these visits.
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")
#: Screenshots and other files to look at after a run (ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        service_missing("Chromium", FileNotFoundError(CHROMIUM))
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests need it

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


class ConsoleLog:
    """Everything a page printed to its console, and every uncaught error it raised."""

    def __init__(self, page):
        self.messages: list[tuple[str, str]] = []
        self.errors: list[str] = []
        page.on("console", lambda message: self.messages.append((message.type, message.text)))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def problems(self) -> list[str]:
        """Uncaught errors, console errors and console warnings."""
        return self.errors + [f"{kind}: {text}" for kind, text in self.messages if kind in ("error", "warning")]


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=VIEWPORT, user_agent=USER_AGENT)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    page.console_log = ConsoleLog(page)
    return page


def wait_for(page, predicate, timeout_s: float = 20, message: str = "condition"):
    """Poll `predicate` while letting the page run (route handlers are served while we wait)."""
    for _ in range(int(timeout_s * 20)):
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
