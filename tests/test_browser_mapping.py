"""A logger file the readers cannot place, mapped in the upload box in a real browser
(Chromium, headless; fixtures in tests/browser.py), on a tablet's screen: the refusal shows
the file's columns, the courier says which is which, the preview re-reads at once, and the
file is stored with the mapping saved as a format for the next file of that layout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from coi.models import LoggerFile, LoggerFormat
from tests.browser import SIZES, logged_in
from tests.helpers import make_case, open_for, probes

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # The clock jumps hours where the courier would have kept the page open.
    return {**app_config, "SESSION_IDLE_MINUTES": 24 * 60}


@pytest.fixture
def courier_page(browser: Browser, live: str) -> Iterator[Page]:
    page = logged_in(browser, live, "courier", "/shipments", size=SIZES["tablet"])
    yield page
    page.context.close()


def choose(page: Page, name: str, data: bytes) -> None:
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": "text/csv", "buffer": data}])


def test_the_courier_maps_the_columns_reads_again_and_saves_the_format(
        app, session, world, clock, courier_page):
    page = courier_page
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
