"""What several test modules share: the personas and their world, the web client's ways in
(login, forms, API tokens), factories of cases, shipments and logger files, a case driven
along the route (`Flow`), and the check of an answer against the OpenAPI document.

Plain functions and constants only; the fixtures are in conftest.py (and browser.py)."""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from sqlalchemy import func
from sqlmodel import Session, select

from coi.core.access import SCOPES, Actor
from coi.core.clock import FrozenClock
from coi.core.identifiers import ALPHABET
from coi.core.phi import PatientIdentity
from coi.core.workflow import Entry
from coi.models import CustodyEvent, Shipment, ShipmentLogger, Site, coi_of, serial_of
from coi.services import custody, enrolment, ledger, masterdata, shipments, tokens, users
from coi.services.custody import Credential
from coi.services.loggers import intake
from coi.services.shipments import LoggerSpec
from coldchain import load_profiles

REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("COI_REALDATA", REPO.parent / "shared" / "realdata"))
PASSWORD = "correct horse battery"
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ROUTE = (REPO / "coi" / "route_definitions" / "cartx-v1.toml").read_text()
INSTALLATION_KEY = "bGFiZWwtc2lnbmluZy1rZXktZm9yLXRlc3RzLW9ubHk="  # 32 bytes, tests only
PHI_INDEX_KEY = "dGVzdC1pbmRleC1rZXktMzItYnl0ZXMtbG9uZyEh"


# ---------------------------------------------------------------- personas

@dataclass
class World:
    """Sites and people: each persona holds one role at one site."""

    sites: dict[str, Site]
    actors: dict[str, Actor]

    def actor(self, persona: str) -> Actor:
        return self.actors[persona]

    def copy(self) -> World:
        """A copy of one's own: sites as new (transient) objects with the same values and ids."""
        return World(sites={code: Site(**site.model_dump()) for code, site in self.sites.items()},
                     actors=copy.deepcopy(self.actors))


# persona -> (site code, role), or None for a global administrator (no site role: their
# reach is the global_admin flag). `outsider` is site staff at another hospital; `admin`
# administers Boston only.
PERSONAS: dict[str, tuple[str, str] | None] = {
    "staff": ("BOS", "site_staff"),
    "staff2": ("BOS", "site_staff"),
    "outsider": ("BER", "site_staff"),
    "coordinator": ("MFG", "coordinator"),
    "qa": ("MFG", "qa"),
    "courier": ("DEP", "courier"),
    "admin": ("BOS", "admin"),
    "root": None,
}


def build_world(session: Session, now: datetime) -> World:
    """The sites, the product and its route, and the personas with their grants (committed)."""
    sites = {
        code: masterdata.create_site(session=session, now=now, actor=None, code=code, name=name,
                                     kinds=kinds, timezone=tz, facility_id=fid, reason="fixture")
        for code, name, kinds, tz, fid in [
            ("BOS", "Boston Hospital", ["collection", "treatment"], "America/New_York", "A9998"),
            ("BER", "Berlin Hospital", ["collection", "treatment"], "Europe/Berlin", "A9997"),
            ("MFG", "Manufacturing", ["manufacturing"], "America/Chicago", None),
            ("DEP", "Courier depot", ["courier_depot"], "America/New_York", None),
        ]
    }
    masterdata.create_product(session=session, now=now, actor=None, code="CARTX", name="CAR-T",
                              description="", reason="fixture")
    masterdata.add_route_version(session=session, now=now, actor=None, definition=ROUTE,
                                 reason="fixture")
    actors = {}
    for persona, grant in PERSONAS.items():
        user = users.create_user(session=session, now=now, actor=None, username=persona,
                                 full_name=f"{persona.title()} Person", password=PASSWORD,
                                 reason="fixture")
        if grant is None:
            users.set_global_admin(session=session, now=now, actor=None,
                                   user_id=user.id, value=True, reason="fixture")  # type: ignore[arg-type]
        else:
            users.grant_role(session=session, now=now, actor=None, user_id=user.id,  # type: ignore[arg-type]
                             site_id=sites[grant[0]].id, role=grant[1], reason="fixture")  # type: ignore[arg-type]
        actors[persona] = users.actor_for(session=session, user=user)
    session.commit()
    return World(sites=sites, actors=actors)


# ---------------------------------------------------------------- the web client

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    token = CSRF.search(page.get_data(as_text=True))
    assert token, "login page has no CSRF token"
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token.group(1)})


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, str]) -> Any:
    """Submit a form the way a browser does: load the page, take its CSRF token, post."""
    page = client.get(page_url)
    token = CSRF.search(page.get_data(as_text=True))
    assert token, f"{page_url} has no form with a CSRF token (status {page.status_code})"
    return client.post(action, data={**data, "csrf_token": token.group(1)})


def cookie_text(client: FlaskClient) -> str:
    """The session cookie as anyone holding it can read it (it is signed, not encrypted)."""
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    value = cookie.value
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode()


def api_token(session: Session, clock: FrozenClock, world: World, persona: str,
              scopes: Iterable[str] = tuple(SCOPES)) -> str:
    """A token acting as `persona`, with every scope unless told (issued as the system)."""
    text_, _row = tokens.issue_token(session=session, now=clock.now(), actor=None,
                                     user_id=world.actor(persona).user_id, name=f"{persona} device",
                                     days=30, reason="test", scopes=scopes)
    session.commit()
    return text_


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count(session: Session, model: type) -> int:
    session.rollback()  # a fresh snapshot: SQLite readers keep theirs until the transaction ends
    return session.exec(select(func.count()).select_from(model)).one()


# ---------------------------------------------------------------- enrolment

ENROL_FORM = {"site": "BOS", "product": "CARTX", "manufacturing_site": "MFG",
              "name": "Harriet Vance", "birth_date": "1961-03-14", "mrn": "MRN-0001"}


def enrol_body(**patient: str) -> dict[str, object]:
    return {"site": "BOS", "product": "CARTX", "manufacturing_site": "MFG",
            "patient": {"name": "Harriet Vance", "birth_date": "1961-03-14", "mrn": "MRN-0001",
                        **patient}}


def make_case(app: Flask, session: Session, world: World, clock: FrozenClock, **overrides: Any) -> Any:
    """A case enrolled at BOS by `staff` (override any enrol() argument or the identity's fields)."""
    identity = PatientIdentity(overrides.pop("name", "Ann Example"),
                               overrides.pop("birth_date", date(1970, 5, 1)),
                               overrides.pop("mrn", "M-1"))
    arguments = {"session": session, "now": clock.now(), "actor": world.actor("staff"),
                 "cipher": app.extensions["coi.phi"], "site_code": "BOS", "product_code": "CARTX",
                 "manufacturing_site_code": "MFG", "identity": identity} | overrides
    case = enrolment.enrol(**arguments)
    session.commit()
    return case


def with_wrong_check(text: str) -> str:
    """`text` with its last (check) character replaced by another valid-looking one."""
    return text[:-1] + next(ch for ch in ALPHABET[:36] if ch != text[-1])


# ---------------------------------------------------------------- custody along the route

class Flow:
    """One case driven along the demo route through the service, as the scan page would."""

    def __init__(self, app: Flask, session: Session, world: World, clock: FrozenClock) -> None:
        self.session, self.world, self.clock = session, world, clock
        self.case = make_case(app, session, world, clock)
        self.coi = coi_of(self.case)
        bag = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                      coi_text=self.coi.text, kind="apheresis_bag")
        session.commit()
        self.bag = serial_of(bag).text
        self.product: str | None = None
        self.done = 0  # how many steps of script() are done
        self.step = "collect"  # the step scans are for unless told
        self.shipped: dict[str, Shipment] = {}  # the legs whose shipment the Flow opened
        self.shipping = True  # False: the legs travel without shipments (nor logger data)

    # Each leg the route ships travels in a shipment with a logger, and its logger file is
    # uploaded at the delivery: opened by the Flow at the giving side of the pickup unless the
    # test opened one for the leg itself (then the test uploads what it wants, or nothing).
    LEGS = {"pickup.give": ("outbound", "staff", "LOG-1"),
            "pickup_return.give": ("return", "coordinator", "LOG-2")}
    DELIVERIES = {"deliver_manufacturing": "outbound", "deliver_treatment": "return"}
    LEG_READING = {"outbound": 5.0, "return": -170.0}  # within 2-8 C, within vapour-phase LN2

    def ship(self, name: str) -> None:
        """Open the leg's shipment before its pickup; upload its logger file once delivered."""
        session, clock = self.session, self.clock
        if name in self.LEGS:
            leg, persona, serial = self.LEGS[name]
            if session.exec(select(Shipment).where(Shipment.case_id == self.case.id,
                                                   Shipment.leg == leg)).first() is None:
                self.shipped[leg] = open_for(session, self.world, clock, self.case, leg=leg,
                                             serials=(serial,), persona=persona)
        elif self.DELIVERIES.get(name) in self.shipped:
            shipment = self.shipped[self.DELIVERIES[name]]
            minutes = int((clock.now() - shipment.opened_at).total_seconds() // 60)
            readings = [self.LEG_READING[shipment.leg]] * (minutes // 5 + 1)
            store(session, self.world, clock, shipment,
                  json_file(readings, start=shipment.opened_at, serial=shipment_serial(session, shipment)),
                  name=f"{shipment.leg}.json")

    def scan(self, persona: str, *texts: str | Entry, step: str | None = None, signer: str | None = None,
             verifier: str | None = None, minutes: float = 10, **kwargs: Any) -> Any:
        self.clock.advance(minutes=minutes)
        entries = [t if isinstance(t, Entry) else Entry(t) for t in texts]
        verifiers = [Credential(verifier, PASSWORD)] if verifier else []
        if step is None and not kwargs.get("partial"):
            step = self.step
        outcome = custody.scan(session=self.session, now=self.clock.now(),
                               actor=self.world.actor(persona), entries=entries, step_name=step,
                               own_password=PASSWORD if signer else None, verifiers=verifiers,
                               **kwargs)
        self.session.commit()
        return outcome

    def register_product(self) -> str:
        unit = enrolment.register_unit(session=self.session, now=self.clock.now(),
                                       actor=self.world.actor("coordinator"),
                                       coi_text=self.coi.text, kind="drug_product_bag")
        self.session.commit()
        self.product = serial_of(unit).text
        return self.product

    def until(self, last: str) -> None:
        """Every step up to and including `last`, done right."""
        script = self.script()
        names = [name for name, _do in script]
        for name, do in script[self.done:names.index(last) + 1]:
            self.step = name.split(".")[0]
            if self.shipping and name in self.LEGS:
                self.ship(name)
            do()
            if self.shipping and name in self.DELIVERIES:
                self.ship(name)
        self.done = names.index(last) + 1

    def script(self) -> list[tuple[str, Any]]:
        coi, bag = self.coi.text, self.bag
        return [
            ("collect", lambda: self.ok(self.scan("staff", coi, bag, signer="staff",
                                                  verifier="staff2"))),
            ("pack", lambda: self.ok(self.scan("staff", bag))),
            ("pickup.give", lambda: self.ok(self.scan("staff", bag))),
            ("pickup", lambda: self.ok(self.scan("courier", bag))),
            ("deliver_manufacturing.give", lambda: self.ok(self.scan("courier", bag))),
            ("deliver_manufacturing", lambda: self.ok(self.scan("coordinator", bag))),
            ("manufacture", lambda: self.ok(self.scan("coordinator", bag, self.register_product()))),
            ("release", lambda: self.ok(self.scan("qa", self.product, signer="qa"))),
            ("pickup_return.give", lambda: self.ok(self.scan("coordinator", self.product))),
            ("pickup_return", lambda: self.ok(self.scan("courier", self.product))),
            ("deliver_treatment.give", lambda: self.ok(self.scan("courier", self.product))),
            ("deliver_treatment", lambda: self.ok(self.scan("staff", self.product))),
            ("thaw", lambda: self.ok(self.scan("staff", self.product))),
            ("infuse", lambda: self.ok(self.scan("staff", coi, self.product, signer="staff",
                                                 verifier="staff2"))),
        ]

    @staticmethod
    def ok(outcome: Any) -> Any:
        assert outcome.verdict.accepted, [r.message for r in outcome.verdict.refusals]
        assert outcome.event is not None
        return outcome

    def events(self) -> list[CustodyEvent]:
        return ledger.events_of(session=self.session, case=self.case)


# ---------------------------------------------------------------- shipments and logger files

PROFILES = load_profiles()
BERLIN = "Europe/Berlin"


def csv_file(values: list[float], *, start: datetime, minutes: int = 5, zone_offset_h: int = 1) -> bytes:
    """A plain export: local Berlin wall-clock times (no zone in the file), one reading every
    `minutes`."""
    rows = ["Date Time,Temperature (°C)"]
    for i, value in enumerate(values):
        local = start + timedelta(minutes=minutes * i, hours=zone_offset_h)
        rows.append(f"{local:%Y-%m-%d %H:%M:%S},{value:.1f}")
    return ("\r\n".join(rows) + "\r\n").encode()


def probes(start: datetime, values: list[float], *, device: str = "unit 7") -> bytes:
    """A vendor export with two probes (detection cannot choose), day-first dates, decimal
    commas, Berlin wall-clock times; its preamble changes from one export to the next."""
    local = start.astimezone(ZoneInfo(BERLIN))
    lines = [f"Device;{device}", f"Exported;{local:%d.%m.%Y}", "", "Date;Time;Probe A [°C];Probe B [°C]"]
    for i, value in enumerate(values):
        at = local + timedelta(minutes=5 * (i + 1))
        lines.append(f"{at:%d.%m.%Y};{at:%H:%M};{value:.1f};21,5".replace(f"{value:.1f}",
                                                                          f"{value:.1f}".replace(".", ",")))
    return ("\r\n".join(lines) + "\r\n").encode()


def fridge_tag(days: list[tuple[str, str, str, int, int]]) -> bytes:
    """A Berlinger Fridge-tag 2 report (the non-logging model): its 'Hist:' days, newest first,
    each (date, min, max, minutes below -0.5, minutes above +8.0), and no 'Data:' section."""
    lines = ["Device: Q-tag Fridge-tag 2", "Vers: 0.5", "Conf:", " Serial: LOG-1", " Temp unit: C",
             " Alarm:", "  0:", "   T AL: -0.5, t AL: 60", "  1:", "   T AL: +8.0, t AL: 600", "Hist:",
             " TS Actv: 2026-11-22 08:00"]
    for number, (day, low, high, below, above) in enumerate(days, start=1):
        lines += [f" {number}:", f"  Date: {day}", f"  Min T: {low}, TS Min T: 04:10",
                  f"  Max T: {high}, TS Max T: 13:05", "  Alarm:", "   0:", f"    t Acc: {below}",
                  "   1:", f"    t Acc: {above}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def json_file(values: list[float], *, start: datetime, serial: str, minutes: int = 5) -> bytes:
    """A JSON export naming its logger, with UTC times: one reading every `minutes`."""
    return json.dumps({"logger": serial, "readings": [
        {"at": (start + timedelta(minutes=minutes * i)).isoformat(), "celsius": value}
        for i, value in enumerate(values)]}).encode()


def shipment_serial(session: Session, shipment: Shipment) -> str:
    return session.exec(select(ShipmentLogger.serial).where(
        ShipmentLogger.shipment_id == shipment.id)).first()  # type: ignore[return-value]


def open_for(session: Session, world: World, clock: FrozenClock, case: Any, *,
             serials: tuple[str, ...] = ("LOG-1",), zone: str | None = BERLIN,
             leg: str = "outbound", persona: str = "staff") -> Shipment:
    shipment = shipments.open_shipment(
        session=session, now=clock.now(), actor=world.actor(persona), profiles=PROFILES,
        coi_text=coi_of(case).text, leg=leg, loggers=[LoggerSpec(s, zone) for s in serials],
        shipper_id="SHIP-7", profile_name=None, eta=clock.now() + timedelta(hours=24))
    session.commit()
    return shipment


def store(session: Session, world: World, clock: FrozenClock, shipment: Shipment, data: bytes, *,
          persona: str = "courier", name: str = "log.csv", **kw: Any) -> Any:
    stored = intake.store(session=session, now=clock.now(), actor=world.actor(persona),
                           shipment_id=shipment.id, stream=io.BytesIO(data), filename=name,  # type: ignore[arg-type]
                           via="api", **kw)
    session.commit()
    return stored


# ---------------------------------------------------------------- the API as documented

DOCUMENT_URI = "urn:coi:api:v1:openapi.json"


def validator_for(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of `schema` (a $ref into the document's components) against the document."""
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(document))
    return Draft202012Validator({"$ref": DOCUMENT_URI + schema["$ref"]}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_as_documented(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    """The response's status is documented for the operation, with its media type, and the
    body validates against the documented schema."""
    operation = document["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented, f"{method.upper()} {path} answered {response.status_code}, not documented"
    assert response.mimetype in documented["content"], (
        f"{method.upper()} {path} {response.status_code} answered {response.mimetype}, documented "
        f"{list(documented['content'])}")
    schema = documented["content"][response.mimetype]["schema"]
    errors = sorted(validator_for(document, schema).iter_errors(response.get_json()), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
