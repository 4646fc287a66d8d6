"""The scan page's own words in a real browser (Chromium, headless; fixtures in
tests/browser.py): how long until a deadline, said in days and hours, the site by its name,
and camera refusals in plain words instead of the browser's message."""

from __future__ import annotations

from typing import Any

from coi.models import coi_of, serial_of
from coi.services import enrolment
from tests.browser import WAIT, logged_in, wedge
from tests.helpers import make_case

try:
    from playwright.sync_api import Browser, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass

# What Chromium says when there is no camera, and when the camera is refused.
NO_CAMERA = "DOMException('Requested device not found', 'NotFoundError')"
REFUSED = "DOMException('Permission denied', 'NotAllowedError')"


def camera_failing_with(error: str) -> str:
    return ("Object.defineProperty(navigator, 'mediaDevices', {value: {getUserMedia: "
            f"() => Promise.reject(new {error})}}}});")


def test_the_clock_says_how_long_is_left_in_days(browser: Browser, live: str, app: Any,
                                                  session: Any, world: Any, clock: Any) -> None:
    case = make_case(app, session, world, clock)  # collection due 30 days after enrolment
    page = logged_in(browser, live, "staff", f"/scan?case={coi_of(case).text}")
    try:
        page.clock.set_fixed_time(clock.now())
        page.reload(wait_until="load")
        expect(page.locator("#clock-line")).to_contain_text("(30 days left)", timeout=WAIT)
        expect(page.locator("#clock-line")).not_to_contain_text("min left")
    finally:
        page.context.close()


def test_the_scan_names_the_site_not_its_code(browser: Browser, live: str, app: Any,
                                              session: Any, world: Any, clock: Any) -> None:
    case = make_case(app, session, world, clock)
    bag = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                  coi_text=coi_of(case).text, kind="apheresis_bag")
    session.commit()
    page = logged_in(browser, live, "staff", "/scan", clock=True)
    try:
        wedge(page, serial_of(bag).text)
        expect(page.locator("#case-line")).to_contain_text("scanning at Boston Hospital", timeout=WAIT)
    finally:
        page.context.close()


def test_no_camera_is_said_in_plain_words(browser: Browser, live: str, world: Any) -> None:
    page = logged_in(browser, live, "staff", "/scan")
    try:
        page.add_init_script(camera_failing_with(NO_CAMERA))
        page.reload(wait_until="load")
        page.locator("#camera-button").click()
        expect(page.locator("#verdict-title")).to_have_text("No camera found on this device", timeout=WAIT)
        expect(page.locator("#verdict-lines")).to_have_text("Type or scan the code instead.")
        expect(page.locator("#verdict")).not_to_contain_text("Requested device not found")
    finally:
        page.context.close()


def test_a_refused_camera_is_said_in_plain_words(browser: Browser, live: str, world: Any) -> None:
    page = logged_in(browser, live, "staff", "/scan")
    try:
        page.add_init_script(camera_failing_with(REFUSED))
        page.reload(wait_until="load")
        page.locator("#camera-button").click()
        expect(page.locator("#verdict-title")).to_have_text(
            "The browser was not allowed to use the camera", timeout=WAIT)
        expect(page.locator("#verdict-lines")).to_contain_text("type or scan the code instead")
    finally:
        page.context.close()


def test_a_product_barcode_scanned_at_the_scan_page_is_called_one(browser: Browser, live: str,
                                                                    world: Any) -> None:
    page = logged_in(browser, live, "staff", "/scan", clock=True)
    try:
        wedge(page, "4006381333931")
        expect(page.locator("#verdict")).to_contain_text(
            "This is a product barcode (EAN-13), not one of our labels", timeout=WAIT)
        expect(page.locator("#verdict")).not_to_contain_text("14 characters")
    finally:
        page.context.close()
