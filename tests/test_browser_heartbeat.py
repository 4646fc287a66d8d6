"""The silent scheduler's banner in a real browser (Chromium, headless; fixtures in
tests/browser.py): a coordinator sees it at the top of the page, whole and readable, on a
handheld, a tablet and a desktop; a courier never sees it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import SIZES, logged_in

try:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import Browser, expect
except ImportError:  # pragma: no cover - the Makefile installs them; the browser fixture skips
    pass


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """A scheduler is expected, and none runs: it never ran."""
    return app_config | {"SCHEDULER_EXPECTED": True}


@pytest.mark.parametrize("size", list(SIZES))
def test_a_coordinator_sees_the_banner_whole_at_the_top_of_the_page(
        browser: Browser, live: str, world: Any, size: str) -> None:
    page = logged_in(browser, live, "coordinator", "/cases", size=SIZES[size])
    try:
        banner = page.get_by_role("alert").filter(has_text="The scheduler has never run.")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Deadlines are not checked and nobody is told of alarms.")
        expect(banner).to_contain_text("Tell your administrator")
        expect(banner).to_contain_text("flask --app wsgi coi scheduler")
        box = banner.bounding_box()
        width, height = SIZES[size]
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"the banner pokes out: {box}"
        assert box["y"] < height / 2, f"the banner is not at the top of the page: {box}"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # Above the page's own heading: read before the page it stands over.
        heading = page.locator("main h1").first.bounding_box()
        assert heading is not None and box["y"] + box["height"] <= heading["y"]
        # Readable: axe-core (from the wheel, as tests/test_accessibility.py runs it) finds
        # nothing serious in it, contrast included.
        violations = Axe().run(page, context=".scheduler-silent").response["violations"]
        assert [v["id"] for v in violations if v["impact"] in ("critical", "serious")] == []
    finally:
        page.context.close()


def test_a_courier_sees_no_banner(browser: Browser, live: str, world: Any) -> None:
    page = logged_in(browser, live, "courier", "/shipments", size=SIZES["handheld"])
    try:
        expect(page.locator("main h1").first).to_be_visible()
        expect(page.locator(".scheduler-silent")).to_have_count(0)
        expect(page.get_by_text("The scheduler has never run.")).to_have_count(0)
    finally:
        page.context.close()
