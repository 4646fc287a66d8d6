"""Vendor logger files in the upload box, in a real browser (Chromium, headless; fixtures in
tests/browser.py), on a handheld's screen: a daily-summary report is previewed and stored as
days, not readings; a file whose header states another zone than the logger's is flagged
before it is stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser import SIZES, logged_in
from tests.helpers import fridge_tag, make_case, open_for

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # The clock jumps days where the courier would have kept the page open.
    return {**app_config, "SESSION_IDLE_MINUTES": 7 * 24 * 60, "SESSION_LIFETIME_HOURS": 7 * 24}


@pytest.fixture
def courier_page(browser: Browser, live: str) -> Iterator[Page]:
    page = logged_in(browser, live, "courier", "/shipments", size=SIZES["handheld"])
    yield page
    page.context.close()


def choose(page: Page, name: str, data: bytes) -> None:
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": "text/plain", "buffer": data}])


def test_a_fridge_tag_report_is_previewed_and_stored_as_days(app, session, world, clock, courier_page):
    page = courier_page
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    shipment_id = shipment.id
    clock.advance(hours=48)
    session.close()
    report = fridge_tag([("2026-11-24", "+2.6", "+7.4", 0, 0), ("2026-11-23", "+9.1", "+12.4", 0, 1440),
                         ("2026-11-22", "+3.0", "+7.8", 0, 0)])
    page.goto(f"/shipments/{shipment_id}")
    choose(page, "fridgetag.txt", report)
    preview = page.locator("#upload-answer .preview")
    expect(preview).to_contain_text("Days3 daily summaries")
    expect(preview).not_to_contain_text("Readings")
    page.get_by_role("button", name="Store 3 days").click()
    verdict = page.locator("#upload-answer .verdict.accepted")
    expect(verdict).to_contain_text("Stored 3 days of daily summaries from fridgetag.txt")
    expect(verdict).to_contain_text("critical: 2026-11-23: 1440 min above 8.0 °C")


def test_a_zone_in_the_header_that_contradicts_the_loggers_is_flagged(app, session, world, clock,
                                                                      courier_page):
    page = courier_page
    # The logger is registered on New York time; its export says CET in the header.
    shipment = open_for(session, world, clock, make_case(app, session, world, clock),
                        zone="America/New_York")
    shipment_id, opened = shipment.id, shipment.opened_at
    clock.advance(hours=2)
    session.close()
    local = opened.astimezone(ZoneInfo("Europe/Berlin"))
    rows = ["Date-Time (CET),Temperature (°C)"] + [
        f"{local + timedelta(minutes=5 * (i + 1)):%Y-%m-%d %H:%M},5.0" for i in range(4)]
    page.goto(f"/shipments/{shipment_id}")
    choose(page, "cet.csv", ("\r\n".join(rows) + "\r\n").encode())
    preview = page.locator("#upload-answer .preview")
    expect(preview).to_contain_text("times read as UTC+01:00 (stated in the file: header 'Date-Time (CET)')")
    expect(preview.get_by_role("alert")).to_contain_text("Check the zone: the file states UTC+01:00")
    expect(preview).to_contain_text("Readings4")
