"""Issue 17, item 3: a session that ended says why, wherever the person is (a page, a form
they post, the scan page's JSON calls), and what they typed into a form is given back after
they log in again: never saved until they submit it again, never readable in the cookie."""

from __future__ import annotations

import re

from sqlmodel import select

from coi.models import Alarm, Case, coi_of
from coi.services import alarms
from tests.helpers import CSRF, ENROL_FORM, PASSWORD, cookie_text, count, login, make_case

IDLE = "You were signed out after 15 minutes without activity."


def csrf_of(client, url):
    token = CSRF.search(client.get(url).get_data(as_text=True))
    assert token, url
    return token.group(1)


def login_to(client, url, username="staff"):
    """Log in on the login page the browser was sent to (`url`, with its `next`)."""
    token = csrf_of(client, url)
    return client.post(url, data={"username": username, "password": PASSWORD,
                                  "csrf_token": token})


def test_an_enrolment_posted_after_15_idle_minutes_says_so_and_keeps_what_was_typed(
        client, clock, world, session):
    login(client, "staff")
    token = csrf_of(client, "/cases/new")
    clock.advance(minutes=16)
    response = client.post("/cases/new", data=ENROL_FORM | {"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/cases/new"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert IDLE in page and "Nothing was saved" in page and "Form expired" not in page
    assert "what you typed is kept" in page
    # Patient data never sits readable in the browser: the cookie holds only ciphertext.
    assert "Harriet" not in cookie_text(client) and "MRN-0001" not in cookie_text(client)
    assert count(session, Case) == 0

    back = login_to(client, response.headers["Location"])
    assert back.headers["Location"] == "/cases/new"
    form = client.get("/cases/new").get_data(as_text=True)
    assert "Your entries were kept; check them and submit again." in form
    assert 'value="Harriet Vance"' in form and 'value="MRN-0001"' in form
    assert 'value="1961-03-14"' in form
    assert count(session, Case) == 0  # nothing is saved until submitted again
    again = client.get("/cases/new").get_data(as_text=True)  # given back once
    assert "Harriet Vance" not in again and "entries were kept" not in again


def test_entries_kept_for_one_person_are_not_shown_to_another(client, clock, world):
    login(client, "staff")
    token = csrf_of(client, "/cases/new")
    clock.advance(minutes=16)
    client.post("/cases/new", data=ENROL_FORM | {"csrf_token": token})
    login(client, "staff2")
    assert "Harriet Vance" not in client.get("/cases/new").get_data(as_text=True)
    login(client, "staff")
    assert "Harriet Vance" not in client.get("/cases/new").get_data(as_text=True)


def test_kept_entries_last_30_minutes(client, clock, world):
    login(client, "staff")
    token = csrf_of(client, "/cases/new")
    clock.advance(minutes=16)
    client.post("/cases/new", data=ENROL_FORM | {"csrf_token": token})
    clock.advance(minutes=31)
    login(client, "staff")
    assert "Harriet Vance" not in client.get("/cases/new").get_data(as_text=True)


def test_a_form_posted_after_12_hours_says_the_session_lasted_12_hours(client, clock, world):
    login(client, "staff")
    for _ in range(72):
        token = csrf_of(client, "/cases/new")
        clock.advance(minutes=10)
    response = client.post("/cases/new", data=ENROL_FORM | {"csrf_token": token},
                           follow_redirects=True)
    text = response.get_data(as_text=True)
    assert "You were signed out after 12 hours, the longest a session lasts." in text


def test_a_page_left_open_after_logging_out_in_another_tab_says_so(client, world, session):
    login(client, "staff")
    form_token = csrf_of(client, "/cases/new")  # the enrol form, open in one tab
    client.post("/logout", data={"csrf_token": csrf_of(client, "/")})  # another tab logs out
    response = client.post("/cases/new", data=ENROL_FORM | {"csrf_token": form_token},
                           follow_redirects=True)
    text = response.get_data(as_text=True)
    assert "You were signed out because you signed out elsewhere." in text
    assert "Form expired" not in text and count(session, Case) == 0
    login(client, "staff")
    assert 'value="Harriet Vance"' in client.get("/cases/new").get_data(as_text=True)


def test_a_page_opened_after_the_session_ended_says_why_on_every_request(client, clock, world):
    login(client, "staff")
    clock.advance(minutes=16)
    assert IDLE in client.get("/cases", follow_redirects=True).get_data(as_text=True)
    # The first request ended the session; the next still knows why.
    assert IDLE in client.get("/alarms", follow_redirects=True).get_data(as_text=True)


def test_a_patient_correction_is_given_back_without_its_password(
        app, client, clock, world, session):
    coi = coi_of(make_case(app, session, world, clock)).text
    login(client, "staff")
    token = csrf_of(client, f"/cases/{coi}")
    clock.advance(minutes=16)
    response = client.post(f"/cases/{coi}/patient", data={
        "name": "Ann Corrected", "reason": "typo at intake", "password": PASSWORD,
        "csrf_token": token})
    assert response.headers["Location"] == f"/login?next=/cases/{coi}"
    assert login_to(client, response.headers["Location"]).headers["Location"] == f"/cases/{coi}"
    page = client.get(f"/cases/{coi}").get_data(as_text=True)
    assert 'value="Ann Corrected"' in page and 'value="typo at intake"' in page
    assert "entries were kept" in page and PASSWORD not in page
    assert "Ann Example" in page  # not corrected


def test_an_alarm_resolution_is_given_back(app, client, clock, world, session):
    case = make_case(app, session, world, clock)
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="temperature",
                               code="excursion_single", severity="critical", summary="test",
                               rule={"rule": "test"}, case_id=case.id)
    assert alarm is not None
    alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("qa"),
                       alarm_id=alarm.id, comment="looking at it")
    session.commit()
    login(client, "qa")
    token = csrf_of(client, f"/alarms/{alarm.id}")
    clock.advance(minutes=16)
    response = client.post(f"/alarms/{alarm.id}/resolve", data={
        "outcome": "accepted", "comment": "within stability data", "password": PASSWORD,
        "csrf_token": token})
    assert response.headers["Location"] == f"/login?next=/alarms/{alarm.id}"
    login(client, "qa")
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    assert "within stability data</textarea>" in page
    assert 'value="accepted" selected' in page and "entries were kept" in page
    session.expire_all()
    assert session.exec(select(Alarm).where(Alarm.id == alarm.id)).one().state == "acknowledged"


def test_the_scan_page_is_told_it_was_signed_out_and_goes_on_after_a_new_login(
        app, client, clock, world, session):
    case = make_case(app, session, world, clock)

    login(client, "staff")
    token = re.search(r'data-csrf="([^"]+)"', client.get("/scan").get_data(as_text=True))
    assert token
    clock.advance(minutes=16)
    body = {"case": coi_of(case).text, "scans": [{"text": coi_of(case).text}], "partial": True,
            "idempotency_key": "expiry-0001", "device_at": clock.now().isoformat()}
    headers = {"X-CSRFToken": token.group(1), "Accept": "application/json"}
    answer = client.post("/scan/judge", json=body, headers=headers)
    assert answer.status_code == 401 and answer.mimetype == "application/problem+json"
    problem = answer.get_json()
    assert problem["code"] == "session_ended" and problem["title"] == "Signed out"
    assert problem["detail"].startswith(IDLE) and "nothing was recorded" in problem["detail"]
    assert problem["login"] == "/login?next=/scan/signed-in"
    # Logged in again (another tab): the page takes a new CSRF token and goes on.
    assert login_to(client, problem["login"]).headers["Location"] == "/scan/signed-in"
    assert "go back to the scan page" in client.get("/scan/signed-in").get_data(as_text=True)
    fresh = client.get("/scan/token", headers={"Accept": "application/json"}).get_json()["csrf"]
    again = client.post("/scan/judge", json=body,
                        headers={"X-CSRFToken": fresh, "Accept": "application/json"})
    assert again.status_code == 200, again.get_json()


def test_a_logged_in_form_without_its_csrf_token_is_still_refused(client, world, session):
    login(client, "staff")
    response = client.post("/cases/new", data=ENROL_FORM)
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)
    assert count(session, Case) == 0
