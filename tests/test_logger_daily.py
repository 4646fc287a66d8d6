"""Daily-summary logger files in the app: stored verbatim with their days, an alarm per day
in alarm (raised once), days outside the shipment's window noted and not judged, the days
on the shipment page, and a stored summary counting as judged logger data for release."""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlmodel import select

from coi.models import Alarm, LoggerDaySummary, LoggerFile, LoggerFileResult, LoggerReading, Shipment
from coi.services.loggers import evaluation, intake, rawfiles
from tests.helpers import Flow, count, fridge_tag, login, make_case, open_for, store

# The shipment opens on 2026-11-22 (Berlin, the logger's zone); the tests move the clock on
# two days, so the window's dates are 2026-11-22 to 2026-11-24.
HOT = """Logger serial: LOG-1
Date,Min (°C),Max (°C),Time above 8 °C (min),Time below 2 °C (min)
2026-11-22,3.1,7.9,0,0
2026-11-23,8.4,12.4,24:00,0
2026-11-24,2.5,7.6,0,0
"""
CLEAN = """Date;Tmin [°F];Tmax [°F];Out of range (hh:mm)
22.11.2026;38,0;44,0;00:00
23.11.2026;37,4;45,1;00:00
24.11.2026;38,3;44,6;00:00
"""


@pytest.fixture
def shipment(app, session, world, clock) -> Shipment:
    opened = open_for(session, world, clock, make_case(app, session, world, clock))
    clock.advance(hours=48)
    return opened


def alarms_of(session, shipment: Shipment) -> list[Alarm]:
    return list(session.exec(select(Alarm).where(Alarm.shipment_id == shipment.id).order_by(Alarm.id)))


def test_a_day_of_24_hours_above_the_limit_raises_a_critical_alarm_naming_that_day(app, session, world, clock,
                                                                                   shipment):
    stored = store(session, world, clock, shipment, HOT.encode(), name="days.csv")

    assert stored.created and stored.result.reading_count == 0
    day_alarms = [a for a in alarms_of(session, shipment) if a.code == "excursion_single"]
    assert [(a.kind, a.severity) for a in day_alarms] == [("temperature", "critical")]
    assert day_alarms[0].summary.startswith("2026-11-23: 1440 min above 8.0 °C, up to 12.4 °C (line 4)")
    assert "cannot tell one long excursion from several short ones" in day_alarms[0].summary
    assert day_alarms[0].fingerprint == f"shipment:{shipment.id}:excursion_single:LOG-1:2026-11-23"
    assert json.loads(day_alarms[0].rule)["day"] == "2026-11-23"
    # 24 h out of range also uses up the shipment's and the case's allowances.
    assert {a.code for a in alarms_of(session, shipment)} == {"excursion_single", "excursion_cumulative",
                                                              "stability_budget"}


def test_the_same_day_again_in_another_file_is_not_raised_twice(app, session, world, clock, shipment):
    store(session, world, clock, shipment, HOT.encode(), name="days.csv")
    before = len(alarms_of(session, shipment))

    again = store(session, world, clock, shipment, HOT.replace("Logger serial", "Serial").encode(),
                  name="days-again.csv")

    assert again.created and again.alarms == []
    assert len(alarms_of(session, shipment)) == before


def test_a_clean_summary_is_stored_verbatim_with_its_days_and_raises_nothing(app, session, world, clock,
                                                                             shipment):
    stored = store(session, world, clock, shipment, CLEAN.encode(), name="clean.csv")

    assert stored.alarms == [] and alarms_of(session, shipment) == []
    file = session.get(LoggerFile, stored.file.id)
    assert file.format == "daily-summary" and file.logger_serial == "LOG-1"
    assert b"".join(rawfiles.raw_bytes(session=session, file_id=file.id)) == CLEAN.encode()
    days = session.exec(select(LoggerDaySummary).where(LoggerDaySummary.file_id == file.id)
                        .order_by(LoggerDaySummary.day)).all()
    assert [(d.day.isoformat(), d.minutes_in_alarm, d.line) for d in days] == [
        ("2026-11-22", 0, 2), ("2026-11-23", 0, 3), ("2026-11-24", 0, 4)]
    assert round(days[1].min_c, 2) == 3.0  # 37.4 °F
    assert count(session, LoggerReading) == 0
    result = session.get(LoggerFileResult, file.id)
    assert (result.reading_count, result.outside_window, round(result.max_celsius, 2)) == (0, 0, 7.28)


def test_days_outside_the_shipments_window_are_noted_and_not_judged(app, session, world, clock, shipment):
    data = HOT.replace("2026-11-22,3.1,7.9,0,0", "2026-11-20,3.1,30.0,600,0\n2026-11-22,3.1,7.9,0,0") \
              .replace("2026-11-23,8.4,12.4,24:00,0", "2026-11-23,3.4,7.4,0,0")

    stored = store(session, world, clock, shipment, data.encode(), name="days.csv")

    assert stored.alarms == []
    assert session.get(LoggerFileResult, stored.file.id).outside_window == 1
    meta = json.loads(stored.file.report)["meta"]
    assert meta["days_outside_window"] == "2026-11-20"
    assert "1 day(s) fall outside the shipment's window (dates in Europe/Berlin)" in meta["window_note"]


def test_a_summary_with_no_day_in_the_window_is_refused_and_nothing_stored(app, session, world, clock,
                                                                           shipment):
    with pytest.raises(intake.LoggerFileRefused, match="The days are for another period: 2025-01-01"):
        store(session, world, clock, shipment, b"Date,Min (C),Max (C)\n2025-01-01,3,7\n2025-01-02,3,7\n")
    session.rollback()
    assert count(session, LoggerFile) == 0 and count(session, LoggerDaySummary) == 0


def test_an_ambiguous_summary_is_refused_with_its_line(app, session, world, clock, shipment):
    data = b"Date,Min (C),Max (C),Time above 8 C\n2026-11-22,3,7,0\n2026-11-23,3,9,45\n"

    with pytest.raises(intake.LoggerFileRefused) as refused:
        store(session, world, clock, shipment, data)

    assert "line 2, column Time above 8 C: '0' is a duration without a unit" in refused.value.message


def test_a_preview_of_a_summary_describes_its_days_and_stores_nothing(app, session, world, clock, shipment):
    shown = intake.preview(session=session, now=clock.now(), actor=world.actor("courier"),
                           shipment_id=shipment.id, stream=io.BytesIO(HOT.encode()), filename="days.csv")

    assert (shown.format, shown.logger, shown.span.count) == ("daily-summary", "LOG-1", 0)
    assert shown.meta["day_count"] == "3" and "daily summaries" in shown.meta["content"]
    assert count(session, LoggerFile) == 0


def test_the_shipment_page_shows_the_days_with_the_day_in_alarm_highlighted(app, client, session, world,
                                                                             clock, shipment):
    store(session, world, clock, shipment, HOT.encode(), name="days.csv")
    login(client, "courier")

    page = client.get(f"/shipments/{shipment.id}").get_data(as_text=True)

    assert "holds <b>daily summaries, not readings</b>" in page
    assert "Daily summaries of logger <code>LOG-1</code>" in page
    hot_row = page.split('<tr class="in-alarm"><td>')[1].split("</tr>")[0]
    assert hot_row.startswith("2026-11-23") and "12.4 °C" in hot_row and "1440" in hot_row
    assert page.count('<tr class="in-alarm">') == 1
    assert "2026-11-22</td>" in page and "2026-11-24</td>" in page
    assert "3 days <small>(daily summaries)</small>" in page  # in the list of files


def test_a_summary_uploaded_from_the_shipment_page_is_previewed_then_stored(app, client, session, world,
                                                                             clock, shipment):
    login(client, "courier")
    page = client.get(f"/shipments/{shipment.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    json_answer = {"Accept": "application/json"}

    shown = client.post(f"/shipments/{shipment.id}/logger-files/preview", headers=json_answer,
                        data={"csrf_token": token, "file": (io.BytesIO(HOT.encode()), "days.csv")})
    assert shown.status_code == 200
    assert (shown.get_json()["format"], shown.get_json()["meta"]["day_count"]) == ("daily-summary", "3")
    done = client.post(f"/shipments/{shipment.id}/logger-files", headers=json_answer,
                       data={"csrf_token": token, "sha256": shown.get_json()["sha256"],
                             "file": (io.BytesIO(HOT.encode()), "days.csv")})

    assert done.status_code == 201
    assert "2026-11-23: 1440 min above 8.0 °C" in " ".join(a["summary"] for a in done.get_json()["alarms"])
    assert count(session, LoggerDaySummary) == 3


def test_the_shipment_evaluation_judges_the_days_and_counts_their_minutes_in_the_budget(
        app, session, world, clock, shipment):
    store(session, world, clock, shipment, HOT.encode(), name="days.csv")
    view = intake.visible_shipment(session=session, actor=world.actor("courier"), shipment_id=shipment.id)

    found = evaluation.evaluate(session=session, now=clock.now(), view=view)

    assert found.series == []  # no readings series: it would only say 'no readings'
    assert [d.serial for d in found.days] == ["LOG-1"]
    assert [judged for _day, judged in found.days[0].rows] == ["ok", "alarm", "ok"]
    assert found.budget.used.total_seconds() == 24 * 3600 and found.budget.exhausted
    budget = evaluation.case_budget(session=session, case_id=shipment.case_id, now=clock.now())
    assert budget is not None and budget.used == found.budget.used


# ------------------------------------------------------------------ release


@pytest.fixture
def flow(app, session, world, clock) -> Flow:
    return Flow(app, session, world, clock)


def test_release_accepts_a_judged_daily_summary_as_the_legs_logger_data(flow):
    # The outbound leg delivered to manufacturing and the product made, with no logger data.
    flow.until("pack")
    shipment = open_for(flow.session, flow.world, flow.clock, flow.case)
    flow.clock.advance(hours=3)
    flow.until("manufacture")
    flow.step = "release"
    refused = flow.scan("qa", flow.product, signer="qa")
    assert [r.code for r in refused.verdict.refusals] == ["no_temperature_data"]
    day = shipment.opened_at.date().isoformat()
    days = f"Date,Min (°C),Max (°C),Time in alarm (min)\n{day},4.0,6.0,0\n"
    store(flow.session, flow.world, flow.clock, shipment, days.encode(), name="days.csv")

    flow.step = "release"
    outcome = flow.ok(flow.scan("qa", flow.product, signer="qa"))

    assert {"check": "outbound_logger_data", "ok": True, "shipment": shipment.id} in \
        json.loads(outcome.event.body)["checks"]


def test_a_fridge_tag_2_report_is_judged_day_by_day(app, session, world, clock, shipment):
    # The model keeps no readings: a day it spent above +8.0 °C is an alarm all the same.
    report = fridge_tag([("2026-11-24", "+2.6", "+7.4", 0, 0), ("2026-11-23", "+9.1", "+12.4", 0, 1440),
                         ("2026-11-22", "+3.0", "+7.8", 0, 0)])
    stored = store(session, world, clock, shipment, report, name="fridgetag.txt")
    assert stored.created and stored.file.format == "berlinger-fridgetag"
    day_alarms = [a for a in alarms_of(session, shipment) if a.code == "excursion_single"]
    assert [(a.severity, a.summary.split(" (")[0]) for a in day_alarms] == [
        ("critical", "2026-11-23: 1440 min above 8.0 °C, up to 12.4 °C")]
    assert [d.day.isoformat() for d in session.exec(select(LoggerDaySummary).order_by(
        LoggerDaySummary.day))] == ["2026-11-22", "2026-11-23", "2026-11-24"]
