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
from sqlalchemy import Engine
from sqlmodel import Session, select
from werkzeug.serving import make_server

from coi.models import CustodyEvent
from tests.helpers import PASSWORD

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - the Makefile installs it
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
WAIT = 10_000  # ms: at most; every answer comes from a local server

# The page tells a scanner from a person by the time between the keys as its own clock sees
# it (performance.now() in scan.js): over 35 ms a character on average, the code counts as
# typed and must be typed again. Keys sent from here arrive as late as this machine is busy,
# so timing them by the wall clock made a scan look typed on a loaded machine. The page's
# clock is therefore Playwright's (installed by `scan_page`), held still while a code is
# keyed in and moved on by exactly the time between two keys: the page sees a scanner's or a
# person's rhythm whatever the load, and the tests judge what the page decided from it (the
# "type it again" box, or a verdict). That can still fail: a page that ignored the rhythm or
# misjudged it (another limit, timing the wrong events) fails them.
SCANNER_MS = 3  # between keys: a keyboard-wedge scanner
TYPING_MS = 120  # between keys: a person typing (the page's limit is 35 ms a character)
JUMP_MS = 60_000  # how far ahead the page's clock stops: later than any moment it can have reached


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


SIZES = {"handheld": (360, 640), "tablet": (768, 1024), "desktop": (1280, 900)}


def logged_in(browser: Browser, live: str, persona: str, then: str, *,
              size: tuple[int, int] = SIZES["desktop"], clock: bool = False) -> Page:
    """A page of a fresh browser context of `size` where `persona` has logged in and landed
    on `then` (close its context when done); with `clock`, on Playwright's clock (`key_in`)."""
    context = browser.new_context(base_url=live, viewport={"width": size[0], "height": size[1]})
    context.set_default_timeout(WAIT)
    if clock:
        context.clock.install()
    page = context.new_page()
    page.goto(f"/login?next={then}")
    page.fill("input[name=username]", persona)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(then) + "$"), wait_until="load")
    return page


# ---------------------------------------------------------------- keying codes in

def key_in(page: Page, text: str, ms_per_key: int) -> None:
    """`text` and Enter into the focused field, the page's clock moving `ms_per_key` from one
    key to the next and standing still otherwise (see SCANNER_MS)."""
    # Stopping the clock at its own `now` could be too late by the time the command arrives
    # (Playwright refuses to go back in time); a minute ahead cannot be, and moving on a
    # minute changes nothing on the scan page.
    page.clock.pause_at((page.evaluate("Date.now()") + JUMP_MS) / 1000)
    try:
        for key in text:
            page.keyboard.type(key)
            page.clock.run_for(ms_per_key)
        page.keyboard.press("Enter")  # the page decides in the Enter key's own handler
    finally:
        page.clock.resume()


def wedge(page: Page, text: str) -> None:
    """A handheld scanner: the code at a scanner's speed and Enter, into the focused field."""
    key_in(page, text, SCANNER_MS)
    if page.locator("#again-box").is_visible():
        pytest.fail(f"the page took the scan of {text} for typing though its keys came "
                    f"{SCANNER_MS} ms apart on its own clock", pytrace=False)


def by_hand(page: Page, text: str) -> None:
    """A person typing the code and Enter."""
    key_in(page, text, TYPING_MS)


# ---------------------------------------------------------------- what the scan page shows

def expect_verdict(page: Page, kind: str, title: str | re.Pattern[str], *lines: str) -> None:
    expect(page.locator("#verdict-title")).to_have_text(title, timeout=WAIT)
    expect(page.locator("#verdict")).to_have_class(re.compile(rf"\b{kind}\b"), timeout=WAIT)
    for line in lines:
        expect(page.locator("#verdict-lines")).to_contain_text(line, timeout=WAIT)


def focused(page: Page) -> str | None:
    """The id of the focused element, read at once (no waiting): the page must have put
    the focus back in the same task that showed the answer."""
    return page.evaluate("document.activeElement && document.activeElement.id")  # type: ignore[no-any-return]


def expect_checklist(page: Page, done: list[str], todo: list[str]) -> None:
    items = page.locator("#checklist li")
    expect(items).to_have_count(len(done) + len(todo), timeout=WAIT)
    expect(page.locator("#checklist li.done")).to_have_text([f"✔ {x}" for x in done], timeout=WAIT)
    expect(page.locator("#checklist li.todo")).to_have_text([f"☐ {x}" for x in todo], timeout=WAIT)


def events(engine: Engine, case_id: int) -> list[CustodyEvent]:
    """The case's ledger as the server committed it (a fresh session: its own connection)."""
    with Session(engine) as db:
        return list(db.exec(select(CustodyEvent).where(CustodyEvent.case_id == case_id)
                            .order_by(CustodyEvent.seq)))  # type: ignore[arg-type]
