"""Every page of the site with real records on it, for the tests that judge how pages look
and read in a browser (tests/test_browser_layout.py, tests/test_accessibility.py): a pytest
plugin (loaded by conftest.py) with the `tour` fixture, whose database is made once per run.

A page is judged as the persona who sees most of it would see it: a case with a collected
bag, a shipment with its logger file and chart, labels printed, an open alarm, an API token,
the alarm's e-mail kept in the development outbox."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlmodel import Session

from coi.core.clock import FrozenClock
from coi.models import Notification, coi_of, serial_of
from coi.services import alarms, delivery, enrolment, labels, tokens
from tests.browser import SIZES, WAIT, logged_in
from tests.databases import Databases, Template
from tests.helpers import Flow, World, make_case

ANONYMOUS = ""  # a page seen without logging in


@dataclass
class Tour:
    coi: str  # a case collected and delivered to manufacturing, its labels printed
    bag: str  # the case's apheresis bag (serial text)
    shipment_id: int  # the case's outbound shipment, its logger file stored
    alarm_id: int  # an open alarm about that shipment
    fresh_bag: str  # the bag of another case, just enrolled: its first scan starts collection

    def pages(self) -> dict[str, tuple[str, str]]:
        """Page name -> (persona, path)."""
        return {
            "home": ("staff", "/"),
            "scan": ("staff", "/scan"),
            "cases": ("staff", "/cases"),
            "case": ("staff", f"/cases/{self.coi}"),
            "enrol": ("staff", "/cases/new"),
            "labels": ("staff", f"/cases/{self.coi}/labels"),
            "shipments": ("staff", "/shipments"),
            "shipment": ("staff", f"/shipments/{self.shipment_id}"),
            "alarms": ("qa", "/alarms"),
            "alarm": ("qa", f"/alarms/{self.alarm_id}"),
            "dashboard": ("coordinator", "/dashboard"),
            "password": ("staff", "/account/password"),
            "tokens": ("staff", "/account/tokens"),
            "users": ("root", "/admin/users"),
            "admin-tokens": ("root", "/admin/tokens"),
            "audit": ("root", "/admin/audit"),
            "outbox": ("root", "/admin/outbox"),
            "verify": (ANONYMOUS, "/verify"),
            "login": (ANONYMOUS, "/login"),
        }


PAGES = list(Tour("", "", 0, 0, "").pages())


def build_tour(app: Flask, session: Session, clock: FrozenClock, world: World) -> Tour:
    """The records of `Tour`, made through the services (committed)."""
    flow = Flow(app, session, world, clock)
    flow.until("deliver_manufacturing")
    labels.print_set(session=session, now=clock.now(), actor=world.actor("staff"),
                     signer=app.extensions["coi.signer"], coi_text=flow.coi.text, output="png",
                     size="4x2", include_wristband=True, reason=None)
    shipment = flow.shipped["outbound"]
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="temperature",
                               code="excursion_single", severity="major",
                               summary="Shipper above 8 °C for 12 min", rule={"rule": "test"},
                               case_id=flow.case.id, shipment_id=shipment.id)
    assert alarm is not None
    for persona in ("staff", "root"):
        tokens.issue_token(session=session, now=clock.now(), actor=world.actor(persona),
                           user_id=world.actor(persona).user_id, name="ward scanner 3",  # type: ignore[arg-type]
                           days=30, reason="tour")
    fresh = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                    coi_text=coi_of(make_case(app, session, world, clock, name="Bo Second",
                                                                    mrn="M-2")).text,
                                    kind="apheresis_bag")
    session.commit()
    _keep_an_email(app, session, clock, alarm.id, world)  # type: ignore[arg-type]
    return Tour(coi=flow.coi.text, bag=flow.bag, shipment_id=shipment.id,  # type: ignore[arg-type]
                alarm_id=alarm.id, fresh_bag=serial_of(fresh).text)  # type: ignore[arg-type]


def _keep_an_email(app: Flask, session: Session, clock: FrozenClock, alarm_id: int, world: World) -> None:
    """The alarm's e-mail to QA, kept in the development outbox by the delivery job (committed)."""
    session.add(Notification(alarm_id=alarm_id, channel="email", target="qa@example.org",
                             user_id=world.actor("qa").user_id, next_attempt_at=clock.now(),
                             created_at=clock.now()))
    session.commit()
    settings = dataclasses.replace(app.extensions["coi.alerting"], outbox=True)
    assert delivery.deliver(session, clock.now(), settings=settings) == 1


@pytest.fixture(scope="session")
def tour_template(databases: Databases, world_template: Template[World]) -> Template[Tour]:
    return databases.build("tour", world_template, lambda app, session, clock: build_tour(
        app, session, clock, world_template.records))


@pytest.fixture
def tour(template: Template[Any], tour_template: Template[Tour], database_url: str) -> Tour:
    """The tour's records in the test's database, which must be a copy of the tour template's:
    a module using it overrides `template` to return `tour_template`."""
    assert template is tour_template, f"the test's database is a copy of {template.name}"
    return copy.deepcopy(tour_template.records)


def open_page(browser: Any, live: str, persona: str, path: str, size: str, *,
              clock: bool = False) -> Any:
    """`path` opened by `persona` (or nobody: ANONYMOUS) on a screen of `size` (a SIZES name)."""
    if persona == ANONYMOUS:
        width, height = SIZES[size]
        context = browser.new_context(base_url=live, viewport={"width": width, "height": height})
        context.set_default_timeout(WAIT)
        page = context.new_page()
        page.goto(path, wait_until="load")
        return page
    return logged_in(browser, live, persona, path, size=SIZES[size], clock=clock)
