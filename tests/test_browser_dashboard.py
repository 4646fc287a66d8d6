"""The dashboard in a real browser (Debian's Chromium driven by Playwright, headless): it
refreshes itself without a reload, shows an alarm raised meanwhile and when it was updated,
and when the server cannot be reached it keeps what it showed and says since when.

Served from a live werkzeug server in a thread, on the test's own database (the fixtures of
tests/browser.py): skipped without Chromium and Playwright unless COI_REQUIRE_BROWSER=1 (CI)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from coi.models import coi_of
from coi.services import alarms
from tests.browser import logged_in
from tests.helpers import make_case

try:
    from playwright.sync_api import Browser, Page, Route, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "DASHBOARD_REFRESH_SECONDS": 1}


@pytest.fixture
def coordinator_page(browser: Browser, live: str) -> Iterator[Page]:
    """The coordinator, logged in, on the dashboard, with a marker a reload would wipe."""
    page = logged_in(browser, live, "coordinator", "/dashboard")
    page.evaluate("window.dashboardMarker = 'loaded once'")
    yield page
    page.context.close()


def navigations(page: Page) -> list[str]:
    """The main frame's navigations from now on, as they happen."""
    seen: list[str] = []
    page.on("framenavigated", lambda frame: seen.append(frame.url) if frame == page.main_frame else None)
    return seen


def test_the_dashboard_shows_a_new_alarm_without_reloading(app, session, world, clock,
                                                           coordinator_page):
    page = coordinator_page
    case = make_case(app, session, world, clock)
    session.close()
    critical = page.locator('[data-severity="critical"]')
    # The case enrolled after the page loaded is there by the first refresh already.
    expect(page.locator("#dash-deadlines")).to_contain_text(coi_of(case).display)
    expect(critical).to_have_attribute("data-count", "0")
    expect(page.locator("#dashboard-status")).to_have_text("Updated 03:00:00 CST")
    moved = navigations(page)

    clock.advance(seconds=5)
    alarms.raise_alarm(session=session, now=clock.now(), kind="temperature", code="excursion_single",
                       severity="critical", summary="Shipper at 12.4 °C for 41 min",
                       rule={"rule": "test"}, case_id=case.id)
    session.commit()
    session.close()

    expect(page.locator("#dash-alarm-list")).to_contain_text("Shipper at 12.4 °C for 41 min")
    expect(critical).to_have_attribute("data-count", "1")
    expect(page.locator("#dashboard-status")).to_have_text("Updated 03:00:05 CST")
    assert page.evaluate("window.dashboardMarker") == "loaded once"  # the same page, not a reload
    assert moved == []
    assert page.url.endswith("/dashboard")


def test_a_failed_refresh_keeps_the_content_and_says_since_when(app, session, world, clock,
                                                               coordinator_page):
    page = coordinator_page
    case = make_case(app, session, world, clock)
    alarms.raise_alarm(session=session, now=clock.now(), kind="custody", code="late",
                       severity="major", summary="Pickup not scanned", rule={"rule": "test"},
                       case_id=case.id)
    session.commit()
    session.close()
    expect(page.locator("#dash-alarm-list")).to_contain_text("Pickup not scanned")
    expect(page.locator("#dashboard-status")).to_have_text("Updated 03:00:00 CST")

    def unreachable(route: Route) -> None:
        route.abort("connectionrefused")

    page.route("**/dashboard?part=body", unreachable)
    clock.advance(minutes=2)
    status = page.locator("#dashboard-status")
    expect(status).to_have_text("Not updated since 03:00:00 CST (retrying)")
    expect(status).to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#dash-alarm-list")).to_contain_text("Pickup not scanned")  # kept

    def server_error(route: Route) -> None:
        route.fulfill(status=500, body="<h1>Internal Server Error</h1>", content_type="text/html")

    page.unroute("**/dashboard?part=body")
    with page.expect_response(lambda response: "part=body" in response.url and response.status == 500):
        page.route("**/dashboard?part=body", server_error)  # the next refresh gets an error page
    expect(status).to_have_text("Not updated since 03:00:00 CST (retrying)")
    expect(page.locator("#dash-alarm-list")).to_contain_text("Pickup not scanned")

    page.unroute("**/dashboard?part=body")
    expect(status).to_have_text("Updated 03:02:00 CST")
    expect(status).not_to_have_class(re.compile(r"\bstale\b"))
    assert page.evaluate("window.dashboardMarker") == "loaded once"
