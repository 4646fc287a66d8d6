"""Issue 17, item 4: every POST that creates something answers with a redirect (post,
redirect, get), so a reload of the page shown after it sends nothing again. The table of every
route in tests/test_access.py checks that each web POST redirects; here, the reloads a user
would make, and the API token shown once."""

from __future__ import annotations

import re

from sqlmodel import select

from coi.models import ApiToken, Case, Unit, User, coi_of
from tests.helpers import ENROL_FORM, PASSWORD, cookie_text, count, login, make_case, post_form

TOKEN = re.compile(r'<code class="token">([^<]+)</code>')


def reload_after(client, response):
    """The browser follows the redirect, then the person presses reload: two GETs."""
    assert response.status_code in (302, 303), response.status_code
    first = client.get(response.headers["Location"])
    second = client.get(response.headers["Location"])
    return first, second


def test_an_issued_api_token_is_shown_once_and_a_reload_issues_no_second(
        client, world, session):
    login(client, "staff")
    response = post_form(client, "/account/tokens", "/account/tokens",
                         {"name": "scanner 2", "days": "30", "scopes": "scan",
                          "reason": "new device"})
    assert response.headers["Location"] == "/account/tokens"
    assert "scanner 2" not in cookie_text(client)
    first, second = reload_after(client, response)
    shown = TOKEN.search(first.get_data(as_text=True))
    assert shown and "Copy it now" in first.get_data(as_text=True)
    assert shown.group(1) not in cookie_text(client)  # never readable in the cookie
    assert TOKEN.search(second.get_data(as_text=True)) is None  # shown once
    assert count(session, ApiToken) == 1
    # The token shown works.
    answer = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {shown.group(1)}"})
    assert answer.status_code != 401


def test_an_enrolment_reloaded_enrols_no_second_patient(client, world, session):
    login(client, "staff")
    response = post_form(client, "/cases/new", "/cases/new", ENROL_FORM)
    first, second = reload_after(client, response)
    assert first.status_code == second.status_code == 200
    assert "Enrolled." in first.get_data(as_text=True)
    assert count(session, Case) == 1


def test_a_unit_registration_reloaded_registers_no_second_unit(app, client, clock, world, session):
    coi = coi_of(make_case(app, session, world, clock)).text
    login(client, "staff")
    response = post_form(client, f"/cases/{coi}", f"/cases/{coi}/units", {"kind": "apheresis_bag"})
    first, _second = reload_after(client, response)
    assert "Registered apheresis bag" in first.get_data(as_text=True)
    assert count(session, Unit) == 1


def test_an_account_created_and_reloaded_is_created_once(client, world, session):
    login(client, "admin")
    response = post_form(client, "/admin/users", "/admin/users",
                         {"username": "newcomer", "full_name": "New Comer",
                          "password": PASSWORD, "reason": "joined the team"})
    reload_after(client, response)
    session.rollback()
    assert len(session.exec(select(User).where(User.username == "newcomer")).all()) == 1


def test_a_password_change_redirects(client, world):
    login(client, "staff")
    new = "violet tundra quarry 88"
    response = post_form(client, "/account/password", "/account/password",
                         {"current": PASSWORD, "new": new, "repeated": new})
    first, second = reload_after(client, response)
    assert first.status_code == second.status_code == 200
