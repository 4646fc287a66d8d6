"""The audit trail as its readers meet it: each row concerns the sites it was written for,
readers see their own sites' rows (and their own doings), global readers everything; every
kind of record can be filtered, pages of 50 with a total, and an export holding all of a
filter's rows, itself kept in the trail."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import re
from typing import Any

import pytest
from sqlmodel import Session, select

from coi.core.access import Actor
from coi.core.clock import FrozenClock
from coi.core.workflow import Entry
from coi.models import AuditEntry, coi_of, serial_of
from coi.services import (
    alarms,
    audit,
    audit_export,
    custody,
    enrolment,
    masterdata,
    patients,
    tokens,
    users,
)
from coi.services.audit import AuditFilter, AuditRow
from coi.services.loggers import rawfiles
from tests.helpers import PASSWORD, World, csv_file, login, make_case, open_for, store


def person(session: Session, clock: FrozenClock, world: World, username: str, site: str,
           role: str) -> Actor:
    """Someone beyond the shared personas (a Berlin QA, a Berlin administrator), committed."""
    user = users.create_user(session=session, now=clock.now(), actor=None, username=username,
                             full_name=username.replace(".", " ").title(), password=PASSWORD,
                             reason="test person")
    users.grant_role(session=session, now=clock.now(), actor=None, user_id=user.id,  # type: ignore[arg-type]
                     site_id=world.sites[site].id, role=role, reason="test person")  # type: ignore[arg-type]
    session.commit()
    return users.actor_for(session=session, user=user)


def global_reader(world: World) -> Actor:
    return dataclasses.replace(world.actor("admin"), global_admin=True)


def read_all(session: Session, reader: Actor, **wanted: Any) -> list[AuditRow]:
    """Every row `reader` sees under the filter, page after page."""
    session.rollback()
    rows: list[AuditRow] = []
    before = None
    while True:
        shown = audit.page(session=session, actor=reader, wanted=AuditFilter(**wanted),
                           before=before)
        rows += shown.rows
        if shown.older is None:
            return rows
        before = shown.older


def note(session: Session, clock: FrozenClock, count: int, *, site: str = "BER",
         reason: str = "paging note") -> None:
    """`count` changes of a site's record, by the system (each concerns that site)."""
    for i in range(count):
        audit.record(session=session, now=clock.now(), actor=None, entity="site", entity_id=site,
                     action="update", changes={"note": (None, i)}, reason=f"{reason} {i:03d}")
    session.commit()


def correct_patient(app: Any, session: Session, world: World, clock: FrozenClock, case: Any,
                    reason: str) -> None:
    patients.correct(session=session, now=clock.now(), actor=world.actor("staff"),
                     cipher=app.extensions["coi.phi"], coi_text=coi_of(case).text,
                     name="Anne Example", birth_date=None, mrn=None, reason=reason,
                     password=PASSWORD)
    session.commit()


# ------------------------------------------------------------------ whose rows

def test_a_berlin_qa_does_not_see_bostons_patient_corrections(app, client, session, world, clock):
    case = make_case(app, session, world, clock)
    correct_patient(app, session, world, clock, case, "typo at intake in Boston")
    berlin_qa = person(session, clock, world, "berlin.qa", "BER", "qa")
    boston_qa = person(session, clock, world, "boston.qa", "BOS", "qa")

    assert read_all(session, berlin_qa, entity="patient") == []
    seen = read_all(session, boston_qa, entity="patient")
    assert {(row.action, row.field) for row in seen} >= {("create", "phi"), ("update", "name")}
    assert {row.sites for row in seen} == {("BOS",)}
    login(client, "berlin.qa")
    page = client.get("/admin/audit?entity=patient").get_data(as_text=True)
    assert "typo at intake in Boston" not in page and "No entries." in page


def test_a_boston_admin_sees_bostons_grant_changes_but_not_berlins(client, session, world, clock):
    berlin_admin = person(session, clock, world, "berlin.admin", "BER", "admin")
    users.grant_role(session=session, now=clock.now(), actor=world.actor("admin"),
                     user_id=world.actor("staff2").user_id, site_id=world.sites["BOS"].id,
                     role="qa", reason="Boston QA cover")
    users.grant_role(session=session, now=clock.now(), actor=berlin_admin,
                     user_id=world.actor("outsider").user_id, site_id=world.sites["BER"].id,
                     role="qa", reason="Berlin QA cover")
    session.commit()

    boston = {row.reason for row in read_all(session, world.actor("admin"), entity="role_grant")}
    berlin = {row.reason for row in read_all(session, berlin_admin, entity="role_grant")}
    assert "Boston QA cover" in boston and "Berlin QA cover" not in boston
    assert "Berlin QA cover" in berlin and "Boston QA cover" not in berlin
    login(client, "admin")
    page = client.get("/admin/audit?entity=role_grant").get_data(as_text=True)
    assert "Boston QA cover" in page and "Berlin QA cover" not in page


def test_a_global_admin_sees_every_sites_rows_and_those_of_no_site(session, world):
    every = read_all(session, global_reader(world))
    assert len(every) == len(session.exec(select(AuditEntry)).all())
    assert {"BOS", "BER", "MFG", "DEP"} <= {site for row in every for site in row.sites}
    products = [row for row in every if row.entity == "product"]
    assert products and all(row.sites == () for row in products)
    assert not [row for row in read_all(session, world.actor("admin")) if row.entity == "product"]


def test_a_global_administrator_signed_in_reads_every_site_and_the_global_rows(client, world):
    login(client, "root")
    products = client.get("/admin/audit?entity=product").get_data(as_text=True)
    assert "route_sha256" in products and "<td>(global)</td>" in products
    grants = client.get("/admin/audit?entity=role_grant").get_data(as_text=True)
    assert "outsider@BER" in grants and "staff@BOS" in grants and "qa@MFG" in grants


def test_readers_see_their_own_doings_even_where_no_site_is_concerned(session, world, clock):
    masterdata.create_product(session=session, now=clock.now(), actor=world.actor("admin"),
                              code="CARTY", name="CAR-T two", description="", reason="new program")
    session.commit()
    berlin_admin = person(session, clock, world, "berlin.admin", "BER", "admin")
    mine = read_all(session, world.actor("admin"), entity="product")
    assert [row.reason for row in mine] == ["new program", "new program"]
    assert read_all(session, berlin_admin, entity="product") == []


# ------------------------------------------------------------------ sites, at write time

def sites_of(session: Session, world: World, entity: str, entity_id: object | None = None,
             action: str | None = None) -> set[tuple[str, ...]]:
    rows = read_all(session, global_reader(world), entity=entity, action=action,
                    entity_id=None if entity_id is None else str(entity_id))
    assert rows, f"no {entity} {entity_id} rows"
    return {row.sites for row in rows}


def test_each_kind_of_record_concerns_the_sites_it_belongs_to(app, session, world, clock):
    admin = world.actor("admin")
    case = make_case(app, session, world, clock)
    unit = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                   coi_text=coi_of(case).text, kind="sample")
    session.commit()
    shipment = open_for(session, world, clock, case)
    stored = store(session, world, clock, shipment, csv_file([5.0] * 6, start=clock.now()))
    rawfiles.record_refusal(session=session, now=clock.now(), actor=world.actor("courier"),
                          shipment_id=shipment.id, filename="bad.csv",  # type: ignore[arg-type]
                          stream=io.BytesIO(b"nonsense"), reason="not a logger file")
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="temperature",
                               code="excursion_single", severity="major", summary="too warm",
                               rule={"rule": "test"}, case_id=case.id, shipment_id=shipment.id)
    newcomer = users.create_user(session=session, now=clock.now(), actor=admin,
                                 username="newcomer", full_name="New Comer", password=PASSWORD,
                                 reason="joined")
    _text, token = tokens.issue_token(session=session, now=clock.now(), actor=None,
                                      user_id=world.actor("outsider").user_id, name="scanner",
                                      days=30, reason="device")
    for who in ("staff", "courier"):
        custody.record_unplaced(session=session, now=clock.now(), actor=world.actor(who),
                                entries=[Entry(f"no case {who}")], step_name=f"step-{who}",
                                error=custody.NoCaseNamed("Nothing scanned names a case."))
    session.commit()

    case_sites = {("BOS", "MFG")}  # treating and manufacturing; the leg's ends are the same
    assert sites_of(session, world, "site", "BER") == {("BER",)}
    assert sites_of(session, world, "product", "CARTX") == {()}
    assert sites_of(session, world, "role_grant", "outsider@BER") == {("BER",)}
    assert sites_of(session, world, "patient", case.patient_id) == {("BOS",)}
    assert sites_of(session, world, "unit", serial_of(unit).text) == case_sites
    assert sites_of(session, world, "shipment", shipment.id) == case_sites
    assert sites_of(session, world, "logger_file", stored.file.id) == case_sites
    assert sites_of(session, world, "logger_file", "refused") == case_sites
    assert sites_of(session, world, "alarm", alarm.id) == case_sites  # type: ignore[union-attr]
    assert sites_of(session, world, "user", newcomer.id) == {("BOS",)}  # its creator's site
    assert sites_of(session, world, "api_token", token.id) == {("BER",)}  # its owner's site
    assert sites_of(session, world, "scan", "step-staff") == {("BOS",)}
    assert sites_of(session, world, "scan", "step-courier") == {("DEP",)}


def test_an_account_change_concerns_every_site_the_person_works_at(session, world, clock):
    users.grant_role(session=session, now=clock.now(), actor=None,
                     user_id=world.actor("staff2").user_id, site_id=world.sites["MFG"].id,
                     role="coordinator", reason="second job")
    users.set_active(session=session, now=clock.now(), actor=global_reader(world),
                     user_id=world.actor("staff2").user_id, active=False, reason="left")
    session.commit()
    assert sites_of(session, world, "user", world.actor("staff2").user_id, "update") == {
        ("BOS", "MFG")}


# ------------------------------------------------------------------ filters

def test_every_kind_of_record_in_the_trail_can_be_filtered(app, client, session, world, clock):
    case = make_case(app, session, world, clock)
    shipment = open_for(session, world, clock, case)
    store(session, world, clock, shipment, csv_file([5.0] * 6, start=clock.now()))
    alarms.raise_alarm(session=session, now=clock.now(), kind="temperature",
                       code="excursion_single", severity="major", summary="too warm in transit",
                       rule={"rule": "test"}, case_id=case.id, shipment_id=shipment.id)
    session.commit()
    kinds = audit.entities(session=session)
    assert {"alarm", "shipment", "logger_file", "patient", "site", "product", "user",
            "role_grant"} <= set(kinds)
    for kind in kinds:
        rows = read_all(session, global_reader(world), entity=kind)
        assert rows and {row.entity for row in rows} == {kind}, kind
    login(client, "qa")  # QA at the manufacturing site of the case
    for kind, text in (("alarm", "too warm in transit"), ("shipment", "Shipment opened for"),
                       ("logger_file", "Logger file for shipment")):
        response = client.get(f"/admin/audit?entity={kind}")
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and text in page, kind
        assert f"<option selected>{kind}</option>" in page


def test_filters_by_record_id_actor_action_site_and_reason(session, world, clock):
    reader = global_reader(world)
    note(session, clock, 3, site="BER", reason="Wartung")
    note(session, clock, 2, site="BOS", reason="Maintenance")
    users.grant_role(session=session, now=clock.now(), actor=world.actor("admin"),
                     user_id=world.actor("staff2").user_id, site_id=world.sites["BOS"].id,
                     role="qa", reason="cover 100%_done")
    session.commit()
    assert len(read_all(session, reader, entity="site", entity_id="BER", action="update")) == 3
    assert {row.reason for row in read_all(session, reader, actor="admin")} == {"cover 100%_done"}
    assert {row.actor_name for row in read_all(session, reader, actor="system")} == {"system"}
    assert read_all(session, reader, actor="nobody.here") == []
    assert len(read_all(session, reader, site="BOS", text="maintenance")) == 2  # any case
    assert [row.reason for row in read_all(session, reader, text="100%_")] == ["cover 100%_done"]
    assert read_all(session, reader, text="100%x") == []  # % and _ are plain characters


def test_the_date_range_is_read_in_the_readers_zone(client, session, world, clock):
    # 09:00 UTC; Boston (the admin's zone) is UTC-5 in November.
    clock.advance(hours=19, minutes=59)  # 04:59 UTC on the 23rd: 23:59 in Boston on the 22nd
    note(session, clock, 1, site="BOS", reason="late on the 22nd")
    clock.advance(minutes=1)  # midnight in Boston: the 23rd
    note(session, clock, 1, site="BOS", reason="early on the 23rd")
    admin = world.actor("admin")
    on_22nd = audit.read_filter({"to": "2026-11-22", "q": "on the"}, zone=admin.timezone)
    on_23rd = audit.read_filter({"from": "2026-11-23", "q": "on the"}, zone=admin.timezone)
    assert [r.reason for r in audit.page(session=session, actor=admin, wanted=on_22nd).rows] == [
        "late on the 22nd 000"]
    assert [r.reason for r in audit.page(session=session, actor=admin, wanted=on_23rd).rows] == [
        "early on the 23rd 000"]
    login(client, "admin")
    page = client.get("/admin/audit?from=2026-11-22+23:59&to=2026-11-22+23:59&q=on+the")
    text = page.get_data(as_text=True)
    assert "late on the 22nd" in text and "early on the 23rd" not in text
    assert "2026-11-22 23:59 EST" in text and "America/New_York" in text


BAD_FILTERS = [
    ("entity=nonsense", "'nonsense' is not a kind of record in the audit trail"),
    ("from=yesterday", "'yesterday' is not a date like 2026-11-22"),
    ("to=2026-13-01", "'2026-13-01' is not a date like 2026-11-22"),
    ("from=2026-11-23&to=2026-11-22", "The 'from' time is after the 'to' time"),
    ("site=NOPE", "No site has the code 'NOPE'"),
    ("entity_id=" + "x" * 65, "longer than 64 characters"),
]
BAD_PAGES = [
    ("before=abc", "'abc' is not a row of the audit trail"),
    ("after=-3", "'-3' is not a row of the audit trail"),
    ("before=5&after=2", "not both"),
]


@pytest.mark.parametrize("path, query, message", [
    (path, query, message) for path in ("/admin/audit", "/admin/audit.csv", "/admin/audit.json")
    for query, message in BAD_FILTERS] + [("/admin/audit", q, m) for q, m in BAD_PAGES])
def test_a_bad_filter_is_refused_with_a_clear_400(client, session, world, path, query, message):
    login(client, "admin")
    before = len(session.exec(select(AuditEntry)).all())
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    session.rollback()
    assert len(session.exec(select(AuditEntry)).all()) == before  # no export recorded


# ------------------------------------------------------------------ pages

NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREV = re.compile(r'<a rel="prev" href="([^"]+)"')


def test_pages_of_fifty_with_links_both_ways_and_the_total(client, session, world, clock):
    note(session, clock, 120)
    berlin_admin = person(session, clock, world, "berlin.admin", "BER", "admin")
    wanted = AuditFilter(text="paging note")
    first = audit.page(session=session, actor=berlin_admin, wanted=wanted)
    assert (first.total, first.first, first.last, first.newer) == (120, 1, 50, None)
    assert first.rows[0].reason == "paging note 119"  # newest first
    second = audit.page(session=session, actor=berlin_admin, wanted=wanted, before=first.older)
    third = audit.page(session=session, actor=berlin_admin, wanted=wanted, before=second.older)
    assert (second.first, second.last, third.first, third.last) == (51, 100, 101, 120)
    assert third.older is None and third.rows[-1].reason == "paging note 000"
    back = audit.page(session=session, actor=berlin_admin, wanted=wanted, after=third.newer)
    assert back.rows == second.rows

    login(client, "berlin.admin")
    page = client.get("/admin/audit?q=paging+note").get_data(as_text=True)
    assert "Rows 1–50 of 120" in page and not PREV.search(page)
    assert page.count("paging note") - page.count('value="paging note"') == 50
    for expected in ("Rows 51–100 of 120", "Rows 101–120 of 120"):
        page = client.get(NEXT.search(page).group(1).replace("&amp;", "&")).get_data(as_text=True)
        assert expected in page
    assert not NEXT.search(page) and "paging note 000" in page
    page = client.get(PREV.search(page).group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Rows 51–100 of 120" in page and "paging note 069" in page


def test_a_page_shows_the_channel_and_the_sites_of_each_row(client, session, world, clock):
    via_token = dataclasses.replace(world.actor("admin"), via="token 7 (handheld)")
    audit.record(session=session, now=clock.now(), actor=via_token, entity="site",
                 entity_id="BOS", action="update", changes={"name": ("Boston", "Boston Hospital")},
                 reason="renamed through the API")
    session.commit()
    login(client, "admin")
    page = client.get("/admin/audit?q=renamed").get_data(as_text=True)
    assert "token 7 (handheld)" in page and "<td>BOS</td>" in page


# ------------------------------------------------------------------ exports

def csv_rows(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_the_exports_hold_every_row_of_the_filter(client, session, world, clock):
    note(session, clock, 120)
    note(session, clock, 3, site="BOS")
    berlin_admin = person(session, clock, world, "berlin.admin", "BER", "admin")
    expected = read_all(session, berlin_admin, text="paging note")
    assert len(expected) == 120
    login(client, "berlin.admin")

    response = client.get("/admin/audit.csv?q=paging+note")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = csv_rows(response)
    assert [int(row["id"]) for row in rows] == [row.id for row in expected]
    assert {(row["at"], row["sites"], row["entity"]) for row in rows} == {
        ("2026-11-22T09:00:00+00:00", "BER", "site")}

    document = client.get("/admin/audit.json?q=paging+note").get_json()
    assert document["count"] == 120 and document["filter"] == {"text": "paging note"}
    assert document["exported_by"] == "berlin.admin"
    assert [entry["id"] for entry in document["entries"]] == [row.id for row in expected]
    assert document["entries"][0] | {"id": 0} == {
        "id": 0, "at": "2026-11-22T09:00:00+00:00", "actor": "system", "actor_id": None,
        "via": None, "entity": "site", "entity_id": "BER", "action": "update", "field": "note",
        "old_value": None, "new_value": "119", "reason": "paging note 119", "sites": ["BER"]}


def test_an_export_is_read_in_batches_and_ends_where_the_trail_ended(app, session, world, clock):
    note(session, clock, 23)
    reader = global_reader(world)
    export = audit_export.begin_export(session=session, now=clock.now(), actor=reader,
                                wanted=AuditFilter(text="paging"), kind="json")
    session.commit()
    note(session, clock, 5)  # after the export began: not part of it
    engine = app.extensions["coi.engine"]
    small = list(audit_export.exported_rows(engine=engine, actor=reader, export=export, batch=4))
    whole = list(audit_export.exported_rows(engine=engine, actor=reader, export=export))
    assert small == whole and len(whole) == export.total == 23


def test_the_csv_cannot_run_formulas_in_a_spreadsheet(client, session, world, clock):
    audit.record(session=session, now=clock.now(), actor=None, entity="site", entity_id="BOS",
                 action="update", changes={"name": ("-2+3", "+cmd|' /C calc'!A0"),
                                           "note": ("@SUM(A1)", "plain")},
                 reason='=HYPERLINK("http://example.com","details")')
    session.commit()
    login(client, "admin")
    rows = csv_rows(client.get("/admin/audit.csv?q=hyperlink"))
    assert [(row["old_value"], row["new_value"], row["reason"][:3]) for row in rows] == [
        ("'@SUM(A1)", "plain", "'=H"), ("'-2+3", "'+cmd|' /C calc'!A0", "'=H")]
    document = client.get("/admin/audit.json?q=hyperlink").get_json()  # not a spreadsheet
    assert document["entries"][0]["reason"].startswith("=HYPERLINK")


def test_exports_never_carry_sealed_patient_data(app, client, session, world, clock):
    case = make_case(app, session, world, clock)
    correct_patient(app, session, world, clock, case, "typo")
    login(client, "admin")
    text = client.get("/admin/audit.csv?entity=patient").get_data(as_text=True)
    assert "phi:" not in text and "[PHI, encrypted]" in text and "Anne" not in text


def test_an_export_is_kept_in_the_trail_with_its_filter(client, session, world, clock):
    login(client, "admin")
    client.get("/admin/audit.csv?entity=role_grant&from=2026-11-22")
    session.rollback()
    exports = session.exec(select(AuditEntry).where(AuditEntry.action == "export")).all()
    assert {(e.entity, e.entity_id, e.actor_name) for e in exports} == {
        ("audit_trail", "csv", "Admin Person (admin)")}
    recorded = {e.field: e.new_value for e in exports}
    assert json.loads(recorded["filter"]) == {"entity": "role_grant",
                                              "since": "2026-11-22T05:00:00+00:00"}
    assert int(recorded["rows"]) == len(read_all(session, world.actor("admin"), entity="role_grant"))
    assert {row.sites for row in read_all(session, world.actor("admin"), action="export")} == {
        ("BOS",)}
    boston_qa = person(session, clock, world, "boston.qa", "BOS", "qa")
    assert len(read_all(session, boston_qa, entity="audit_trail")) == 2  # its site's readers
