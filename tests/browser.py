"""Browser tests' fixtures (a pytest plugin, loaded by conftest.py): Debian's Chromium driven
by Playwright, headless, and the app served from a live werkzeug server in a thread, on the
test's own database.

Needs /usr/bin/chromium and Playwright (the Makefile installs both; no browser is ever
downloaded): the tests that use them skip without them, unless COI_REQUIRE_BROWSER=1 (CI),
where their absence fails the run."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.helpers import PASSWORD

try:
    from playwright.sync_api import Browser, Page, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - the Makefile installs it
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
WAIT = 10_000  # ms: at most; every answer comes from a local server


def unavailable(why: str) -> None:
    message = f"browser tests need {why} (the Makefile installs it; no browser is downloaded)"
    if os.environ.get("COI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"COI_REQUIRE_BROWSER=1 and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Chromium for the run; every test opens contexts of its own (cookies, storage)."""
    if sync_playwright is None:
        unavailable("Playwright for Python (pip install playwright)")
    if not CHROMIUM.is_file():
        unavailable(f"Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                  args=CHROMIUM_FLAGS)
        except PlaywrightError as error:
            unavailable(f"a Chromium that starts ({error.message.splitlines()[0]})")
        yield launched
        launched.close()


@pytest.fixture
def served(app: Flask) -> Any:
    """The WSGI application the live server serves: the app, unless a module puts something
    in front of it."""
    return app


@pytest.fixture
def live(served: Any) -> Iterator[str]:
    """The served app on a free port of 127.0.0.1, from a daemon thread."""
    server = make_server("127.0.0.1", 0, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def logged_in(browser: Browser, live: str, persona: str, then: str) -> Page:
    """A page of a fresh browser context where `persona` has logged in and landed on `then`
    (close its context when done)."""
    context = browser.new_context(base_url=live, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    page.goto(f"/login?next={then}")
    page.fill("input[name=username]", persona)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(then) + "$"), wait_until="load")
    return page
