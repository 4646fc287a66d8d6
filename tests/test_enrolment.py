"""Enrolment and unit registration, through the web UI and the API."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from coi.core.access import Actor
from coi.core.errors import Conflict
from coi.core.identifiers import CoiId, UnitSerial, parse_scan
from coi.core.phi import PatientIdentity
from coi.db import for_writing
from coi.models import AuditEntry, Case, Patient, Unit
from coi.services import enrolment
from tests.databases import ENGINE
from tests.helpers import ENROL_FORM, api_token, bearer, count, enrol_body, login, post_form


def test_site_staff_enrols_a_patient_in_the_ui_and_sees_the_new_coi(client, world, session):
    login(client, "staff")
    response = post_form(client, "/cases/new", "/cases/new", ENROL_FORM)
    assert response.status_code == 302
    case = session.exec(select(Case)).one()
    coi = CoiId(case.coi[:5], case.coi[5:7], case.coi[7:])
    assert response.headers["Location"] == f"/cases/{coi.text}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert coi.display in page and "Harriet Vance" in page
    assert case.coi.startswith("A999826")  # facility of the site, year of the clock
    assert isinstance(parse_scan(coi.text), CoiId)


def test_enrolment_through_the_api_returns_the_case_with_patient_for_the_site(
        client, world, session, clock):
    token = api_token(session, clock, world, "staff")
    response = client.post("/api/v1/cases", json=enrol_body(), headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["patient"] == {"name": "Harriet Vance", "birth_date": "1961-03-14",
                               "mrn": "MRN-0001"}
    assert response.headers["Location"] == f"/api/v1/cases/{body['coi']}"
    assert CoiId.parse(body["coi"]).facility == "A9998"


def test_units_get_serials_that_name_their_case(client, world, session, clock):
    token = api_token(session, clock, world, "staff")
    coi = client.post("/api/v1/cases", json=enrol_body(), headers=bearer(token)).get_json()["coi"]
    serials = [client.post(f"/api/v1/cases/{coi}/units", json={"kind": kind},
                           headers=bearer(token)).get_json()["serial"]
               for kind in ("apheresis_bag", "sample", "sample")]
    parsed = [UnitSerial.parse(s) for s in serials]
    assert [p.coi.text for p in parsed] == [coi] * 3
    assert [(p.kind, p.sequence) for p in parsed] == [
        ("apheresis_bag", 1), ("sample", 1), ("sample", 2)]
    case = client.get(f"/api/v1/cases/{coi}", headers=bearer(token)).get_json()
    assert [u["serial"] for u in case["units"]] == sorted(serials, key=lambda s: s[13:])


def test_duplicate_mrn_at_one_site_is_refused_and_changes_nothing(client, world, session, clock):
    token = api_token(session, clock, world, "staff")
    assert client.post("/api/v1/cases", json=enrol_body(), headers=bearer(token)).status_code == 201
    before = (count(session, Case), count(session, Patient), count(session, AuditEntry))
    again = client.post("/api/v1/cases", json=enrol_body(mrn=" mrn-0001 ", name="Other Name"),
                        headers=bearer(token))
    assert again.status_code == 409
    assert again.content_type == "application/problem+json"
    assert again.get_json()["code"] == "duplicate_mrn"
    assert "already enrolled" in again.get_json()["detail"]
    assert (count(session, Case), count(session, Patient), count(session, AuditEntry)) == before


def test_same_mrn_at_another_site_is_another_patient(client, world, session, clock):
    for persona, site in (("staff", "BOS"), ("outsider", "BER")):
        token = api_token(session, clock, world, persona)
        body = enrol_body() | {"site": site}
        assert client.post("/api/v1/cases", json=body, headers=bearer(token)).status_code == 201
    assert count(session, Patient) == 2


def _enrol_many(engine, actor: Actor, cipher, clock, per_thread: int, out: list, errors: list):
    try:
        for number in range(per_thread):
            with Session(for_writing(engine), expire_on_commit=False) as db:
                case = enrolment.enrol(
                    session=db, now=clock.now(), actor=actor, cipher=cipher, site_code="BOS",
                    product_code="CARTX", manufacturing_site_code="MFG",
                    identity=PatientIdentity("P", date(1980, 1, 1),
                                             f"{threading.get_ident()}-{number}"))
                db.commit()
                out.append(case.coi)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_concurrent_enrolments_never_share_a_coi_identifier(app, world, clock):
    engine, cipher = app.extensions["coi.engine"], app.extensions["coi.phi"]
    threads_n, per_thread = (8, 10) if ENGINE == "postgresql" else (4, 5)
    out: list[str] = []
    errors: list[Exception] = []
    threads = [threading.Thread(target=_enrol_many, args=(engine, world.actor("staff"), cipher,
                                                          clock, per_thread, out, errors))
               for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(out) == threads_n * per_thread
    assert len(set(out)) == len(out)
    assert sorted(int(c[7:], 36) for c in out) == list(range(1, len(out) + 1))


def test_concurrent_enrolment_of_one_mrn_makes_one_patient(app, world, clock):
    engine, cipher = app.extensions["coi.engine"], app.extensions["coi.phi"]
    results: list[str] = []
    barrier = threading.Barrier(4)

    def enrol_same() -> None:
        barrier.wait()
        with Session(for_writing(engine)) as db:
            try:
                enrolment.enrol(session=db, now=clock.now(), actor=world.actor("staff"),
                                cipher=cipher, site_code="BOS", product_code="CARTX",
                                manufacturing_site_code="MFG",
                                identity=PatientIdentity("Same", date(1980, 1, 1), "SAME-1"))
                db.commit()
                results.append("enrolled")
            except Conflict:
                results.append("refused")

    threads = [threading.Thread(target=enrol_same) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["enrolled", "refused", "refused", "refused"]
    with Session(engine) as db:
        assert db.exec(select(func.count()).select_from(Patient)).one() == 1


def test_unit_kinds_count_separately_up_to_99(session, world, clock, app):
    cipher = app.extensions["coi.phi"]
    staff = world.actor("staff")
    case = enrolment.enrol(session=session, now=clock.now(), actor=staff, cipher=cipher,
                           site_code="BOS", product_code="CARTX", manufacturing_site_code="MFG",
                           identity=PatientIdentity("P", date(1980, 1, 1), "U-1"))
    coi = CoiId(case.coi[:5], case.coi[5:7], case.coi[7:]).text
    for _ in range(99):
        enrolment.register_unit(session=session, now=clock.now(), actor=staff, coi_text=coi,
                                kind="sample")
    with pytest.raises(Conflict, match="already has 99 units"):
        enrolment.register_unit(session=session, now=clock.now(), actor=staff, coi_text=coi,
                                kind="sample")
    session.commit()
    assert count(session, Unit) == 99


def test_the_coi_year_is_the_enrolling_sites_local_year(session, world, clock, app):
    from datetime import UTC, datetime

    clock.set(datetime(2027, 1, 1, 3, 30, tzinfo=UTC))  # 22:30 on New Year's Eve in Boston
    case = enrolment.enrol(session=session, now=clock.now(), actor=world.actor("staff"),
                           cipher=app.extensions["coi.phi"], site_code="BOS",
                           product_code="CARTX", manufacturing_site_code="MFG",
                           identity=PatientIdentity("P", date(1980, 1, 1), "NYE-1"))
    assert case.coi[5:7] == "26"
    clock.set(datetime(2027, 1, 1, 5, 0, tzinfo=UTC))  # 00:00 in Boston: the new year
    case = enrolment.enrol(session=session, now=clock.now(), actor=world.actor("staff"),
                           cipher=app.extensions["coi.phi"], site_code="BOS",
                           product_code="CARTX", manufacturing_site_code="MFG",
                           identity=PatientIdentity("P", date(1980, 1, 1), "NY-2"))
    assert case.coi[5:7] == "27" and int(case.coi[7:], 36) == 1  # a new year starts at 1
