"""Issue 17, items 3 and 5 in a real browser: every step waits for its Record (one label or
two), the page is busy while it records, a double click records once, and a session that
ended while the page was open says why, lets the person log in again in another tab, and then
records the step with the same request (the same idempotency key), once.

Fixtures and helpers as in tests/test_browser_scan.py (tests/browser.py: Chromium, live server)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import WAIT, events, expect_checklist, expect_verdict, focused, logged_in, wedge
from tests.helpers import PASSWORD, Flow

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass

MANUFACTURE = "Manufacture (apheresis to drug product)"
PACK = "Pack fresh shipment (2-8 C)"


@pytest.fixture
def pages(browser: Browser, live: str) -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.context.close()


def scan_page(browser: Browser, live: str, persona: str, opened: list[Page]) -> Page:
    page = logged_in(browser, live, persona, "/scan", clock=True)
    opened.append(page)
    expect(page.locator("#code")).to_be_focused(timeout=WAIT)
    return page


def recording_keys(page: Page) -> list[str]:
    """The idempotency keys of the page's requests to record a step (not partial)."""
    keys: list[str] = []

    def seen(request: Any) -> None:
        if request.url.endswith("/scan/judge") and request.method == "POST":
            body = json.loads(request.post_data or "{}")
            if body.get("partial") is False:
                keys.append(body["idempotency_key"])

    page.on("request", seen)
    return keys


def test_a_two_unit_step_waits_for_record_like_any_other_and_a_double_click_records_once(
        app, session, engine, world, clock, browser, live, pages):
    flow = Flow(app, session, world, clock)
    flow.until("deliver_manufacturing")
    product = flow.register_product()
    case_id = flow.case.id
    session.close()

    page = scan_page(browser, live, "coordinator", pages)
    keys = recording_keys(page)
    wedge(page, flow.bag)
    expect_verdict(page, "ok", f"OK: {flow.bag}", "Still to scan: drug product bag")
    wedge(page, product)
    # Complete: proposed, not recorded (it used to record itself on its last scan).
    expect_verdict(page, "ok", f"OK: {product}", f"press Enter (or Record) to record '{MANUFACTURE}'")
    expect_checklist(page, done=["apheresis bag", "drug product bag"], todo=[])
    expect(page.locator("#sign-button")).to_have_text(f"Record {MANUFACTURE}")
    assert focused(page) == "code"
    before = [e.kind for e in events(engine, case_id)]
    page.locator("#sign-button").dblclick()
    expect_verdict(page, "ok", f"RECORDED: {MANUFACTURE}")
    after = [e.kind for e in events(engine, case_id)]
    assert after[len(before):] == ["transform"], after[len(before):]  # once, not twice
    assert len(keys) == 1


def test_the_record_button_is_busy_while_the_step_is_recorded(
        app, session, engine, world, clock, browser, live, pages):
    flow = Flow(app, session, world, clock)
    flow.until("collect")
    session.close()
    page = scan_page(browser, live, "staff", pages)
    wedge(page, flow.bag)
    expect(page.locator("#sign-button")).to_have_text(f"Record {PACK}")
    # Hold the answer: the button says what is going on and takes no second click.
    held: list[Any] = []
    page.route("**/scan/judge", lambda route: held.append(route))
    page.locator("#sign-button").click()
    expect(page.locator("#sign-button")).to_be_disabled()
    expect(page.locator("#sign-button")).to_have_text("Recording…")
    expect_verdict(page, "busy", "Recording …")
    page.wait_for_timeout(100)
    assert len(held) == 1
    held[0].continue_()
    expect_verdict(page, "ok", f"RECORDED: {PACK}")


def test_a_session_that_ended_on_the_scan_page_says_why_and_the_step_is_recorded_after_login(
        app, session, engine, world, clock, browser, live, pages):
    flow = Flow(app, session, world, clock)
    flow.until("collect")
    case_id = flow.case.id
    session.close()
    page = scan_page(browser, live, "staff", pages)
    keys = recording_keys(page)
    wedge(page, flow.bag)
    expect(page.locator("#sign-button")).to_have_text(f"Record {PACK}")
    clock.advance(minutes=16)
    before = len(events(engine, case_id))
    page.keyboard.press("Enter")  # Enter on the empty field: record
    expect_verdict(page, "bad", "Signed out: nothing was recorded",
                   "You were signed out after 15 minutes without activity.")
    expect(page.locator("#verdict")).not_to_contain_text("Form expired")
    assert len(events(engine, case_id)) == before
    expect_checklist(page, done=["apheresis bag"], todo=[])  # the page keeps its scans

    with page.context.expect_page() as opening:
        page.locator("#login-again").click()
    tab = opening.value
    tab.wait_for_load_state()
    tab.fill("input[name=username]", "staff")
    tab.fill("input[name=password]", PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(re.compile(r"/scan/signed-in$"))
    expect(tab.locator("main")).to_contain_text("go back to the scan page")
    tab.close()

    page.bring_to_front()
    page.locator("#code").focus()
    page.keyboard.press("Enter")
    expect_verdict(page, "ok", f"RECORDED: {PACK}")
    assert [e.kind for e in events(engine, case_id)][before:] == ["step"]
    assert len(keys) == 2 and keys[0] == keys[1]  # the retry is the same request
