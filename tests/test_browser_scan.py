"""The scan page in a real browser (Debian's Chromium driven by Playwright, headless), fed the
way a keyboard-wedge scanner feeds it: the whole code typed within milliseconds, then Enter,
into whatever has the focus. A person typing is slower; the page then asks for the code a
second time. Covered: a handoff across two logins, refusals of a wrong unit (shown big and
red, nothing accepted, on the case's timeline), double-typed entry, the checklist and the
focus that stays on the scan field after every answer.

The app is served from a live werkzeug server in a thread, on the test's own database (the
fixtures of tests/browser.py); the data are seeded through the services. Needs
/usr/bin/chromium and Playwright (the Makefile installs both): skipped without them, unless
COI_REQUIRE_BROWSER=1 (CI), where their absence fails the run."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine
from sqlmodel import Session, select

from coi.core.identifiers import CoiId, UnitSerial
from coi.core.workflow import Entry
from coi.models import Alarm, Unit, coi_of, serial_of
from coi.services import custody, enrolment
from coi.services.custody import Credential
from tests.browser import WAIT, by_hand, events, expect_checklist, expect_verdict, focused, wedge
from tests.helpers import PASSWORD, make_case

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the Makefile installs it; the browser fixture skips
    pass

# ---------------------------------------------------------------- browser and server

class Gate:
    """WSGI middleware that can hold the scan page's requests: a test closes it to keep an
    answer from arriving while it scans on. Open unless a test closes it."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.open = threading.Event()
        self.open.set()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/scan/judge":
            self.open.wait(timeout=30)
        return self.app(environ, start_response)


@pytest.fixture
def gate(app: Flask) -> Gate:
    return Gate(app)


@pytest.fixture
def served(gate: Gate) -> Gate:
    """The live server (tests/browser.py) serves the app through the gate."""
    return gate


@pytest.fixture
def live(live: str, gate: Gate) -> Iterator[str]:
    yield live
    gate.open.set()  # a held answer goes out before the server stops


@pytest.fixture
def scan_page(browser: Browser, live: str) -> Iterator[Callable[..., Page]]:
    """Log a persona in, in a browser context of their own, and open the scan page."""
    contexts = []

    def open_as(persona: str) -> Page:
        context = browser.new_context(base_url=live, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT)
        # Time runs as usual on this clock, except while `key_in` holds it (see SCANNER_MS).
        context.clock.install()
        contexts.append(context)
        page = context.new_page()
        page.goto("/login?next=/scan")
        page.fill("input[name=username]", persona)
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        # The load event: scan.js has run and listens to the keys (the field and the
        # greeting are in the HTML before it).
        page.wait_for_url(re.compile(r"/scan$"), wait_until="load", timeout=WAIT)
        expect(page.locator("#verdict-title")).to_have_text(
            "Ready: scan the first label of the step.", timeout=WAIT)
        # The field has the focus from the start: no click before the first scan.
        expect(page.locator("#code")).to_be_focused(timeout=WAIT)
        return page

    yield open_as
    for context in contexts:
        context.close()


# ---------------------------------------------------------------- what a user does and sees




# ---------------------------------------------------------------- data, through the services

def enrol_with_bag(app: Flask, session: Session, world: Any, clock: Any, **identity: Any
                   ) -> tuple[int, str, str]:
    """A case at BOS with one apheresis bag: (case id, COI text, bag serial text)."""
    case = make_case(app, session, world, clock, **identity)
    bag = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                  coi_text=coi_of(case).text, kind="apheresis_bag")
    session.commit()
    return case.id, coi_of(case).text, serial_of(bag).text  # type: ignore[return-value]


def record(session: Session, world: Any, clock: Any, persona: str, step: str, *texts: str,
           verifier: str | None = None) -> None:
    clock.advance(minutes=10)
    outcome = custody.scan(session=session, now=clock.now(), actor=world.actor(persona),
                           entries=[Entry(t) for t in texts], step_name=step,
                           own_password=PASSWORD if verifier else None,
                           verifiers=[Credential(verifier, PASSWORD)] if verifier else [])
    session.commit()
    assert outcome.verdict.accepted, [r.message for r in outcome.verdict.refusals]



def unit_row(engine: Engine, serial_text: str) -> Unit:
    with Session(engine) as db:
        return db.exec(select(Unit).where(Unit.serial == serial_text[:16])).one()


# ---------------------------------------------------------------- the tests

def test_a_handoff_passes_custody_when_the_receiver_scans_in_another_login(
        app, session, engine, world, clock, scan_page):
    case_id, coi, bag = enrol_with_bag(app, session, world, clock)
    record(session, world, clock, "staff", "collect", coi, bag, verifier="staff2")
    record(session, world, clock, "staff", "pack", bag)
    session.close()

    pickup = "Courier pickup at the clinic"
    giver = scan_page("staff")
    wedge(giver, bag)
    # The scan proposes the step; the scanner's Enter on the empty field confirms it.
    expect_verdict(giver, "ok", f"OK: {bag}", f"press Enter (or Record) to record '{pickup}'")
    assert focused(giver) == "code"
    expect_checklist(giver, done=["apheresis bag"], todo=[])
    expect(giver.locator("#sign-button")).to_have_text(f"Record {pickup}")
    assert [e.kind for e in events(engine, case_id)][-1] == "step"  # nothing recorded yet
    giver.keyboard.press("Enter")
    expect_verdict(giver, "ok", f"HANDED OVER: {pickup}. Custody passes when the receiver scans.")
    assert focused(giver) == "code"
    expect_checklist(giver, done=["apheresis bag"], todo=[])
    assert [e.kind for e in events(engine, case_id)][-1] == "handoff_give"
    assert unit_row(engine, bag).custodian_site_id == world.sites["BOS"].id  # not received yet

    receiver = scan_page("courier")
    wedge(receiver, bag)
    expect_verdict(receiver, "ok", f"OK: {bag}", f"press Enter (or Record) to record '{pickup}'")
    assert focused(receiver) == "code"
    expect_checklist(receiver, done=[UnitSerial.parse(bag).display], todo=[])
    expect(receiver.locator("#case-line")).to_contain_text("scanning at Courier depot")
    receiver.get_by_role("button", name=f"Record {pickup}").click()  # the mouse, this time
    expect_verdict(receiver, "ok", f"RECORDED: {pickup}", "Next: Delivery to manufacturing by")
    assert focused(receiver) == "code"
    expect(receiver.locator("#sign-card")).to_be_hidden()

    received = events(engine, case_id)[-1]
    assert received.kind == "handoff_receive"
    assert received.actor_id == world.actor("courier").user_id
    assert received.site_id == world.sites["DEP"].id
    assert json.loads(received.body)["scans"] == [{"text": bag, "method": "scanned"}]
    assert unit_row(engine, bag).custodian_site_id == world.sites["DEP"].id


@pytest.mark.parametrize("wrong", ["other_case", "wrong_kind"])
def test_a_wrong_unit_is_refused_big_and_red_accepts_nothing_and_shows_on_the_timeline(
        app, session, engine, world, clock, scan_page, wrong):
    case_id, coi, bag = enrol_with_bag(app, session, world, clock)
    if wrong == "other_case":
        other_id, other_coi, stranger = enrol_with_bag(app, session, world, clock,
                                                       name="Bo Other", mrn="M-2")
        reason = f"belongs to case {CoiId.parse(other_coi).display}, not {CoiId.parse(coi).display}"
    else:
        product = enrolment.register_unit(session=session, now=clock.now(),
                                          actor=world.actor("coordinator"), coi_text=coi,
                                          kind="drug_product_bag")
        session.commit()
        stranger = serial_of(product).text
        other_id, reason = None, "A drug product bag is not scanned at 'Apheresis collection'"
    custodian_before = unit_row(engine, stranger).custodian_site_id
    session.close()

    page = scan_page("staff")
    wedge(page, coi)
    expect_verdict(page, "ok", f"OK: {coi}", "Still to scan: apheresis bag")
    assert focused(page) == "code"
    expect_checklist(page, done=["wristband"], todo=["apheresis bag"])

    wedge(page, stranger)
    expect_verdict(page, "bad", f"REFUSED: {stranger}", reason, "Custody alarm raised",
                   "This refused scan is recorded on the case's ledger.")
    assert focused(page) == "code"
    expect_checklist(page, done=["wristband"], todo=["apheresis bag"])  # nothing accepted
    expect(page.locator("#sign-card")).to_be_hidden()
    expect(page.locator("#log li").first).to_have_class("bad")

    refused = events(engine, case_id)[-1]
    body = json.loads(refused.body)
    assert refused.kind == "scan_refused" and body["step"] == "collect"
    assert wrong in [r["code"] for r in body["refusals"]]
    assert [s["text"] for s in body["scans"]] == [coi, stranger]
    assert "step" not in [e.kind for e in events(engine, case_id)]
    assert unit_row(engine, stranger).custodian_site_id == custodian_before
    if other_id is not None:  # nothing written on the other case either
        assert [e.kind for e in events(engine, other_id)] == ["enrol", "register_unit"]
    with Session(engine) as db:
        assert db.exec(select(Alarm).where(Alarm.event_id == refused.id)).all()

    # The refused unit was dropped, not kept: the right bag completes the step.
    wedge(page, bag)
    expect_verdict(page, "ok", f"OK: {bag}", "Everything is scanned: sign below")
    expect_checklist(page, done=["wristband", "apheresis bag"], todo=[])
    expect(page.locator("#sign-card")).to_be_visible()

    page.goto(f"/cases/{coi}")
    row = page.locator("tr.event-scan_refused")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Refused scan (Apheresis collection)")
    expect(row).to_contain_text("refused")
    expect(row).to_contain_text(reason)
    expect(row).to_contain_text(stranger)


def test_a_typed_code_must_be_typed_twice_the_same(app, session, engine, world, clock, scan_page):
    case_id, coi, bag = enrol_with_bag(app, session, world, clock)
    session.close()
    page = scan_page("staff")

    wedge(page, coi)  # the wristband is scanned; its bag's label is torn and read by eye
    expect_verdict(page, "ok", f"OK: {coi}")
    expect_checklist(page, done=["wristband"], todo=["apheresis bag"])

    slip = bag[:-2] + ("0" if bag[-2] != "0" else "1") + bag[-1]
    by_hand(page, bag)
    expect_verdict(page, "idle", "Typed, not scanned: type the same code once more and press Enter.")
    expect(page.locator("#again-box")).to_be_visible()
    assert focused(page) == "again"
    expect_checklist(page, done=["wristband"], todo=["apheresis bag"])  # nothing judged yet
    by_hand(page, slip)
    expect_verdict(page, "bad", f"REFUSED: {bag}", "typed twice",
                   "This refused scan is recorded on the case's ledger.")
    expect(page.locator("#again-box")).to_be_hidden()
    assert focused(page) == "code"
    expect_checklist(page, done=["wristband"], todo=["apheresis bag"])
    refused = events(engine, case_id)[-1]
    assert refused.kind == "scan_refused"
    assert [r["code"] for r in json.loads(refused.body)["refusals"]] == ["typed_mismatch"]

    by_hand(page, bag)
    expect(page.locator("#again-box")).to_be_visible()
    by_hand(page, bag)
    expect_verdict(page, "ok", f"OK: {bag}", "Everything is scanned: sign below")
    expect(page.locator("#again-box")).to_be_hidden()
    expect_checklist(page, done=["wristband", "apheresis bag"], todo=[])
    expect(page.locator("#own-password")).to_be_focused()  # the signature is next
    page.locator("#own-password").fill(PASSWORD)
    page.locator("#verifier-username").fill("staff2")
    page.locator("#verifier-password").fill(PASSWORD)
    page.locator("#sign-button").click()
    expect_verdict(page, "ok", "RECORDED: Apheresis collection", "Next: Pack fresh shipment")
    expect(page.locator("#code")).to_be_focused()

    done = events(engine, case_id)[-1]
    assert done.kind == "step"
    assert json.loads(done.body)["scans"] == [{"text": coi, "method": "scanned"},
                                              {"text": bag, "method": "typed"}]


def test_a_code_scanned_while_the_previous_is_checked_is_not_lost_silently(
        app, session, world, clock, scan_page, gate):
    _case_id, coi, bag = enrol_with_bag(app, session, world, clock)
    session.close()
    page = scan_page("staff")

    gate.open.clear()  # the server holds the first answer
    wedge(page, coi)
    expect(page.locator("#verdict-title")).to_have_text(f"Checking {coi} …")
    wedge(page, bag)  # the scanner beeps for the second label at once
    gate.open.set()
    # Judged after the code before it, in order: both are on the checklist and in the log.
    expect_verdict(page, "ok", f"OK: {bag}")
    expect(page.locator("#checklist li.done")).to_have_count(2)
    expect(page.locator("#log")).to_contain_text(f"{coi} accepted")
    expect(page.locator("#log")).to_contain_text(f"{bag} accepted")
