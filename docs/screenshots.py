"""Screenshots of the main pages for the README: `make screenshots`.

Serves a fresh demo instance with gunicorn on 127.0.0.1, with its scheduler beside it as in
production (so no page shows the banner of a silent scheduler), and drives Debian's Chromium with
Playwright (no browser download; the flags keep Chromium off the network)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PORT = 5077
BASE = f"http://127.0.0.1:{PORT}"
DATABASE = Path()  # the demo instance's SQLite file, set by main()
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


def main() -> None:
    with tempfile.TemporaryDirectory() as instance:
        global DATABASE
        DATABASE = Path(instance) / "coi.sqlite3"
        env = os.environ | {"COI_DATABASE_URL": f"sqlite:///{instance}/coi.sqlite3",
                            "COI_MODE": "development"}
        bin_dir = Path(sys.executable).parent
        subprocess.run([bin_dir / "flask", "--app", "wsgi", "coi", "init"], env=env, cwd=ROOT,
                       check=True, capture_output=True)
        server = subprocess.Popen([bin_dir / "gunicorn", "-w", "2", "-b", f"127.0.0.1:{PORT}",
                                   "wsgi:app"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        scheduler = subprocess.Popen([bin_dir / "flask", "--app", "wsgi", "coi", "scheduler"],
                                     env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            _wait_for_server()
            shoot()
        finally:
            for process in (scheduler, server):
                process.terminate()
                process.wait(timeout=10)


def _wait_for_server() -> None:
    """Until readiness says yes: the app answers and the scheduler has swept once."""
    for _ in range(300):
        try:
            urllib.request.urlopen(BASE + "/healthz/ready", timeout=1)  # noqa: S310 - our own server
            return
        except OSError:  # refused while starting; HTTPError 503 until the first sweep
            time.sleep(0.1)
    raise SystemExit("the app or its scheduler did not start")


def login(page: Page, username: str) -> None:
    page.context.clear_cookies()
    page.goto(BASE + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo-password-1")
    with page.expect_navigation():  # logged in before the next page is asked for
        page.click("button.primary")


def demo_text(query: str) -> str:
    """An identifier from the demo database, with its check character, as a label carries it."""
    from coi.core.identifiers import mod37_2

    with sqlite3.connect(DATABASE) as db:
        (data,) = db.execute(query).fetchone()
    return str(data) + mod37_2(str(data))


def wedge(page: Page, text: str) -> None:
    """What a handheld scanner does: types the code fast and presses Enter."""
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def shoot_scanning(page: Page) -> None:
    thawed = demo_text("SELECT coi FROM therapy_case WHERE last_step = 'thaw'")
    product = demo_text("SELECT u.serial FROM unit u JOIN therapy_case c ON c.id = u.case_id "
                        "WHERE c.last_step = 'thaw' AND u.kind = 'drug_product_bag'")
    waiting = demo_text("SELECT u.serial FROM unit u JOIN therapy_case c ON c.id = u.case_id "
                        "WHERE c.last_step = 'pack' AND u.kind = 'apheresis_bag'")
    login(page, "nurse.boston")
    page.goto(BASE + f"/scan?case={thawed}")
    wedge(page, product)
    # The wrong wristband scanned at her bedside holds the infusion until QA decides: the page
    # shows the hold beside the thaw-to-infusion clock.
    page.wait_for_selector("#holds-card:not([hidden])")
    page.screenshot(path=OUT / "scan-infusion-clock.png", full_page=True)
    page.goto(BASE + "/cases")
    page.click("a.coi >> nth=-1")
    page.screenshot(path=OUT / "case-timeline.png", full_page=True)
    login(page, "courier")
    page.goto(BASE + "/scan")
    wedge(page, waiting)
    page.wait_for_selector("#verdict.ok")
    page.keyboard.press("Enter")  # Enter on the empty field records the complete step
    page.wait_for_selector("#verdict-title:has-text('RECORDED')")
    page.screenshot(path=OUT / "scan-handoff-received.png")
    login(page, "nurse.boston")  # the bag has left the clinic: scanning it there is refused
    page.goto(BASE + "/scan")
    wedge(page, waiting)
    page.wait_for_selector("#verdict.bad")
    page.screenshot(path=OUT / "scan-refused.png")


def shoot_handheld(browser: Browser) -> None:
    """The scan page and the menu on a handheld (360 px wide): the field, the answer and
    what is still to scan in one screen; the menu folded, then open."""
    bag_of = ("SELECT u.serial FROM unit u JOIN therapy_case c ON c.id = u.case_id JOIN site s "
              "ON s.id = c.site_id WHERE s.code = 'BOS' AND u.kind = 'apheresis_bag' AND c.last_step = '{}'")
    collected = demo_text(bag_of.format("collect"))  # to pack next: its bag is right
    delivered = demo_text(bag_of.format("deliver_manufacturing"))  # has left the clinic: refused
    page = browser.new_page(viewport={"width": 360, "height": 640})
    login(page, "nurse.boston")
    page.goto(BASE + "/scan")
    page.screenshot(path=OUT / "handheld-scan-ready.png")
    wedge(page, collected)
    page.wait_for_selector("#verdict.ok")
    page.screenshot(path=OUT / "handheld-scan-ok.png")
    page.goto(BASE + "/scan")
    wedge(page, delivered)
    page.wait_for_selector("#verdict.bad")
    page.screenshot(path=OUT / "handheld-scan-refused.png")
    page.goto(BASE + "/cases")
    page.screenshot(path=OUT / "handheld-menu-folded.png")
    page.click("header.top summary")
    page.screenshot(path=OUT / "handheld-menu-open.png")
    page.close()


def shoot_shipments(page: Page) -> None:
    with sqlite3.connect(DATABASE) as db:
        (warm,) = db.execute("SELECT s.id FROM shipment s JOIN therapy_case c ON c.id = s.case_id "
                             "WHERE c.last_step = 'deliver_manufacturing'").fetchone()
        (waiting, serial) = db.execute("SELECT s.id, l.serial FROM shipment s JOIN shipment_logger l "
                                       "ON l.shipment_id = s.id WHERE s.state != 'received'").fetchone()
    login(page, "courier")
    page.goto(BASE + f"/shipments/{warm}")
    page.screenshot(path=OUT / "shipment-excursion.png", full_page=True)
    # The waiting shipment's logger, read on the courier's laptop: its last 40 minutes, on
    # the logger's (Boston) clock, as a plain CSV export.
    boston = ZoneInfo("America/New_York")
    now = datetime.now(UTC)
    rows = ["Date Time,Temperature (°C)"] + [
        f"{(now - timedelta(minutes=m)).astimezone(boston):%Y-%m-%d %H:%M:%S},{4.6 + m / 100:.1f}"
        for m in range(40, -1, -5)]
    page.goto(BASE + f"/shipments/{waiting}")
    page.set_input_files("#file-input", files=[{
        "name": f"{serial}.csv", "mimeType": "text/csv",
        "buffer": ("\r\n".join(rows) + "\r\n").encode()}])
    page.wait_for_selector(".preview")
    page.locator("#upload").screenshot(path=OUT / "logger-preview.png")


def shoot_alarms(page: Page) -> None:
    with sqlite3.connect(DATABASE) as db:
        # Case 3's excursion, quarantined by QA: the page asks for the second decision.
        (excursion,) = db.execute("SELECT id FROM alarm WHERE code = 'excursion_single' "
                                  "AND outcome = 'quarantined'").fetchone()
        (resolved,) = db.execute("SELECT id FROM alarm WHERE code = 'late' AND state = 'resolved'").fetchone()
    login(page, "qa.mfg")
    page.goto(BASE + "/alarms")
    page.screenshot(path=OUT / "alarm-inbox.png", full_page=True)
    page.goto(BASE + f"/alarms/{excursion}")
    page.screenshot(path=OUT / "alarm-resolve.png", full_page=True)
    page.goto(BASE + f"/alarms/{resolved}")
    page.screenshot(path=OUT / "alarm-resolved.png", full_page=True)
    login(page, "coord.mfg")
    page.goto(BASE + "/dashboard")
    page.screenshot(path=OUT / "dashboard.png", full_page=True)


def shoot() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 820})
        page.goto(BASE + "/login")
        page.screenshot(path=OUT / "login.png")
        login(page, "nurse.boston")
        page.screenshot(path=OUT / "home.png")
        page.goto(BASE + "/cases")
        page.screenshot(path=OUT / "cases.png")
        page.click("a.coi >> nth=0")
        page.screenshot(path=OUT / "case-with-phi.png", full_page=True)
        page.goto(BASE + "/cases")
        page.click("a.coi >> nth=-1")  # the oldest case: its labels were printed by the demo
        page.click("text=Labels")
        page.screenshot(path=OUT / "labels.png", full_page=True)
        with page.expect_download() as download:
            page.select_option("select[name=output]", "png")
            page.fill("input[name=reason]", "screenshot for the README")
            page.click("form button.primary")
        label_png = Path(download.value.path())
        (OUT / "label-set.png").write_bytes(label_png.read_bytes())
        page.goto(BASE + "/verify")
        page.set_input_files("input[name=photo]", str(label_png))
        page.click("form button.primary")
        page.screenshot(path=OUT / "verify-genuine.png")
        page.goto(BASE + "/cases/new")
        page.fill("input[name=name]", "")
        page.click("button.primary")
        page.screenshot(path=OUT / "enrol-refused.png")
        login(page, "coord.mfg")
        page.goto(BASE + "/cases")
        page.click("a.coi >> nth=0")
        page.screenshot(path=OUT / "case-without-phi.png")
        login(page, "admin")
        page.goto(BASE + "/admin/users")
        page.screenshot(path=OUT / "admin-users.png")
        login(page, "qa.mfg")
        page.goto(BASE + "/admin/audit")
        page.screenshot(path=OUT / "audit-trail.png")
        try:
            shoot_scanning(page)
            shoot_handheld(browser)
            shoot_shipments(page)
            shoot_alarms(page)
        except Exception:
            page.screenshot(path=OUT / "failure.png", full_page=True)  # what the page showed
            raise
        browser.close()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
