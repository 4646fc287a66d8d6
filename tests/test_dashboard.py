"""The coordinator dashboard: open alarms by severity, active cases by next step with their
deadlines, shipments in transit with their newest temperature; only what concerns the
reader's sites; a body part the page fetches to refresh itself."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from coi.models import Alarm, Case, coi_of
from coi.services import alarms
from tests.helpers import Flow, csv_file, login, make_case, open_for, store

REFRESH_SECONDS = 7


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # A wall screen's dashboard refreshes itself, which keeps its session alive; these tests
    # jump the clock by hours or weeks between two looks instead, so sessions last 60 days.
    return {**app_config, "DASHBOARD_REFRESH_SECONDS": REFRESH_SECONDS,
            "SESSION_IDLE_MINUTES": 60 * 24 * 60, "SESSION_LIFETIME_HOURS": 60 * 24}


def raise_on(session, clock, case: Case, severity: str, summary: str) -> Alarm:
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="custody", code="test_alarm",
                               severity=severity, summary=summary, rule={"rule": "test"},
                               case_id=case.id)
    session.commit()
    assert alarm is not None
    return alarm


def dashboard(client: FlaskClient, part: str | None = None) -> str:
    response = client.get("/dashboard" + (f"?part={part}" if part else ""))
    assert response.status_code == 200, response.status_code
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_data(as_text=True)


def alarm_counts(page: str) -> dict[str, int]:
    return {severity: int(n) for severity, n in
            re.findall(r'data-severity="(\w+)" data-count="(\d+)"', page)}


def step_rows(page: str) -> dict[str, tuple[int, int]]:
    """Next step -> (cases, overdue), in the order shown."""
    return {step: (int(cases), int(overdue)) for step, cases, overdue in
            re.findall(r'data-step="([^"]*)" data-cases="(\d+)" data-overdue="(\d+)"', page)}


def row_of(page: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr[^>]*{attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, f"no row with {attribute}={value}"
    return found.group(0)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


# ------------------------------------------------------------------ alarms


def test_alarm_counts_per_severity_match_the_alarms_raised(app, session, world, clock, client):
    case = make_case(app, session, world, clock)
    raised = [raise_on(session, clock, case, severity, f"{severity} number {n}")
              for severity, n in [("critical", 1), ("critical", 2), ("major", 1), ("minor", 1),
                                  ("minor", 2), ("minor", 3)]]
    alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("coordinator"),
                       alarm_id=raised[2].id, comment="on it")  # acknowledged: still open work
    session.commit()
    login(client, "coordinator")
    page = dashboard(client)
    assert alarm_counts(page) == {"critical": 2, "major": 1, "minor": 3}
    # The rows, most severe first, each linking to the alarm's page.
    shown = re.findall(r'data-alarm="(\d+)"', page)
    assert [int(n) for n in shown[:2]] == [raised[1].id, raised[0].id]
    assert len(shown) == 6
    assert f'href="/alarms/{raised[0].id}"' in page
    assert "critical number 1" in page


def test_only_the_ten_first_alarms_are_listed_but_all_are_counted(app, session, world, clock, client):
    case = make_case(app, session, world, clock)
    for n in range(12):
        clock.advance(minutes=1)
        raise_on(session, clock, case, "major", f"alarm {n:02d}")
    login(client, "staff")
    page = dashboard(client)
    assert alarm_counts(page)["major"] == 12
    assert len(re.findall(r'data-alarm="\d+"', page)) == 10
    assert "alarm 11" in page and "alarm 01" not in page  # newest first
    assert "all alarms" in page


def test_a_user_of_another_site_sees_neither_its_cases_nor_their_alarms(app, session, world, clock,
                                                                        client):
    boston = make_case(app, session, world, clock)
    berlin = make_case(app, session, world, clock, site_code="BER", actor=world.actor("outsider"),
                       name="Bo Other", mrn="M-2")
    raise_on(session, clock, boston, "critical", "Boston bag torn")
    raise_on(session, clock, berlin, "minor", "Berlin label smudged")
    boston_coi, berlin_coi = coi_of(boston).text, coi_of(berlin).text

    login(client, "outsider")
    page = dashboard(client)
    assert alarm_counts(page) == {"critical": 0, "major": 0, "minor": 1}
    assert "Berlin label smudged" in page and berlin_coi in page
    assert "Boston bag torn" not in page and boston_coi not in page
    assert sum(cases for cases, _overdue in step_rows(page).values()) == 1

    login(client, "staff")
    page = dashboard(client)
    assert alarm_counts(page) == {"critical": 1, "major": 0, "minor": 0}
    assert "Boston bag torn" in page and boston_coi in page
    assert "Berlin label smudged" not in page and berlin_coi not in page

    login(client, "coordinator")  # manufactures for both hospitals
    page = dashboard(client)
    assert alarm_counts(page) == {"critical": 1, "major": 0, "minor": 1}
    assert boston_coi in page and berlin_coi in page


# ------------------------------------------------------------------ cases and deadlines


def test_cases_are_grouped_by_next_step_in_route_order(app, session, world, clock, client):
    flow = Flow(app, session, world, clock)  # enrolled, then collected: next is packing
    flow.until("collect")
    make_case(app, session, world, clock, name="Bo Two", mrn="M-2")
    make_case(app, session, world, clock, name="Cy Three", mrn="M-3")
    login(client, "coordinator")
    page = dashboard(client)
    assert step_rows(page) == {"collect": (2, 0), "pack": (1, 0)}  # route order
    assert "Apheresis collection" in row_of(page, "data-step", "collect")
    assert "Pack fresh shipment (2-8 C)" in row_of(page, "data-step", "pack")
    # The deadline of packing (4 h after collection) is the nearest.
    first = re.search(r'<tr class="deadline[^"]*" data-coi="([^"]+)"', page)
    assert first and first.group(1) == flow.coi.text


def test_overdue_cases_are_counted_from_the_second_of_their_deadline(app, session, world, clock, client):
    first = make_case(app, session, world, clock)
    clock.advance(hours=1)
    make_case(app, session, world, clock, name="Bo Two", mrn="M-2")
    due = first.next_due_at
    assert due is not None
    login(client, "coordinator")

    clock.set(due - timedelta(hours=3, minutes=20))
    row = row_of(dashboard(client), "data-coi", coi_of(first).text)
    assert "3 h 20 min" in text_of(row) and "overdue" not in row

    clock.set(due - timedelta(seconds=1))
    page = dashboard(client)
    assert step_rows(page) == {"collect": (2, 0)}
    row = row_of(page, "data-coi", coi_of(first).text)
    assert "overdue" not in row and "less than 1 min" in text_of(row)

    clock.set(due)
    page = dashboard(client)
    assert step_rows(page) == {"collect": (2, 1)}
    assert 'data-overdue="1"' in page
    row = row_of(page, "data-coi", coi_of(first).text)
    assert 'class="deadline overdue"' in row and "overdue by less than 1 min" in text_of(row)

    clock.set(due + timedelta(minutes=25, seconds=30))
    row = row_of(dashboard(client), "data-coi", coi_of(first).text)
    assert "overdue by 25 min" in text_of(row)


def test_deadlines_are_shown_in_the_readers_time_zone(app, session, world, clock, client):
    case = make_case(app, session, world, clock)
    login(client, "coordinator")  # Manufacturing, America/Chicago
    row = row_of(dashboard(client), "data-coi", coi_of(case).text)
    assert "Apheresis collection" in row
    assert "2026-12-22 03:00 CST" in text_of(row)  # 09:00 UTC + 720 h


def test_complete_cases_are_not_counted(app, session, world, clock, client):
    done = make_case(app, session, world, clock)
    make_case(app, session, world, clock, name="Bo Two", mrn="M-2")
    done.state = "complete"
    session.add(done)
    session.commit()
    login(client, "coordinator")
    page = dashboard(client)
    assert step_rows(page) == {"collect": (1, 0)}
    assert coi_of(done).text not in page


# ------------------------------------------------------------------ shipments


def shipment_in_transit(app, session, world, clock, serials=("LOG-1",)):
    flow = Flow(app, session, world, clock)
    flow.until("pack")
    shipment = open_for(session, world, clock, flow.case, serials=serials)
    flow.until("pickup")
    session.refresh(shipment)
    session.commit()  # end the read: the logins that follow write (SQLite's snapshot rule)
    assert shipment.state == "in_transit"
    return flow, shipment


def test_a_shipment_in_transit_shows_its_latest_temperature_and_time_to_eta(
        app, session, world, clock, client):
    flow, shipment = shipment_in_transit(app, session, world, clock, serials=("LOG-1", "LOG-2"))
    login(client, "coordinator")
    row = row_of(dashboard(client), "data-shipment", str(shipment.id))
    assert "no data yet" in row
    assert flow.coi.text in row and "Boston Hospital → Manufacturing" in text_of(row)
    left = shipment.eta - clock.now()
    assert f"in {left.seconds // 3600} h {left.seconds % 3600 // 60} min" in text_of(row)

    clock.advance(hours=1)
    start = shipment.dispatched_at
    store(session, world, clock, shipment, csv_file([5.0, 5.5, 6.0], start=start),
          logger_serial="LOG-1", name="one.csv")
    store(session, world, clock, shipment, csv_file([5.0, 4.5], start=start + timedelta(minutes=1)),
          logger_serial="LOG-2", name="two.csv")
    row = row_of(dashboard(client), "data-shipment", str(shipment.id))
    # The newest of both loggers: LOG-1's third reading, ten minutes after dispatch.
    assert "6.0 °C" in row and "LOG-1" in row and "outside" not in row
    assert "2026-11-22" in row and "CST" in row

    store(session, world, clock, shipment, csv_file([8.5], start=start + timedelta(minutes=20)),
          logger_serial="LOG-2", name="three.csv")
    row = row_of(dashboard(client), "data-shipment", str(shipment.id))
    assert "8.5 °C" in row and "LOG-2" in row
    assert "outside 2-8C" in row  # above the profile's 8 °C limit

    clock.set(shipment.eta + timedelta(minutes=25))
    row = row_of(dashboard(client), "data-shipment", str(shipment.id))
    assert "late by 25 min" in text_of(row) and 'class="late' in row


def test_only_dispatched_shipments_of_the_readers_sites_are_shown(app, session, world, clock, client):
    flow = Flow(app, session, world, clock)
    flow.until("pack")
    shipment = open_for(session, world, clock, flow.case)
    login(client, "staff")
    page = dashboard(client)
    assert f'data-shipment="{shipment.id}"' not in page  # packed, not with the courier yet
    assert "No shipment of your sites' cases is in transit." in page

    flow.until("pickup")
    assert f'data-shipment="{shipment.id}"' in dashboard(client)
    login(client, "outsider")
    page = dashboard(client)
    assert f'data-shipment="{shipment.id}"' not in page and flow.coi.text not in page


# ------------------------------------------------------------------ the page and its part


def test_the_body_part_renders_without_the_page_chrome(app, session, world, clock, client):
    case = make_case(app, session, world, clock)
    raise_on(session, clock, case, "critical", "Bag torn at the clinic")
    login(client, "coordinator")
    page = dashboard(client)
    body = dashboard(client, part="body")
    for html in (page, body):
        assert 'id="dashboard-body"' in html and "Bag torn at the clinic" in html
        assert 'data-updated="03:00:00 CST"' in html  # 09:00 UTC in Chicago
    assert "<html" in page and "<nav " in page and "Log out" in page
    assert f'data-refresh-seconds="{REFRESH_SECONDS}"' in page
    assert 'data-body-url="/dashboard?part=body"' in page
    assert "/static/dashboard.js" in page
    assert "Updated 03:00:00 CST" in page
    assert "<html" not in body and "<nav " not in body and "Log out" not in body
    assert "<script" not in body and "dashboard-status" not in body


def test_the_dashboard_is_in_the_menu_of_those_who_may_see_it(app, session, world, clock, client):
    login(client, "qa")
    assert '<a href="/dashboard">Dashboard</a>' in client.get("/").get_data(as_text=True)
    login(client, "courier")
    assert '<a href="/dashboard">Dashboard</a>' not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("persona", ["courier", "admin"])
@pytest.mark.parametrize("url", ["/dashboard", "/dashboard?part=body"])
def test_couriers_and_administrators_are_refused(app, session, world, clock, client, persona, url):
    make_case(app, session, world, clock)
    login(client, persona)
    response = client.get(url)
    assert response.status_code == 403
    assert "dashboard-body" not in response.get_data(as_text=True)


def test_an_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
