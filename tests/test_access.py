"""Who may reach what: every route walked with each persona, then site scoping and PHI.

The table below is the access decision for every endpoint. A route the table does not name
(or a name the app no longer has) fails `test_every_route_has_an_access_decision`, so no new
route can ship without someone deciding who may use it."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import qrcode
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from coi.core.access import AUTHENTICATED, PUBLIC, SCOPES, declared_permission
from coi.core.clock import FrozenClock
from coi.core.identifiers import CoiId
from coi.core.phi import PatientIdentity
from coi.labels import payload
from coi.models import RoleGrant, Unit, coi_of, serial_of
from coi.services import alarms, enrolment, labels, shipments, tokens
from coi.services.loggers import intake
from tests.databases import Databases, Template
from tests.helpers import CSRF, PASSWORD, PERSONAS, World, api_token, bearer, count, login

ANONYMOUS = "anonymous"
EVERYONE = frozenset(PERSONAS) | {ANONYMOUS}
LOGGED_IN = frozenset(PERSONAS)
CASE_READERS = frozenset({"staff", "staff2", "outsider", "coordinator", "qa"})
SITE_STAFF = frozenset({"staff", "staff2", "outsider"})
ADMIN = frozenset({"admin", "root"})  # Boston's administrator, and the global one
LABEL_PRINTERS = SITE_STAFF | {"coordinator"}
UNIT_REGISTRARS = SITE_STAFF | {"coordinator"}  # coordinators: drug-product units
SCANNERS = SITE_STAFF | {"coordinator", "qa", "courier"}  # the route judges each step
SHIPMENT_VIEWERS = CASE_READERS | {"courier"}  # couriers carry every shipment
SHIPMENT_OPENERS = SITE_STAFF | {"coordinator"}  # at the leg's origin
LOGGER_UPLOADERS = SITE_STAFF | {"coordinator", "courier"}
ALARM_VIEWERS = CASE_READERS | {"courier"}  # couriers: shipment alarms

# endpoint -> the personas allowed to use it (roles only; site scoping is tested below).
EXPECTED: dict[str, frozenset[str]] = {
    "auth.login": EVERYONE,
    "auth.logout": LOGGED_IN,
    "home.index": LOGGED_IN,
    "health.healthz": EVERYONE,
    "health.live": EVERYONE,
    "health.ready": EVERYONE,
    # Not a persona's page: the scraper's, by token or from this machine (tests/test_metrics.py);
    # the test client is local, so every persona gets it.
    "metrics.scrape": EVERYONE,
    "home.favicon": EVERYONE,
    "cases.index": CASE_READERS,
    "cases.enrol": SITE_STAFF,
    "cases.show": CASE_READERS,
    "cases.register_unit": UNIT_REGISTRARS,
    "cases.correct_patient": SITE_STAFF,
    "admin.user_list": ADMIN,
    "admin.grant": ADMIN,
    "admin.revoke": ADMIN,
    "admin.set_active": ADMIN,
    "admin.unlock": ADMIN,
    "admin.token_list": ADMIN,
    "admin.revoke_token": ADMIN,
    "admin.reset_password": ADMIN,
    "admin.end_sessions": ADMIN,
    "admin.set_global_admin": frozenset({"root"}),  # only a global administrator
    "admin.audit_trail": frozenset({"admin", "root", "qa"}),
    "admin.audit_csv": frozenset({"admin", "root", "qa"}),
    "admin.audit_json": frozenset({"admin", "root", "qa"}),
    "admin.outbox_messages": frozenset({"root"}),  # only a global administrator
    "account.password": LOGGED_IN,
    "account.token_list": LOGGED_IN,
    # A token is revoked by the person it acts as (staff2 here) or their administrator.
    "account.revoke_token": frozenset({"staff2", "admin", "root"}),
    "api.openapi_document": EVERYONE,
    "api.list_cases": CASE_READERS,
    "api.enrol": SITE_STAFF,
    "api.get_case": CASE_READERS,
    "api.register_unit": UNIT_REGISTRARS,
    "api.post_scan": SCANNERS,
    "api.post_logger_file": LOGGER_UPLOADERS,
    "api.post_readings": LOGGER_UPLOADERS,
    "shipments.index": SHIPMENT_VIEWERS,
    "shipments.open_shipment": SHIPMENT_OPENERS,
    "shipments.show": SHIPMENT_VIEWERS,
    "shipments.chart_svg": SHIPMENT_VIEWERS,
    "shipments.preview_file": LOGGER_UPLOADERS,
    "shipments.commit_file": LOGGER_UPLOADERS,
    "shipments.check_clock": LOGGER_UPLOADERS,
    "shipments.raw_file": SHIPMENT_VIEWERS,
    "dashboard.index": CASE_READERS,
    "alarms.index": ALARM_VIEWERS,
    "alarms.show": ALARM_VIEWERS,
    "alarms.rule_json": ALARM_VIEWERS,
    "alarms.acknowledge": ALARM_VIEWERS,
    "alarms.resolve": frozenset({"qa"}),
    "alarms.decide": frozenset({"qa"}),
    "scan.page": SCANNERS,
    "scan.judge": SCANNERS,
    "scan.decode": SCANNERS,
    "scan.token": SCANNERS,
    "scan.signed_in": SCANNERS,
    "api.get_unit": CASE_READERS,
    "api.parse_identifier": LOGGED_IN,
    "labels.case_labels": LABEL_PRINTERS,
    "labels.print_labels": LABEL_PRINTERS,
    "labels.print_again": LABEL_PRINTERS,
    "labels.reprint": LABEL_PRINTERS,
    "labels.preview": LABEL_PRINTERS,
    "labels.revoke": frozenset({"staff", "staff2", "outsider", "qa"}),
    "labels.verify": EVERYONE,
    "labels.verify_photo": EVERYONE,
    "labels.public_keys": EVERYONE,
}

PATIENT = PatientIdentity("Harriet Vance", date(1961, 3, 14), "MRN-0001")
PHI_TEXTS = ("Harriet Vance", "1961-03-14", "MRN-0001")


@dataclass
class Setup:
    """Real records to fill URL variables with: a case and unit at BOS (and at BER, for the
    outsider, whose own hospital it is), an API token and a role grant to revoke."""

    coi: dict[str, str]  # site code -> COI text
    serial: dict[str, str]  # site code -> unit serial text
    user_id: int
    grant_id: int
    token_id: int
    label_id: dict[str, int]  # site code -> a printed label of that site's case
    label_token: str  # the verification token of BOS's label
    shipment_id: dict[str, int]  # site code -> an open shipment of that site's case
    file_id: dict[str, int]  # site code -> a logger file stored for that shipment
    readings: dict[str, dict[str, Any]]  # site code -> a JSON readings document for it
    alarm_id: dict[str, int]  # site code -> an open alarm about that site's shipment


def enrol_case(app: Flask, session: Session, clock: FrozenClock, world: World, persona: str,
               site: str, identity: PatientIdentity = PATIENT) -> tuple[str, str]:
    """A case enrolled at `site` with one apheresis bag: (COI text, unit serial text)."""
    case = enrolment.enrol(session=session, now=clock.now(), actor=world.actor(persona),
                           cipher=app.extensions["coi.phi"], site_code=site, product_code="CARTX",
                           manufacturing_site_code="MFG", identity=identity)
    coi = coi_of(case).text
    unit = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor(persona),
                                   coi_text=coi, kind="apheresis_bag")
    session.commit()
    return coi, serial_of(unit).text


def build_setup(app: Flask, session: Session, clock: FrozenClock, world: World) -> Setup:
    """The records of `Setup`, made through the services (committed)."""
    bos = enrol_case(app, session, clock, world, "staff", "BOS")
    ber = enrol_case(app, session, clock, world, "outsider", "BER",
                     PatientIdentity("Bernd Outside", date(1970, 5, 6), "BER-0001"))
    staff2 = world.actor("staff2").user_id
    grant = session.exec(select(RoleGrant).where(RoleGrant.user_id == staff2)).one()
    _text, api_token_row = tokens.issue_token(session=session, now=clock.now(),
                                              actor=world.actor("staff2"), user_id=staff2,
                                              name="spare scanner", days=30, reason="fixture")
    token_id = api_token_row.id
    session.commit()
    printed = {site: labels.print_set(session=session, now=clock.now(), actor=world.actor(who),
                                      signer=app.extensions["coi.signer"], coi_text=coi,
                                      output="png", size="4x2", include_wristband=False,
                                      reason=None)
               for site, who, coi in (("BOS", "staff", bos[0]), ("BER", "outsider", ber[0]))}
    session.commit()
    token = payload.token_from_text(printed["BOS"].labels[0].qr)
    assert token
    shipment_id, file_id, readings, alarm_id = {}, {}, {}, {}
    for site, who, coi in (("BOS", "staff", bos[0]), ("BER", "outsider", ber[0])):
        shipment = shipments.open_shipment(
            session=session, now=clock.now(), actor=world.actor(who),
            profiles=app.extensions["coi.profiles"], coi_text=coi, leg="outbound",
            loggers=[shipments.LoggerSpec(f"LOG-{site}")], shipper_id=None, profile_name=None, eta=None)
        readings[site] = {"logger": f"LOG-{site}", "readings": [
            {"at": clock.now().isoformat(), "celsius": 5.0}]}
        stored = intake.store(session=session, now=clock.now(), actor=world.actor(who),
                               shipment_id=shipment.id, via="api", filename="first.json",  # type: ignore[arg-type]
                               stream=io.BytesIO(json.dumps(readings[site] | {"n": 1}).encode()))
        shipment_id[site], file_id[site] = shipment.id, stored.file.id
        alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="temperature",
                                   code="excursion_single", severity="major", summary="test",
                                   rule={"rule": "test"}, case_id=shipment.case_id,
                                   shipment_id=shipment.id)
        alarm_id[site] = alarm.id  # type: ignore[union-attr]
    session.commit()
    return Setup(coi={"BOS": bos[0], "BER": ber[0]}, serial={"BOS": bos[1], "BER": ber[1]},
                 user_id=staff2, grant_id=grant.id, token_id=token_id,  # type: ignore[arg-type]
                 label_id={site: job.rows[0].id for site, job in printed.items()},  # type: ignore[misc]
                 label_token=token, shipment_id=shipment_id,  # type: ignore[arg-type]
                 file_id=file_id, readings=readings, alarm_id=alarm_id)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def access_template(databases: Databases, world_template: Template[World]) -> Template[Setup]:
    """The world and the records of `Setup`, made once per run."""
    return databases.build("access", world_template, lambda app, session, clock: build_setup(
        app, session, clock, world_template.records))


@pytest.fixture
def template(template: Template[Any], request: pytest.FixtureRequest) -> Template[Any]:
    if "setup" in request.fixturenames:
        return request.getfixturevalue("access_template")  # type: ignore[no-any-return]
    return template


@pytest.fixture
def setup(template: Template[Any], access_template: Template[Setup], database_url: str) -> Setup:
    """Real records to fill URL variables with, in the test's database (a copy of the access
    template's); the test's own copy of their ids and texts."""
    assert template is access_template, f"the test's database is a copy of {template.name}"
    return copy.deepcopy(access_template.records)


# ---------------------------------------------------------------- every route, every persona

def home_site(persona: str) -> str:
    """The hospital whose records a persona works with: their own if they are hospital staff."""
    grant = PERSONAS[persona]
    return grant[0] if grant and persona in SITE_STAFF else "BOS"


def url_values(rule_arguments: set[str], setup: Setup, persona: str) -> dict[str, Any]:
    site = home_site(persona) if persona != ANONYMOUS else "BOS"
    known = {"coi": setup.coi[site], "serial": setup.serial[site], "user_id": setup.user_id,
             "grant_id": setup.grant_id, "token_id": setup.token_id,
             "label_id": setup.label_id[site], "token": setup.label_token,
             "shipment_id": setup.shipment_id[site], "file_id": setup.file_id[site],
             "alarm_id": setup.alarm_id[site]}
    unknown = rule_arguments - known.keys()
    assert not unknown, f"the access test does not know what to put in {sorted(unknown)}"
    return {name: known[name] for name in rule_arguments}


def web_form(endpoint: str, persona: str, setup: Setup, world: World) -> dict[str, str]:
    """A valid form for each POST endpoint, so an allowed persona's request can succeed."""
    site = home_site(persona) if persona != ANONYMOUS else "BOS"
    bos = str(world.sites["BOS"].id)
    return {
        "auth.login": {"username": persona if persona != ANONYMOUS else "staff",
                       "password": PASSWORD},
        "auth.logout": {},
        "cases.enrol": {"site": site, "product": "CARTX", "manufacturing_site": "MFG",
                        "name": "New Patient", "birth_date": "1980-01-01", "mrn": "MRN-NEW"},
        "cases.register_unit": {"kind": unit_kind(persona)},
        "cases.correct_patient": {"name": "Corrected Name", "reason": "typo at intake",
                                  "password": PASSWORD},
        "admin.user_list": {"username": "newcomer", "full_name": "New Comer",
                            "password": PASSWORD, "reason": "joined the team"},
        "admin.grant": {"site": bos, "role": "qa", "reason": "covers QA"},
        "admin.revoke": {"reason": "left the team"},
        "admin.set_active": {"active": "0", "reason": "left the team"},
        "admin.reset_password": {"reason": "forgot it"},
        "admin.end_sessions": {"reason": "phone lost"},
        "admin.set_global_admin": {"value": "1", "reason": "covers for the operator"},
        "account.password": {"current": PASSWORD, "new": "violet tundra quarry 88",
                             "repeated": "violet tundra quarry 88"},
        "account.token_list": {"name": "scanner 2", "days": "30", "scopes": "scan",
                               "reason": "new device"},
        "account.revoke_token": {"reason": "device lost"},
        "admin.unlock": {"reason": "forgot the password"},
        "admin.revoke_token": {"reason": "device lost"},
        "labels.print_labels": {"output": "png", "size": "2x1", "wristband": "1",
                                "reason": "bag label smudged"},
        "labels.print_again": {"output": "pdf", "label": str(setup.label_id[site])},
        "labels.reprint": {"output": "png", "reason": "label torn", "coi": setup.coi[site]},
        "labels.revoke": {"category": "damaged", "reason": "label torn", "coi": setup.coi[site]},
        "labels.verify_photo": {"photo": (io.BytesIO(_photo()), "label.png")},
        "scan.decode": {"frame": (io.BytesIO(_photo()), "frame.png")},
        "shipments.open_shipment": {"leg": "return" if persona == "coordinator" else "outbound",
                                    "loggers": "LOG-NEW", "zone": "UTC"},
        "shipments.preview_file": {"file": (io.BytesIO(readings_file(setup, site)), "r.json")},
        "shipments.commit_file": {"file": (io.BytesIO(readings_file(setup, site)), "r.json")},
        "shipments.check_clock": {"serial": f"LOG-{site}", "handoff": "dispatch",
                                  "shown": "2026-11-22T10:00:00"},
        "alarms.acknowledge": {"comment": "checked the shipper"},
        "alarms.resolve": {"outcome": "accepted", "comment": "within stability data",
                           "password": PASSWORD},
        "alarms.decide": {"outcome": "accepted", "comment": "investigation closed",
                          "password": PASSWORD},
    }[endpoint]


def readings_file(setup: Setup, site: str) -> bytes:
    return json.dumps(setup.readings[site]).encode()


JSON_PAGES = {"scan.judge"}
# POSTs answered where they are sent: the scan page's and upload box's JSON calls, and the
# label check of a photo, which reads and records nothing.
ANSWERED_IN_PLACE = {"scan.judge", "scan.decode", "shipments.preview_file",
                     "shipments.commit_file", "labels.verify_photo"}
SCAN_ENDPOINTS = {"scan.judge", "api.post_scan"}


def scan_body(persona: str, setup: Setup) -> dict[str, Any]:
    """A scan of the persona's hospital's unit, judged code by code: any scanner gets a
    verdict (a refusal is an answer, recorded, not an error)."""
    site = home_site(persona) if persona != ANONYMOUS else "BOS"
    return {"scans": [{"text": setup.serial[site]}], "partial": True,
            "idempotency_key": f"access-{persona}-0001", "device_at": "2026-11-22T10:00:00+01:00"}


def unit_kind(persona: str) -> str:
    """A kind the persona may register: manufacturing registers the drug product."""
    return "drug_product_bag" if persona == "coordinator" else "sample"


def _photo() -> bytes:
    out = io.BytesIO()
    qrcode.make("HELLO").save(out)
    return out.getvalue()


def api_body(endpoint: str, persona: str, setup: Setup) -> dict[str, Any]:
    site = home_site(persona) if persona != ANONYMOUS else "BOS"
    bodies: dict[str, dict[str, Any]] = {
        "api.enrol": {"site": site, "product": "CARTX", "manufacturing_site": "MFG",
                      "patient": {"name": "New Patient", "birth_date": "1980-01-01",
                                  "mrn": "MRN-NEW"}},
        "api.register_unit": {"kind": unit_kind(persona)},
        "api.parse_identifier": {"text": setup.coi["BOS"]},
        "api.post_scan": scan_body(persona, setup),
        "api.post_logger_file": setup.readings[site],
        "api.post_readings": setup.readings[site],
    }
    return bodies[endpoint]


def login_redirect_target(response: Any) -> str | None:
    """The `next` of a redirect to the login page (\"\" if it has none); None if the response
    is not a redirect to the login page."""
    if response.status_code not in (301, 302, 303, 307, 308):
        return None
    location = urlsplit(response.headers["Location"])
    if location.path != "/login":
        return None
    return parse_qs(location.query).get("next", [""])[0]


def request_as(client: FlaskClient, persona: str, api: bool, token: str | None, method: str,
               url: str, endpoint: str, setup: Setup, world: World) -> Any:
    if api:
        headers = bearer(token) if token else {}
        if method == "GET":
            return client.get(url, headers=headers)
        return client.post(url, json=api_body(endpoint, persona, setup), headers=headers)
    if method == "GET":
        return client.get(url)
    # A browser posts a form carrying the CSRF token of a page it was shown.
    page = client.get("/login" if persona == ANONYMOUS else "/")
    csrf = CSRF.search(page.get_data(as_text=True))
    assert csrf, "no page to take a CSRF token from"
    if endpoint in JSON_PAGES:  # the scan page's script posts JSON with the token in a header
        return client.post(url, json=scan_body(persona, setup),
                           headers={"X-CSRFToken": csrf.group(1), "Accept": "application/json"})
    return client.post(url, data={**web_form(endpoint, persona, setup, world),
                                  "csrf_token": csrf.group(1)})


def test_every_route_has_an_access_decision(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert sorted(endpoints - EXPECTED.keys()) == [], "routes with no access decision in EXPECTED"
    assert sorted(EXPECTED.keys() - endpoints) == [], "EXPECTED names routes the app no longer has"


@pytest.mark.parametrize("persona", sorted(EVERYONE))
@pytest.mark.parametrize("endpoint", sorted(EXPECTED))
def test_each_persona_reaches_exactly_the_routes_the_table_allows(
        endpoint, persona, app, client, session, clock, world, setup):
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint]
    assert rules, f"the app has no endpoint {endpoint}"
    api = endpoint.startswith("api.")
    token = None
    if persona != ANONYMOUS:
        if api:
            token = api_token(session, clock, world, persona)
        else:
            assert login(client, persona).status_code == 302
    allowed = persona in EXPECTED[endpoint]
    for rule in rules:
        url = app.url_map.bind("localhost").build(
            endpoint, url_values(set(rule.arguments), setup, persona))
        for method in sorted(rule.methods & {"GET", "POST"}):  # type: ignore[operator]
            response = request_as(client, persona, api, token, method, url, endpoint, setup,
                                  world)
            what = f"{persona} {method} {url} -> {response.status_code}"
            if allowed and endpoint == "auth.logout":
                assert login_redirect_target(response) == "", what  # logged out, sent to log in
                assert login_redirect_target(client.get("/")) == "/", "still logged in after logout"
            elif allowed and persona == "courier" and endpoint in SCAN_ENDPOINTS:
                # The role may scan; but no handoff waits for the courier on this case, so it
                # is not theirs to be judged against: the answer of an unknown code.
                assert response.status_code == 404, what
                assert response.get_json()["code"] == "unknown_code", what
            elif allowed:
                assert response.status_code not in (401, 403), what
                assert login_redirect_target(response) is None, what
                assert response.status_code < 400, what  # valid input: the request works
                if method == "POST" and not api and endpoint not in ANSWERED_IN_PLACE:
                    # Post/redirect/get: a reload of the page shown after it sends nothing
                    # again (a file download is no page to reload).
                    attachment = "attachment" in response.headers.get("Content-Disposition", "")
                    assert response.status_code in (302, 303) or attachment, what
            elif persona == ANONYMOUS and api:
                assert response.status_code == 401, what
                assert response.content_type == "application/problem+json", what
            elif persona == ANONYMOUS and method == "POST":
                # A POST's own address is no page to come back to after the login (a GET of
                # it is a 405): the scan page's calls are told to log in; a form, to log in
                # and go back to the page of the form (unknown here: the home page).
                if response.content_type == "application/problem+json":
                    assert response.status_code == 401, what
                else:
                    target = login_redirect_target(response)
                    assert target is not None, what
                    assert target != urlsplit(url).path or "GET" in rule.methods, what
            elif persona == ANONYMOUS:
                assert login_redirect_target(response) == urlsplit(url).path, what
            else:
                assert response.status_code == 403, what


# ---------------------------------------------------------------- site scoping

def test_outsider_cannot_open_another_hospitals_case_page(client, world, setup):
    login(client, "outsider")
    response = client.get(f"/cases/{setup.coi['BOS']}")
    assert response.status_code == 404
    assert "Harriet Vance" not in response.get_data(as_text=True)


def test_outsider_cannot_read_another_hospitals_case_or_unit_through_the_api(
        client, session, clock, world, setup):
    token = api_token(session, clock, world, "outsider")
    case = client.get(f"/api/v1/cases/{setup.coi['BOS']}", headers=bearer(token))
    unit = client.get(f"/api/v1/units/{setup.serial['BOS']}", headers=bearer(token))
    assert (case.status_code, unit.status_code) == (404, 404)
    assert "Harriet Vance" not in case.get_data(as_text=True)
    assert setup.serial["BOS"] not in unit.get_data(as_text=True)


def test_outsider_cannot_register_units_on_another_hospitals_case(
        client, session, clock, world, setup):
    units = count(session, Unit)
    token = api_token(session, clock, world, "outsider")
    api = client.post(f"/api/v1/cases/{setup.coi['BOS']}/units", json={"kind": "sample"},
                      headers=bearer(token))
    assert api.status_code in (403, 404)
    login(client, "outsider")
    page = client.get("/")
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    web = client.post(f"/cases/{setup.coi['BOS']}/units",
                      data={"kind": "sample", "csrf_token": csrf}, follow_redirects=True)
    assert web.status_code in (403, 404)
    assert count(session, Unit) == units


def test_registering_units_does_not_tell_an_outsider_whether_a_case_exists(
        client, session, clock, world, setup):
    # COI identifiers are sequential per facility: a different answer for someone else's case
    # than for a missing one would let an outsider count another hospital's patients.
    token = api_token(session, clock, world, "outsider")
    bos = setup.coi["BOS"]
    known = CoiId.parse(bos)
    missing = CoiId.issue(known.facility, 2000 + int(known.year), 999).text  # never enrolled
    existing = client.post(f"/api/v1/cases/{bos}/units", json={"kind": "sample"},
                           headers=bearer(token))
    absent = client.post(f"/api/v1/cases/{missing}/units", json={"kind": "sample"},
                         headers=bearer(token))
    assert existing.status_code == absent.status_code == 404
    assert existing.get_json()["code"] == absent.get_json()["code"]


def test_outsider_case_list_shows_none_of_another_hospitals_cases(
        client, session, clock, world, setup):
    login(client, "outsider")
    page = client.get("/cases").get_data(as_text=True)
    assert setup.coi["BER"] in page  # their own hospital's case is listed
    assert setup.coi["BOS"] not in page and "Boston Hospital" not in page
    token = api_token(session, clock, world, "outsider")
    listed = client.get("/api/v1/cases", headers=bearer(token)).get_json()["cases"]
    assert [c["coi"] for c in listed] == [setup.coi["BER"]]


@pytest.mark.parametrize("persona", ["coordinator", "qa"])
def test_manufacturing_sees_the_case_it_makes_but_no_patient_identity(
        persona, client, session, clock, world, setup):
    login(client, persona)
    response = client.get(f"/cases/{setup.coi['BOS']}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert CoiId.parse(setup.coi["BOS"]).display in page
    assert "Identifying data is shown only to staff of the treating site" in page
    for phi in PHI_TEXTS:
        assert phi not in page
    token = api_token(session, clock, world, persona)
    document = client.get(f"/api/v1/cases/{setup.coi['BOS']}", headers=bearer(token))
    assert document.status_code == 200
    assert document.get_json()["coi"] == setup.coi["BOS"]
    assert "patient" not in document.get_json()
    for phi in PHI_TEXTS:
        assert phi not in document.get_data(as_text=True)
    unit = client.get(f"/api/v1/units/{setup.serial['BOS']}", headers=bearer(token))
    assert unit.status_code == 200 and unit.get_json()["coi"] == setup.coi["BOS"]


def test_staff_at_the_treating_site_see_the_patient_on_the_page_and_in_the_api(
        client, session, clock, world, setup):
    login(client, "staff2")  # not the person who enrolled: the site's staff
    page = client.get(f"/cases/{setup.coi['BOS']}").get_data(as_text=True)
    for phi in PHI_TEXTS:
        assert phi in page
    token = api_token(session, clock, world, "staff2")
    document = client.get(f"/api/v1/cases/{setup.coi['BOS']}", headers=bearer(token)).get_json()
    assert document["patient"] == {"name": "Harriet Vance", "birth_date": "1961-03-14",
                                   "mrn": "MRN-0001"}


# ---------------------------------------------------------------- PHI never in lists

@pytest.mark.parametrize("persona", sorted(EVERYONE))
def test_case_lists_never_show_a_patient_name(persona, app, client, session, clock, world,
                                               setup):
    token = api_token(session, clock, world, persona) if persona != ANONYMOUS else None
    if persona != ANONYMOUS:
        login(client, persona)
    page = client.get("/cases", follow_redirects=True).get_data(as_text=True)
    listed = client.get("/api/v1/cases", headers=bearer(token) if token else {})
    for text in (page, listed.get_data(as_text=True)):
        for phi in (*PHI_TEXTS, "Bernd Outside", "BER-0001"):
            assert phi not in text
    if persona in CASE_READERS:  # the list is there, just without names
        assert listed.status_code == 200 and listed.get_json()["cases"]


# ---------------------------------------------------------------- token scopes

@pytest.mark.parametrize("scope", sorted(SCOPES))
@pytest.mark.parametrize("endpoint", sorted(e for e in EXPECTED if e.startswith("api.")))
def test_a_token_reaches_exactly_the_api_routes_its_scope_allows(
        endpoint, scope, app, client, session, clock, world, setup):
    # Staff (and the coordinator, for the coordinator's routes) with a token of one scope:
    # the roles allow the route, so only the scope decides.
    persona = "staff" if "staff" in EXPECTED[endpoint] else "coordinator"
    token = api_token(session, clock, world, persona, scopes=[scope])
    name = declared_permission(app.view_functions[endpoint])
    allowed = name in (PUBLIC, AUTHENTICATED) or name in SCOPES[scope]
    for rule in (r for r in app.url_map.iter_rules() if r.endpoint == endpoint):
        url = app.url_map.bind("localhost").build(
            endpoint, url_values(set(rule.arguments), setup, persona))
        for method in sorted(rule.methods & {"GET", "POST"}):  # type: ignore[operator]
            response = request_as(client, persona, True, token, method, url, endpoint, setup,
                                  world)
            what = f"{scope} token {method} {url} -> {response.status_code}"
            if allowed:
                assert response.status_code < 400, what
            else:
                assert response.status_code == 403, what
                assert "scopes" in response.get_json()["detail"], what
