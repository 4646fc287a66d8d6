"""Every page at a handheld's (360x640) and a tablet's (768x1024) size, in a real browser
(Chromium, headless; fixtures in tests/browser.py and tests/tour.py): nobody scrolls the page
sideways (a wide table scrolls in its own box or is read row by row), what a finger taps is
at least 44 px high, the menu folds away, and on the scan page the answer to a scan and what
is still to scan are in view right after the scan, without scrolling."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser import SIZES, logged_in, wedge
from tests.databases import Template
from tests.tour import PAGES, Tour, open_page

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass

SMALL = ["handheld", "tablet"]
TOUCH_PX = 44  # the smallest target a finger hits reliably (WCAG 2.5.5, Apple's and Google's guides)


@pytest.fixture
def template(tour_template: Template[Tour]) -> Template[Tour]:
    return tour_template


# What pokes out of the screen: the outermost elements wider than the window that are not
# inside a box that scrolls them itself.
OVERFLOWING = """() => {
  const width = window.innerWidth;
  const scrolls = (e) => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX);
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className &&
      typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
  const out = [];
  const visit = (e) => {
    for (const child of e.children) {
      const box = child.getBoundingClientRect();
      if (box.width && box.right > width + 1) {
        out.push(name(child) + ' "' + (child.innerText || '').trim().slice(0, 20) + '" reaches ' +
                 Math.round(box.right) + ' px');
        continue;
      }
      if (!scrolls(child)) visit(child);
    }
  };
  visit(document.body);
  return {scrollWidth: document.documentElement.scrollWidth, width, out: out.slice(0, 12)};
}"""

# What a finger taps, lower than 44 px: buttons, fields, menus, links that stand alone. A link
# inside running text (a paragraph, a table cell, a list item's sentence) is read, not aimed at.
SMALL_TARGETS = """(least) => {
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.name ? '[name=' +
      e.name + ']' : '') + ' "' + (e.innerText || e.value || '').trim().slice(0, 30) + '"';
  const targets = document.querySelectorAll(
      'button, select, textarea, summary, .button, header.top a, ' +
      'input:not([type=hidden]):not([type=checkbox]):not([type=radio]), ' +
      'input[type=checkbox], input[type=radio]');
  const small = [];
  for (const e of targets) {
    if (!e.checkVisibility()) continue;
    // A box is ticked through its label, which is the target.
    const target = (e.type === 'checkbox' || e.type === 'radio') ? (e.closest('label') || e) : e;
    const height = target.getBoundingClientRect().height;
    if (height < least - 0.5) small.push(name(e) + ' ' + Math.round(height) + ' px');
  }
  return small.slice(0, 12);
}"""


@pytest.mark.parametrize("size", SMALL)
@pytest.mark.parametrize("name", PAGES)
def test_no_page_scrolls_sideways_and_every_target_is_big_enough_for_a_finger(
        browser: Browser, live: str, tour: Tour, name: str, size: str) -> None:
    persona, path = tour.pages()[name]
    page = open_page(browser, live, persona, path, size)
    try:
        found: dict[str, Any] = page.evaluate(OVERFLOWING)
        assert found["scrollWidth"] <= found["width"], (
            f"{name} ({path}) at {size} is {found['scrollWidth']} px wide in a {found['width']} px "
            f"window; too wide: {found['out']}")
        small = page.evaluate(SMALL_TARGETS, TOUCH_PX)
        assert small == [], f"{name} ({path}) at {size}: lower than {TOUCH_PX} px: {small}"
    finally:
        page.context.close()


@pytest.mark.parametrize("size", SMALL)
def test_the_menu_is_folded_until_opened_and_opens_without_script(
        browser: Browser, live: str, tour: Tour, size: str) -> None:
    page = logged_in(browser, live, "staff", "/cases", size=SIZES[size])
    try:
        menu = page.locator("header.top nav")
        toggle = page.locator("header.top summary")
        expect(menu.get_by_role("link", name="Scan")).to_be_hidden()
        toggle.focus()
        page.keyboard.press("Enter")  # by keyboard: a summary is a button
        expect(menu.get_by_role("link", name="Scan")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        menu.get_by_role("link", name="Scan").click()
        page.wait_for_url(re.compile(r"/scan$"))
        expect(page.locator("header.top nav").get_by_role("link", name="Scan")).to_be_hidden()
    finally:
        page.context.close()


def test_the_menu_is_open_on_a_desktop(browser: Browser, live: str, tour: Tour) -> None:
    page = logged_in(browser, live, "staff", "/cases", size=SIZES["desktop"])
    try:
        expect(page.locator("header.top summary")).to_be_hidden()
        expect(page.locator("header.top nav").get_by_role("link", name="Scan")).to_be_visible()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
    finally:
        page.context.close()


def in_view(page: Page, selector: str) -> dict[str, float]:
    return page.evaluate("""(selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        return {top: box.top, bottom: box.bottom, height: window.innerHeight, scrollY: window.scrollY};
    }""", selector)  # type: ignore[no-any-return]


@pytest.mark.parametrize("size", SMALL)
def test_the_answer_and_what_is_left_to_scan_are_in_view_right_after_a_scan(
        browser: Browser, live: str, tour: Tour, size: str) -> None:
    page = logged_in(browser, live, "staff", "/scan", size=SIZES[size], clock=True)
    try:
        expect(page.locator("#code")).to_be_focused()
        wedge(page, tour.fresh_bag)
        expect(page.locator("#checklist li.todo")).not_to_have_count(0)
        for selector in ("#code", "#verdict", "#checklist"):
            box = in_view(page, selector)
            assert 0 <= box["top"] and box["bottom"] <= box["height"], (
                f"{selector} at {size} spans {box['top']:.0f}-{box['bottom']:.0f} px of a "
                f"{box['height']} px window (scrolled {box['scrollY']} px)")
        expect(page.locator("#code")).to_be_focused()  # the next scan goes in at once
    finally:
        page.context.close()


@pytest.mark.parametrize("size", SMALL)
def test_an_identifier_never_breaks_inside_itself(browser: Browser, live: str, tour: Tour,
                                                  size: str) -> None:
    """A COI identifier or serial breaks between codes, never inside one: a check character
    alone on a line reads as a different code."""
    page = logged_in(browser, live, "staff", f"/cases/{tour.coi}", size=SIZES[size])
    try:
        broken = page.evaluate("""() => [...document.querySelectorAll('.coi, .coi-big, .serial')]
            .filter(e => e.getClientRects().length > 1 || e.getBoundingClientRect().height >
                         1.8 * parseFloat(getComputedStyle(e).lineHeight || 20))
            .map(e => e.textContent.trim())""")
        assert broken == [], f"identifiers broken over lines at {size}: {broken}"
    finally:
        page.context.close()


def test_the_favicon_is_an_svg_that_browsers_find_by_link_and_at_favicon_ico(client: Any) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    asked = client.get("/favicon.ico")  # what a browser asks for where no page names an icon
    assert asked.status_code == 301 and asked.headers["Location"].endswith("/static/favicon.svg")
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data(as_text=True).startswith("<svg")
