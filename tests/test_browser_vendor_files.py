"""Vendor logger files in the upload box, in a real browser (Chromium, headless; fixtures in
tests/browser.py), on a handheld's and a tablet's screen: a daily-summary report is previewed
and stored as days, not readings; a file whose header states another zone than the logger's
is flagged before it is stored; a file the readers cannot place is refused with its columns,
the courier says which is which, the preview re-reads at once, and the file is stored with
the mapping saved as a format for the next file of that layout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from coi.models import LoggerFile, LoggerFormat
from tests.browser import SIZES, logged_in
from tests.helpers import fridge_tag, make_case, open_for, probes

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # The clock jumps days where the courier would have kept the page open.
    return {**app_config, "SESSION_IDLE_MINUTES": 7 * 24 * 60, "SESSION_LIFETIME_HOURS": 7 * 24}


@pytest.fixture
def courier(browser: Browser, live: str) -> Iterator[Callable[[tuple[int, int]], Page]]:
    """The courier logged in, on a screen of the size given."""
    pages: list[Page] = []

    def open_at(size: tuple[int, int]) -> Page:
        pages.append(logged_in(browser, live, "courier", "/shipments", size=size))
        return pages[-1]

    yield open_at
    for page in pages:
        page.context.close()


def choose(page: Page, name: str, data: bytes) -> None:
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": "text/plain", "buffer": data}])


def test_a_fridge_tag_report_is_previewed_and_stored_as_days(app, session, world, clock, courier):
    page = courier(SIZES["handheld"])
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
                                                                      courier):
    page = courier(SIZES["handheld"])
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


def test_the_courier_maps_the_columns_reads_again_and_saves_the_format(
        app, session, world, clock, courier):
    page = courier(SIZES["tablet"])
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    shipment_id, opened = shipment.id, shipment.opened_at
    clock.advance(hours=2)
    session.close()

    page.goto(f"/shipments/{shipment_id}")
    choose(page, "probes.csv", probes(opened, [5.1, 5.3, 5.2]))
    expect(page.get_by_role("alert")).to_contain_text("several columns could be the temperature")
    mapping = page.locator("#mapping-form")
    expect(mapping).to_contain_text("Which column is which?")
    page.select_option("#map-date", label="1: Date")
    page.select_option("#map-time", label="2: Time")
    page.select_option("#map-value", label="3: Probe A [°C]")
    page.select_option("#map-order", value="DMY")
    page.get_by_role("button", name="Read again with this mapping").click()

    preview = page.locator("#upload-answer .preview")
    expect(preview).to_contain_text("Readings3")
    expect(preview).to_contain_text("Range5.10 to 5.30 °C")
    expect(preview).to_contain_text("Read withthe column mapping above")
    page.fill("#format-name", "Vendor X two-probe")
    page.get_by_role("button", name="Store 3 readings").click()
    expect(page.locator("#upload-answer .verdict.accepted")).to_contain_text("Stored 3 readings")
    session.expire_all()
    assert session.exec(select(LoggerFormat.name)).one() == "Vendor X two-probe"
    session.close()

    # The next export of that device reads by itself.
    page.goto(f"/shipments/{shipment_id}")
    choose(page, "probes-2.csv", probes(opened + timedelta(minutes=20), [4.0, 4.2], device="unit 9"))
    preview = page.locator("#upload-answer .preview")
    expect(preview).to_contain_text("Read withthe saved format “Vendor X two-probe”")
    page.get_by_role("button", name="Store 2 readings").click()
    expect(page.locator("#upload-answer .verdict.accepted")).to_contain_text("Stored 2 readings")
    session.expire_all()
    assert len(session.exec(select(LoggerFile)).all()) == 2
