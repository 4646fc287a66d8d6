"""Shipments and their logger data: opening, custody moving them, storing files verbatim,
evaluation and alarms, and every kind of bad input refused whole."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, func, select

from coi.core.errors import Conflict, InvalidInput, NotFound
from coi.models import (
    Alarm,
    AuditEntry,
    Case,
    LoggerClockCheck,
    LoggerFile,
    LoggerFileResult,
    LoggerReading,
    Shipment,
)
from coi.services import shipments
from coi.services.loggers import clocks, evaluation, intake, rawfiles
from coi.services.shipments import LoggerSpec
from tests.helpers import (
    BERLIN,
    PROFILES,
    Flow,
    api_token,
    bearer,
    csv_file,
    login,
    make_case,
    open_for,
    store,
)

JSON = {"Accept": "application/json"}


def count(session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def shipment(app, session, world, clock) -> Shipment:
    return open_for(session, world, clock, make_case(app, session, world, clock))


# ------------------------------------------------------------------ opening


def test_a_shipment_takes_the_products_profile_for_its_leg_and_copies_it(app, session, world, clock,
                                                                       shipment):
    assert (shipment.leg, shipment.profile, shipment.state) == ("outbound", "2-8C", "open")
    assert shipment.origin_site_id == world.sites["BOS"].id
    assert shipment.destination_site_id == world.sites["MFG"].id
    rule = json.loads(shipment.profile_rule)
    assert (rule["low"], rule["high"], rule["max_single_excursion_minutes"]) == (2.0, 8.0, 30)
    history = session.exec(select(AuditEntry).where(AuditEntry.entity == "shipment")).all()
    assert {e.field for e in history} >= {"leg", "profile", "loggers"}


def test_a_case_has_one_shipment_on_its_way_at_a_time(app, session, world, clock, shipment):
    with pytest.raises(Conflict, match="not received yet"):
        open_for(session, world, clock, session.get(Case, shipment.case_id))


@pytest.mark.parametrize(("serials", "zone", "message"), [
    ((), BERLIN, "at least one"),
    (("bad\tserial",), BERLIN, "control character"),
    (("X" * 65,), BERLIN, "1 to 64 characters"),
    (("- _",), BERLIN, "no letter or digit"),
    (("A", "A"), BERLIN, "named twice"),
    (("0434 EF00", "0434-ef00"), BERLIN, "named twice"),
    (("A",), "Mars/Olympus", "not a time zone"),
])
def test_a_shipment_with_bad_loggers_is_not_opened(app, session, world, clock, serials, zone, message):
    case = make_case(app, session, world, clock)
    with pytest.raises(InvalidInput, match=message):
        open_for(session, world, clock, case, serials=serials, zone=zone)
    session.rollback()
    assert count(session, Shipment) == 0


def test_only_staff_of_the_origin_site_open_a_shipment(app, session, world, clock):
    case = make_case(app, session, world, clock)
    with pytest.raises(NotFound):  # another site's staff do not even see the case
        open_for(session, world, clock, case, persona="outsider")
    session.rollback()
    with pytest.raises(Exception, match="not allowed"):  # manufacturing does not ship outbound
        open_for(session, world, clock, case, persona="coordinator")


def test_custody_handoffs_dispatch_and_receive_the_shipment(app, session, world, clock):
    flow = Flow(app, session, world, clock)
    flow.until("pack")
    shipment = open_for(session, world, clock, flow.case)
    flow.until("pickup.give")
    session.refresh(shipment)
    assert shipment.state == "open"  # the giver's scan alone does not pass custody
    flow.until("pickup")
    session.refresh(shipment)
    assert (shipment.state, shipment.dispatched_at) == ("in_transit", clock.now())
    flow.until("deliver_manufacturing")
    session.refresh(shipment)
    assert (shipment.state, shipment.received_at) == ("received", clock.now())


# ------------------------------------------------------------------ logger clocks


@pytest.fixture
def dispatched(app, session, world, clock) -> Shipment:
    """A shipment the courier has picked up: its dispatch handoff was scanned."""
    flow = Flow(app, session, world, clock)
    flow.until("pack")
    shipment = open_for(session, world, clock, flow.case)
    flow.until("pickup")
    session.refresh(shipment)
    return shipment


def check_clock(session, world, clock, shipment, shown: str, *, handoff="dispatch", serial="LOG-1"):
    return clocks.check_clock(session=session, now=clock.now(), actor=world.actor("courier"),
                               shipment_id=shipment.id, serial=serial, handoff=handoff, shown=shown,
                               zone="America/New_York")


def test_a_clock_check_at_the_handoff_corrects_the_loggers_next_file(app, session, world, clock, dispatched):
    """The logger (zone Europe/Berlin) showed 2 min 5 s more than the server's time of the
    dispatch scan: its file's times are 125 s fast, and are stored 125 s earlier."""
    shipment = dispatched
    scan_local = shipment.dispatched_at.astimezone(ZoneInfo(BERLIN)).replace(tzinfo=None)
    shown = scan_local + timedelta(seconds=125)
    check = check_clock(session, world, clock, shipment, f"{shown:%Y-%m-%dT%H:%M:%S}")
    session.commit()
    assert (check.offset_s, check.zone, check.scan_at) == (125.0, BERLIN, shipment.dispatched_at)
    clock.advance(hours=2)
    start = shipment.dispatched_at + timedelta(minutes=10)
    stored = store(session, world, clock, shipment, csv_file([5.0] * 4, start=start))
    first = session.exec(select(LoggerReading).where(LoggerReading.file_id == stored.file.id)
                         .order_by(col(LoggerReading.at))).first()
    assert first.at == start - timedelta(seconds=125)
    report = json.loads(stored.file.report)
    assert report["clock_offset_s"] == 125.0 and "clock check" in report["meta"]["clock_offset_from"]
    entries = session.exec(select(AuditEntry).where(AuditEntry.entity == "logger_clock_check")).all()
    assert entries and {e.actor_id for e in entries} == {world.actor("courier").user_id}


@pytest.mark.parametrize(("shown", "handoff", "serial", "message"), [
    ("yesterday at noon", "dispatch", "LOG-1", "is not a time like"),
    ("{scan:%Y-%m-%dT%H:%M:%S}+01:00", "dispatch", "LOG-1", "without a UTC offset"),
    ("{day_after:%Y-%m-%dT%H:%M:%S}", "dispatch", "LOG-1", "check the date and time"),
    ("{scan:%Y-%m-%dT%H:%M:%S}", "receive", "LOG-1", "has not been scanned yet"),
    ("{scan:%Y-%m-%dT%H:%M:%S}", "dispatch", "LOG-9", "not assigned"),
    ("2026-03-29T02:30:00", "dispatch", "LOG-1", "does not exist in Europe/Berlin"),
])
def test_a_clock_check_that_cannot_be_right_is_refused(app, session, world, clock, dispatched,
                                                       shown, handoff, serial, message):
    scan = dispatched.dispatched_at.astimezone(ZoneInfo(BERLIN)).replace(tzinfo=None)
    entered = shown.format(scan=scan, day_after=scan + timedelta(days=1))
    with pytest.raises(InvalidInput, match=message):
        check_clock(session, world, clock, dispatched, entered, handoff=handoff, serial=serial)
    session.rollback()
    assert count(session, LoggerClockCheck) == 0


def test_a_clock_check_from_the_shipment_page(app, client, session, world, clock, dispatched):
    login(client, "courier")
    page = client.get(f"/shipments/{dispatched.id}")
    assert b"Record clock check" in page.data and b"No clock check yet" in page.data
    scan = dispatched.dispatched_at.astimezone(ZoneInfo(BERLIN)).replace(tzinfo=None)
    answer = client.post(f"/shipments/{dispatched.id}/clock-checks", follow_redirects=True, data={
        "csrf_token": _csrf(page.data), "serial": "LOG-1", "handoff": "dispatch",
        "shown": f"{scan - timedelta(seconds=40):%Y-%m-%dT%H:%M:%S}"})
    assert b"runs 40 s slow" in answer.data
    assert b"40 s slow" in answer.data.split(b'id="clocks"')[1]  # in the table, not only the message
    refused_answer = client.post(f"/shipments/{dispatched.id}/clock-checks", follow_redirects=True, data={
        "csrf_token": _csrf(page.data), "serial": "LOG-1", "handoff": "dispatch", "shown": "soon"})
    assert b"The clock check was not recorded" in refused_answer.data
    session.rollback()  # end the test's read transaction: see what the app committed
    assert count(session, LoggerClockCheck) == 1


# ------------------------------------------------------------------ storing


def test_a_file_is_stored_verbatim_with_its_readings_pointing_to_it(app, session, world, clock, shipment):
    clock.advance(hours=2)
    data = csv_file([5.0, 5.5, 6.0, 5.0], start=shipment.opened_at)
    stored = store(session, world, clock, shipment, data)
    assert stored.created and stored.result is not None
    assert stored.result.reading_count == 4
    assert b"".join(rawfiles.raw_bytes(session=session, file_id=stored.file.id)) == data
    readings = session.exec(select(LoggerReading).order_by(col(LoggerReading.at))).all()
    assert {r.file_id for r in readings} == {stored.file.id}
    assert [(r.line, r.celsius) for r in readings] == [(2, 5.0), (3, 5.5), (4, 6.0), (5, 5.0)]
    # Berlin wall-clock times in the file, the logger's configured zone: stored in UTC.
    assert readings[0].at == shipment.opened_at
    assert stored.file.uploaded_by_id == world.actor("courier").user_id
    assert stored.alarms == []


def test_the_same_file_again_changes_nothing_and_says_so(app, session, world, clock, shipment):
    clock.advance(hours=1)
    data = csv_file([5.0, 5.1], start=shipment.opened_at)
    first = store(session, world, clock, shipment, data)
    again = store(session, world, clock, shipment, data)
    assert (again.created, again.file.id) == (False, first.file.id)
    assert count(session, LoggerFile) == 1 and count(session, LoggerReading) == 2


def test_an_excursion_raises_one_alarm_with_the_rule_copied(app, session, world, clock, shipment):
    clock.advance(hours=4)
    start = shipment.opened_at
    values = [5.0] * 6 + [9.5] * 8 + [5.0] * 6  # 40 minutes above 8 C: longer than 30 allowed
    stored = store(session, world, clock, shipment, csv_file(values, start=start))
    single = [a for a in stored.alarms if a.code == "excursion_single"]
    assert len(single) == 1
    alarm = single[0]
    assert (alarm.kind, alarm.severity, alarm.shipment_id) == ("temperature", "critical", shipment.id)
    rule = json.loads(alarm.rule)
    assert (rule["high"], rule["max_single_excursion_minutes"], rule["profile"]) == (8.0, 30, "2-8C")
    assert "40 min" in alarm.summary
    # More data from the same logger, covering the same excursion: no second alarm for it.
    more = csv_file(values + [5.0] * 3, start=start)
    again = store(session, world, clock, shipment, more, name="log2.csv")
    assert again.created and [a.code for a in again.alarms if a.code == "excursion_single"] == []
    assert session.exec(select(func.count()).select_from(Alarm)
                        .where(Alarm.code == "excursion_single")).one() == 1


def test_a_first_file_judged_as_it_is_stored_is_judged_as_its_stored_readings(
        app, session, world, clock, shipment, monkeypatch):
    """The logger's first file is evaluated while its readings are written, not read back:
    what that finds must be what the stored readings show, row for row (out-of-order and
    repeated rows, a reading before the shipment, a gap, a pre-alarm and an excursion)."""
    clock.advance(hours=6)
    values = [5.0] * 5 + [7.8] * 4 + [9.5] * 8 + [5.0] * 10 + [4.0] * 10
    lines = csv_file(values, start=shipment.opened_at - timedelta(minutes=10)).decode().split("\r\n")
    lines[3], lines[4] = lines[4], lines[3]  # out of order
    lines.insert(8, lines[7])  # repeated
    del lines[20:28]  # 40 minutes without readings
    seen = []
    evaluate = evaluation.evaluate
    monkeypatch.setattr(intake, "evaluate", lambda **kw: seen.append(kw.get("fed")) or evaluate(**kw))
    first = store(session, world, clock, shipment, "\r\n".join(lines).encode())
    assert list(seen[0]) == ["LOG-1"]
    judged = seen[0]["LOG-1"]
    view = shipments.view_of(session=session, shipment_id=shipment.id)
    assert judged == evaluate(session=session, now=clock.now(), view=view).series[0].evaluation
    assert judged.excursions and judged.pre_alarms and judged.gaps and judged.before_window.count == 2
    assert {a.code for a in first.alarms} >= {"excursion_single"}
    # A second file from the same logger: its readings interleave with the stored ones,
    # so the evaluation reads them back.
    store(session, world, clock, shipment, csv_file([5.0] * 3, start=shipment.opened_at + timedelta(hours=5)),
          name="later.csv")
    assert seen[1] is None


def test_the_stability_budget_is_summed_across_legs(app, session, world, clock):
    """2-8C allows 30 min per excursion, 60 min per shipment, 120 min per case: two legs of
    50 min each are within every limit, a third excursion on the return leg uses the case's
    budget up (and that leg's cumulative allowance)."""
    flow = Flow(app, session, world, clock)
    flow.until("pack")
    outbound = open_for(session, world, clock, flow.case)
    clock.advance(hours=2)  # the outbound leg takes over two hours: its 90 min of data fit
    flow.until("manufacture")
    warm = [5.0] * 2 + [9.0] * 5 + [5.0] * 2  # 25 min above 8 C
    store(session, world, clock, outbound, csv_file(warm + warm, start=outbound.opened_at))
    flow.until("release")  # QA release needs the outbound leg's logger data
    back = shipments.open_shipment(
        session=session, now=clock.now(), actor=world.actor("coordinator"), profiles=PROFILES,
        coi_text=flow.coi.text, leg="return", loggers=[LoggerSpec("LOG-2", BERLIN)], shipper_id=None,
        profile_name="2-8C", eta=None)
    session.commit()
    stored = store(session, world, clock, back, csv_file(warm + warm, start=back.opened_at), name="r1.csv")
    view = shipments.visible_shipment(session=session, actor=world.actor("coordinator"), shipment_id=back.id)
    budget = evaluation.evaluate(session=session, now=clock.now(), view=view).budget
    assert (budget.used, budget.left) == (timedelta(minutes=100), timedelta(minutes=20))
    assert not budget.exhausted
    assert stored.alarms == []
    clock.advance(hours=2)
    stored = store(session, world, clock, back, csv_file(warm * 3, start=back.opened_at), name="r2.csv")
    assert sorted(a.code for a in stored.alarms) == ["excursion_cumulative", "stability_budget"]
    budget_alarm = next(a for a in stored.alarms if a.code == "stability_budget")
    assert budget_alarm.case_id == flow.case.id and "125 min" in budget_alarm.summary


def test_legs_under_another_profile_do_not_spend_the_budget(app, session, world, clock):
    """Fresh apheresis out at 2-8 C, cryopreserved product back in vapour-phase nitrogen: 50
    minutes above 8 C on the way out spend the 2-8 C budget, not the 30 minutes the frozen
    product is allowed, and its infusion is not refused for them."""
    flow = Flow(app, session, world, clock)
    flow.until("pack")
    outbound = open_for(session, world, clock, flow.case)
    clock.advance(hours=2)
    flow.until("manufacture")
    warm = [5.0] * 2 + [9.0] * 5 + [5.0] * 2  # 25 min above 8 C
    store(session, world, clock, outbound, csv_file(warm + warm, start=outbound.opened_at))
    flow.until("deliver_treatment")  # the return leg in its own shipment, within -150 C
    back = session.exec(select(Shipment).where(Shipment.leg == "return")).one()
    view = shipments.visible_shipment(session=session, actor=world.actor("coordinator"), shipment_id=back.id)
    budget = evaluation.evaluate(session=session, now=clock.now(), view=view).budget
    assert (budget.used, budget.total) == (timedelta(0), timedelta(minutes=30))
    view = shipments.visible_shipment(session=session, actor=world.actor("coordinator"),
                                      shipment_id=outbound.id)
    assert evaluation.evaluate(session=session, now=clock.now(), view=view).budget.used == \
        timedelta(minutes=50)
    flow.until("infuse")  # the last step, with its stability_budget check


# ------------------------------------------------------------------ bad input


def refused(session, world, clock, shipment, data: bytes, message: str, **kw) -> None:
    with pytest.raises(intake.LoggerFileRefused, match=message):
        store(session, world, clock, shipment, data, **kw)
    session.rollback()
    assert count(session, LoggerFile) == 0
    assert count(session, LoggerReading) == 0
    assert count(session, LoggerFileResult) == 0


def test_a_file_refused_after_rows_were_written_leaves_nothing_and_the_next_file_is_taken(
        app, session, world, clock, shipment):
    """The readings go to the database as the file is read (one COPY on PostgreSQL); a
    problem found at the end abandons them all, and the connection takes the next file."""
    clock.advance(hours=2)
    good = csv_file([5.0] * 10, start=shipment.opened_at)
    bad = good + good.splitlines(keepends=True)[-1].replace(b",5.0", b",6.0")  # the last time twice
    refused(session, world, clock, shipment, bad, "two values for the same time")
    rawfiles.record_refusal(session=session, now=clock.now(), actor=world.actor("courier"),
                           shipment_id=shipment.id, filename="bad.csv", stream=io.BytesIO(bad),
                           reason="two values for the same time")
    session.commit()
    stored = store(session, world, clock, shipment, good)
    assert stored.created and count(session, LoggerReading) == 10


def test_binary_junk_is_refused(app, session, world, clock, shipment):
    refused(session, world, clock, shipment, bytes(range(256)) * 40, "binary")


def test_a_file_in_another_encoding_is_refused(app, session, world, clock, shipment):
    data = "Date Time,Temperature (°C)\n2026-11-22 10:05:00,5.0\n".encode("utf-16-le")
    clock.advance(hours=1)
    with pytest.raises(intake.LoggerFileRefused):
        store(session, world, clock, shipment, data)
    session.rollback()
    assert count(session, LoggerReading) == 0


def test_a_file_over_the_size_limit_is_refused(app, session, world, clock, shipment):
    clock.advance(hours=1)
    refused(session, world, clock, shipment, csv_file([5.0] * 50, start=clock.now()), "limit",
            max_bytes=100)


def test_a_file_without_a_zone_is_refused_when_the_logger_has_none(app, session, world, clock):
    shipment = open_for(session, world, clock, make_case(app, session, world, clock), zone=None)
    clock.advance(hours=1)
    refused(session, world, clock, shipment, csv_file([5.0, 5.0], start=clock.now()), "zone")


def test_a_file_from_a_logger_not_on_the_shipment_is_refused(app, session, world, clock, shipment):
    document = {"logger": "OTHER-9", "readings": [
        {"at": (clock.now() + timedelta(minutes=5)).isoformat(), "celsius": 5.0}]}
    clock.advance(hours=1)
    refused(session, world, clock, shipment, json.dumps(document).encode(), "not assigned")


def test_readings_for_another_period_are_refused(app, session, world, clock, shipment):
    clock.advance(hours=1)
    last_week = clock.now() - timedelta(days=7)
    refused(session, world, clock, shipment, csv_file([5.0] * 4, start=last_week), "another period")


def test_a_file_with_no_readings_is_refused(app, session, world, clock, shipment):
    refused(session, world, clock, shipment, b'{"logger": "LOG-1", "readings": []}', "no readings")
    refused(session, world, clock, shipment, b"Date Time,Temperature (\xc2\xb0C)\r\n", "no row with a date")


# ------------------------------------------------------------------ web and API


def test_upload_preview_then_commit_from_the_shipment_page(app, client, session, world, clock, shipment):
    clock.advance(hours=2)
    data = csv_file([5.0, 5.2, 9.9, 5.1], start=shipment.opened_at)
    login(client, "courier")
    page = client.get(f"/shipments/{shipment.id}")
    assert page.status_code == 200 and b"dropzone" in page.data
    token = _csrf(page.data)
    shown = client.post(f"/shipments/{shipment.id}/logger-files/preview", headers=JSON,
                        data={"csrf_token": token, "file": (io.BytesIO(data), "log.csv")})
    assert shown.status_code == 200
    p = shown.get_json()
    assert (p["count"], p["max_celsius"], p["logger"], p["already"]) == (4, 9.9, "LOG-1", None)
    assert p["first"]["celsius"] == 5.0 and p["last"]["celsius"] == 5.1
    assert count(session, LoggerReading) == 0  # a preview stores nothing
    wrong = client.post(f"/shipments/{shipment.id}/logger-files", headers={"Accept": "application/json"},
                        data={"csrf_token": token, "sha256": "0" * 64, "file": (io.BytesIO(data), "log.csv")})
    assert wrong.status_code == 409
    done = client.post(f"/shipments/{shipment.id}/logger-files", headers=JSON,
                       data={"csrf_token": token, "sha256": p["sha256"],
                             "file": (io.BytesIO(data), "log.csv")})
    assert done.status_code == 201 and done.get_json()["file"]["readings"] == 4
    again = client.post(f"/shipments/{shipment.id}/logger-files", headers={"Accept": "application/json"},
                        data={"csrf_token": token, "file": (io.BytesIO(data), "log.csv")})
    assert again.status_code == 200 and "nothing changed" in again.get_json()["message"]
    page = client.get(f"/shipments/{shipment.id}")
    assert b"<svg" in page.data and b"log.csv" in page.data
    # A streamed answer: closing it ends the request (and its database session), as a WSGI
    # server does.
    with client.get(f"/logger-files/{done.get_json()['file']['id']}/raw") as raw:
        assert raw.data == data


def test_a_refused_upload_is_logged_and_stores_nothing(app, client, session, world, clock, shipment):
    login(client, "courier")
    token = _csrf(client.get(f"/shipments/{shipment.id}").data)
    answer = client.post(f"/shipments/{shipment.id}/logger-files/preview",
                         headers={"Accept": "application/json"},
                         data={"csrf_token": token, "file": (io.BytesIO(b"\x00\x01\x02junk" * 100), "x.bv")})
    assert answer.status_code == 422
    assert answer.get_json()["type"].endswith("logger_file_refused")
    assert "binary" in answer.get_json()["detail"]
    entries = session.exec(select(AuditEntry).where(AuditEntry.entity == "logger_file",
                                                    AuditEntry.action == "refuse")).all()
    assert entries and "binary" in entries[0].reason
    assert count(session, LoggerReading) == 0


def test_devices_post_files_and_json_readings(app, client, session, world, clock, shipment):
    token = api_token(session, clock, world, "courier")
    clock.advance(hours=1)
    data = csv_file([4.0, 4.5], start=shipment.opened_at)
    answer = client.post(f"/api/v1/shipments/{shipment.id}/logger-files?filename=a.csv", data=data,
                         headers=bearer(token))
    assert answer.status_code == 201
    assert client.post(f"/api/v1/shipments/{shipment.id}/logger-files", data=data,
                       headers=bearer(token)).status_code == 200
    body = {"logger": "LOG-1", "readings": [
        {"at": (shipment.opened_at + timedelta(minutes=m)).isoformat(), "celsius": 5.0} for m in (10, 15)]}
    answer = client.post(f"/api/v1/shipments/{shipment.id}/readings", json=body, headers=bearer(token))
    assert answer.status_code == 201 and answer.get_json()["file"]["readings"] == 2
    naive = {"logger": "LOG-1", "readings": [{"at": "2026-11-22T09:30:00", "celsius": 5.0}]}
    answer = client.post(f"/api/v1/shipments/{shipment.id}/readings", json=naive, headers=bearer(token))
    assert answer.status_code == 422
    assert client.post(f"/api/v1/shipments/{shipment.id}/readings", data=b"not json",
                       headers=bearer(token) | {"Content-Type": "application/json"}).status_code == 422
    assert count(session, LoggerReading) == 4


def test_the_cli_imports_a_file_with_progress(app, session, world, clock, shipment, tmp_path):
    clock.advance(hours=3)
    path = tmp_path / "backload.csv"
    path.write_bytes(csv_file([5.0] * 30, start=shipment.opened_at))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["coi", "import-logger", str(shipment.id), str(path), "--user", "courier"])
    assert result.exit_code == 0, result.output
    assert "Stored 30 readings" in result.output
    again = runner.invoke(args=["coi", "import-logger", str(shipment.id), str(path), "--user", "courier"])
    assert "nothing changed" in again.output
    bad = tmp_path / "junk.bin"
    bad.write_bytes(b"\x00" * 500)
    result = runner.invoke(args=["coi", "import-logger", str(shipment.id), str(bad), "--user", "courier"])
    assert result.exit_code != 0 and "binary" in result.output
    session.expire_all()
    assert count(session, LoggerReading) == 30


def _csrf(page: bytes) -> str:
    import re

    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1).decode()

