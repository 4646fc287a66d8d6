"""Every page checked by axe-core (Deque's accessibility engine, shipped inside the
axe-playwright-python wheel: injected from the package, nothing fetched) in a real browser
(Chromium, headless; fixtures in tests/browser.py and tests/tour.py), at a desktop's and a
handheld's size: no critical or serious violation (a control without a name, text that cannot
be read for its contrast, a scrolling box the keyboard cannot reach, ...). Also: the first thing
the keyboard reaches skips to the content."""

from __future__ import annotations

import pytest

from tests.browser import SIZES, logged_in, wedge
from tests.databases import Template
from tests.tour import ANONYMOUS, PAGES, Tour, open_page

try:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import Browser, expect
except ImportError:  # pragma: no cover - the Makefile installs them; the browser fixture skips
    Axe = None

BLOCKING = {"critical", "serious"}


@pytest.fixture
def template(tour_template: Template[Tour]) -> Template[Tour]:
    return tour_template


@pytest.fixture(scope="module")
def axe() -> Axe:
    if Axe is None:
        pytest.fail("axe-playwright-python is missing (pip install -e '.[test]')", pytrace=False)
    return Axe()


def blocking(results: dict) -> list[str]:
    """One line per critical or serious violation: rule, impact, the first elements."""
    found = []
    for violation in results["violations"]:
        if violation["impact"] in BLOCKING:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:4]]
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} - {targets}")
    return found


@pytest.mark.parametrize("size", ["desktop", "handheld"])
@pytest.mark.parametrize("name", PAGES)
def test_no_page_has_a_critical_or_serious_accessibility_violation(
        browser: Browser, live: str, tour: Tour, axe: Axe, name: str, size: str) -> None:
    persona, path = tour.pages()[name]
    page = open_page(browser, live, persona, path, size)
    try:
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        results = axe.run(page).response
        assert results["testEngine"]["name"] == "axe-core"
        found = blocking(results)
        assert found == [], f"{name} ({path}) at {size}:\n" + "\n".join(found)
        # axe-core came from the wheel: the page asked nothing of anyone but the app.
        assert [url for url in requests if not url.startswith(live)] == []
    finally:
        page.context.close()


@pytest.mark.parametrize("size", ["desktop", "handheld"])
def test_the_scan_page_stays_accessible_after_a_scan(browser: Browser, live: str, tour: Tour,
                                                     axe: Axe, size: str) -> None:
    """The verdict, the checklist and the log that a scan fills in (colours included)."""
    page = logged_in(browser, live, "staff", "/scan", size=SIZES[size], clock=True)
    try:
        wedge(page, tour.fresh_bag)
        expect(page.locator("#checklist li.todo")).not_to_have_count(0)
        found = blocking(axe.run(page).response)
        assert found == [], f"the scan page after a scan at {size}:\n" + "\n".join(found)
    finally:
        page.context.close()


@pytest.mark.parametrize("persona", ["staff", ANONYMOUS])
def test_the_first_tab_offers_to_skip_to_the_content(browser: Browser, live: str, tour: Tour,
                                                     persona: str) -> None:
    # (Not the login and scan pages: their field has the focus from the start, for the
    # person logging in and for the scanner; the skip link is still first in their order.)
    page = open_page(browser, live, persona, "/cases" if persona else "/verify", "handheld")
    try:
        first = page.evaluate("""() => document.querySelector('a[href], button, ' +
            'input:not([type=hidden]), select, textarea, summary, [tabindex]').textContent""")
        assert first == "Skip to content"
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        page.keyboard.press("Enter")
        expect(page.locator("main#content")).to_be_focused()
    finally:
        page.context.close()
