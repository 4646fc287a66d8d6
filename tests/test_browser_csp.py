"""The pages under their Content-Security-Policy and Permissions-Policy in a real browser
(Debian's Chromium driven by Playwright, headless): the scan page (its scripts, a typed code
judged by the server, the camera) and the dashboard (its refresh swaps in fresh HTML) work,
and Chromium reports no violation of either policy and no script error.

Served from a live werkzeug server in a thread, on the test's own database (the fixtures of
tests/browser.py): skipped without Chromium and Playwright unless COI_REQUIRE_BROWSER=1 (CI)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from coi.models import coi_of
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, WAIT
from tests.helpers import PASSWORD, make_case

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass

# Collected from the first script of every document (init scripts run outside the page's
# policy): a violation is reported to the page as this event even when nothing is logged.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`);
});
"""
POLICY_WORDS = re.compile(r"content security policy|permissions.policy|feature policy|refused to",
                          re.IGNORECASE)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "DASHBOARD_REFRESH_SECONDS": 1}


class Watched:
    """A logged-in page whose console messages about policies, and whose script errors and
    policy violations, are kept from before the login page loads."""

    def __init__(self, browser: Browser, live: str, persona: str, **context_options: Any) -> None:
        self.context = browser.new_context(base_url=live, viewport={"width": 1280, "height": 900},
                                           **context_options)
        self.context.set_default_timeout(WAIT)
        self.context.add_init_script(RECORD_VIOLATIONS)
        self.complaints: list[str] = []
        self.page = self.context.new_page()
        self.page.on("console", lambda message: self.complaints.append(f"console: {message.text}")
                     if POLICY_WORDS.search(message.text) else None)
        self.page.on("pageerror", lambda error: self.complaints.append(f"script error: {error}"))
        self.page.goto("/login")
        self.assert_clean()  # the login page too
        self.page.fill("input[name=username]", persona)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(re.compile(r"/$"))

    def open(self, path: str) -> Page:
        self.page.goto(path)
        return self.page

    def assert_clean(self) -> None:
        violations = self.page.evaluate("window.__violations")
        assert self.complaints == [] and violations == [], (self.complaints, violations)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def staff(browser: Browser, live: str) -> Iterator[Watched]:
    watched = Watched(browser, live, "staff")
    yield watched
    watched.close()


def test_the_scan_page_judges_a_code_under_the_policy(app, session, world, clock, staff):
    case = make_case(app, session, world, clock)
    session.close()
    page = staff.open("/scan")
    expect(page.locator("#verdict-title")).to_have_text("Ready: scan the first label of the step.")

    # Filled in at once: the page counts it as typed and asks for it again, then judges it.
    page.fill("#code", coi_of(case).text)
    page.press("#code", "Enter")
    expect(page.locator("#again-box")).to_be_visible()
    page.fill("#again", coi_of(case).text)
    page.press("#again", "Enter")

    expect(page.locator("#case-line")).to_contain_text(coi_of(case).display)
    expect(page.locator("#log li")).to_have_count(1)
    staff.assert_clean()


def test_the_dashboard_refreshes_under_the_policy(app, session, world, clock, staff):
    make_case(app, session, world, clock)
    session.close()
    page = staff.open("/dashboard")

    # A refresh parses the fetched page and swaps its body in: that markup obeys the policy too.
    expect(page.locator("#dashboard-status")).to_have_text(re.compile(r"^Updated "))
    expect(page.locator("#dashboard-body")).to_be_visible()
    staff.assert_clean()


@pytest.fixture
def camera_browser(browser: Browser) -> Iterator[Browser]:
    """A Chromium of its own with a fake camera that needs no one to allow it: the run's shared
    one has no camera at all."""
    launched = browser.browser_type.launch(
        executable_path=str(CHROMIUM), headless=True,
        args=[*CHROMIUM_FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    yield launched
    launched.close()


def test_the_permissions_policy_lets_the_scan_page_use_the_camera(camera_browser, live, world):
    watched = Watched(camera_browser, live, "staff", permissions=["camera"])
    try:
        page = watched.open("/scan")
        page.click("#camera-button")

        expect(page.locator("#camera-button")).to_have_text("Stop the camera")
        expect(page.locator("#camera-box")).to_be_visible()
        # Frames of the fake camera went to the server and came back unread: no label in them.
        expect(page.locator("#camera-status")).to_have_text(re.compile(r"No code read yet"))
        assert page.evaluate("document.featurePolicy.allowsFeature('camera')")
        assert not page.evaluate("document.featurePolicy.allowsFeature('microphone')")
        watched.assert_clean()
    finally:
        watched.close()
