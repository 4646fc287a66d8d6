"""A courier's logger upload on the shipment page, in a real browser (Debian's Chromium driven
by Playwright, headless): a file dropped on the drop zone uploads with a progress bar, the
preview says what was read and nothing is stored until the courier commits; then the
readings and the alarm are there and the chart shows them. A refused file says why and
stores nothing.

Served from a live werkzeug server in a thread (the fixtures of tests/browser.py);
skipped without Chromium and Playwright unless COI_REQUIRE_BROWSER=1 (CI)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import func, select

from coi.models import LoggerFile, LoggerReading
from tests.browser import logged_in
from tests.helpers import csv_file, make_case, open_for

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # The courier logs in before the shipment travels; the tests jump the clock by hours
    # where a person would have kept the page open, so the idle timeout is a day here.
    return {**app_config, "MAX_CONTENT_LENGTH": 8 * 1024 * 1024,
            "LOGGER_UPLOAD_MAX_BYTES": 4 * 1024 * 1024, "SESSION_IDLE_MINUTES": 24 * 60}


@pytest.fixture
def courier_page(browser: Browser, live: str) -> Iterator[Page]:
    page = logged_in(browser, live, "courier", "/shipments")
    yield page
    page.context.close()


def drop(page: Page, name: str, content: str) -> None:
    """Drop a file on the drop zone as a user dragging it from their desktop would."""
    transfer = page.evaluate_handle(
        """([name, content]) => {
             const transfer = new DataTransfer();
             transfer.items.add(new File([content], name, {type: "text/csv"}));
             return transfer;
           }""", [name, content])
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def watch_progress(page: Page) -> None:
    """Record every value the progress bar takes (its `value` attribute) in the page."""
    page.evaluate("""() => {
        window.progressSeen = [];
        const bar = document.getElementById("upload-progress");
        new MutationObserver(() => window.progressSeen.push(Number(bar.value)))
          .observe(bar, {attributes: true, attributeFilter: ["value"]});
      }""")


def stored(session, model) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(model)).one()


def test_a_dropped_file_is_previewed_then_stored_with_its_alarm_and_chart(
        app, session, world, clock, courier_page):
    page = courier_page
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    shipment_id, opened = shipment.id, shipment.opened_at
    clock.advance(hours=4)
    # 40 minutes above 8 °C (30 allowed), padded with in-range readings to ~1.3 MB so that
    # the upload, throttled below, takes long enough to show its progress.
    values = [5.0] * 6 + [9.5] * 8 + [5.0] * 6
    content = csv_file(values, start=opened).decode()
    padding = "".join(f"# note {i:06d} {'.' * 60}\r\n" for i in range(20_000))
    session.close()

    page.goto(f"/shipments/{shipment_id}")
    watch_progress(page)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1_000_000})
    drop(page, "shipper-7.csv", content + padding)

    preview = page.locator("#upload-answer .preview")
    expect(preview).to_contain_text("Preview of shipper-7.csv")
    expect(preview).to_contain_text("Readings20")
    expect(preview).to_contain_text(re.compile(r"First5\.00 °C at 2026-11-22 \d\d:\d\d EST"))
    expect(preview).to_contain_text("Range5.00 to 9.50 °C")
    expect(preview).to_contain_text("Skipped20,000 row(s)")
    bar = page.locator("#upload-progress")
    expect(bar).to_be_visible()
    expect(bar).to_have_attribute("value", "100")
    seen = page.evaluate("window.progressSeen")
    assert any(0 < value < 100 for value in seen), seen  # it moved while the file went up
    assert stored(session, LoggerFile) == 0 and stored(session, LoggerReading) == 0  # not yet
    session.close()

    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    page.get_by_role("button", name="Store 20 readings").click()
    verdict = page.locator("#upload-answer .verdict.accepted")
    expect(verdict).to_contain_text("critical")
    expect(verdict).to_contain_text("40 min")
    assert stored(session, LoggerFile) == 1 and stored(session, LoggerReading) == 20
    session.close()

    page.get_by_role("link", name="Show the updated chart").click()
    page.wait_for_url(re.compile(rf"/shipments/{shipment_id}$"))
    expect(page.locator("figure.chart svg")).to_be_visible()
    expect(page.locator("body")).to_contain_text("shipper-7.csv")


def test_a_refused_file_says_why_and_stores_nothing(app, session, world, clock, courier_page):
    page = courier_page
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    shipment_id = shipment.id
    clock.advance(hours=1)
    last_week = csv_file([5.0] * 4, start=clock.now() - timedelta(days=7)).decode()
    session.close()

    page.goto(f"/shipments/{shipment_id}")
    page.set_input_files("#file-input", files=[{
        "name": "old.csv", "mimeType": "text/csv", "buffer": last_week.encode()}])
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("another period")
    expect(alert).to_contain_text("Nothing was stored")
    expect(page.get_by_role("button", name=re.compile("^Store"))).to_have_count(0)
    assert stored(session, LoggerFile) == 0 and stored(session, LoggerReading) == 0
