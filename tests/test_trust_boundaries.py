"""Issue 14's reproduced attacks, one regression test each: scoped administration, tokens
that act only as their maker within their scopes, server-side sessions that end, scans of
other sites' cases answered as unknown codes, password rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from coi.core.errors import Forbidden, InvalidInput
from coi.core.identifiers import CoiId
from coi.core.workflow import Entry
from coi.models import (
    Alarm,
    ApiToken,
    AuditEntry,
    AuditEntrySite,
    CustodyEvent,
    RoleGrant,
    User,
    coi_of,
)
from coi.passwords import password_matches
from coi.services import custody, tokens, users
from coi.services.custody import CaseNotKnown
from tests.helpers import (
    CSRF,
    PASSWORD,
    Flow,
    api_token,
    bearer,
    count,
    login,
    make_case,
    post_form,
)

NEW_PASSWORD = "violet tundra quarry 88"


def grant_of(session: Session, user_id: int) -> RoleGrant:
    return session.exec(select(RoleGrant).where(RoleGrant.user_id == user_id)).one()


# ------------------------------------------------------------------ scoped administration

def test_a_one_site_admin_cannot_take_over_another_sites_nurse(client, session, world):
    # The attack: Boston's admin grants Berlin's nurse a Boston role, then acts as her.
    login(client, "admin")
    outsider = world.actor("outsider").user_id
    bos = str(world.sites["BOS"].id)
    response = post_form(client, "/admin/users", f"/admin/users/{outsider}/grants",
                         {"site": bos, "role": "site_staff", "reason": "takeover"})
    assert response.status_code == 403
    assert "also works at sites you do not administer" in response.get_data(as_text=True)
    session.rollback()
    assert len(session.exec(select(RoleGrant).where(RoleGrant.user_id == outsider)).all()) == 1
    # Nor deactivate, reset or end the sessions of her, or of the global administrator.
    root = world.actor("root").user_id
    for target in (outsider, root):
        for action, data in ((f"/admin/users/{target}/active", {"active": "0"}),
                             (f"/admin/users/{target}/password", {}),
                             (f"/admin/users/{target}/sessions/end", {})):
            answer = post_form(client, "/admin/users", action, data | {"reason": "takeover"})
            assert answer.status_code == 403, action
    session.rollback()
    assert session.get(User, root).active and session.get(User, outsider).active


def test_the_users_page_lists_only_the_accounts_an_admin_manages(client, world):
    login(client, "admin")
    page = client.get("/admin/users").get_data(as_text=True)
    assert "<code>staff</code>" in page and "<code>outsider</code>" not in page
    assert "<code>root</code>" not in page
    client.post("/logout", data={"csrf_token": CSRF.search(page).group(1)})  # type: ignore[union-attr]
    login(client, "root")
    page = client.get("/admin/users").get_data(as_text=True)
    assert "<code>outsider</code>" in page and "global administrator" in page


def test_a_global_administrator_manages_every_site_and_only_one_makes_another(
        session, clock, world):
    outsider = world.actor("outsider").user_id
    users.set_active(session=session, now=clock.now(), actor=world.actor("root"),
                     user_id=outsider, active=False, reason="left")
    with pytest.raises(Forbidden, match="Only a global administrator"):
        users.set_global_admin(session=session, now=clock.now(), actor=world.actor("admin"),
                               user_id=world.actor("admin").user_id, value=True, reason="me")
    users.set_global_admin(session=session, now=clock.now(), actor=world.actor("root"),
                           user_id=world.actor("admin").user_id, value=True, reason="covers")
    entry = session.exec(select(AuditEntry).where(AuditEntry.field == "global_admin")
                         .order_by(AuditEntry.id.desc())).first()  # type: ignore[union-attr]
    assert entry is not None and entry.new_value == "True"


# ------------------------------------------------------------------ tokens

def test_a_token_is_issued_only_by_the_person_it_acts_as(session, clock, world):
    with pytest.raises(Forbidden, match="acts as the person who creates it"):
        tokens.issue_token(session=session, now=clock.now(), actor=world.actor("admin"),
                           user_id=world.actor("staff").user_id, name="x", days=30, reason="r")
    with pytest.raises(Forbidden, match="cannot issue tokens"):
        as_token = replace(world.actor("staff"), scopes=frozenset({"read"}))
        tokens.issue_token(session=session, now=clock.now(), actor=as_token,
                           user_id=as_token.user_id, name="x", days=30, reason="r")


def test_the_tokens_page_issues_once_with_the_default_lifetime_and_scopes(client, session,
                                                                          clock, world):
    login(client, "courier")
    response = post_form(client, "/account/tokens", "/account/tokens",
                         {"name": "van phone", "days": "90", "scopes": ["scan", "upload"],
                          "reason": "new phone"})
    assert response.status_code == 302  # post, redirect, get
    first = client.get("/account/tokens").get_data(as_text=True)
    assert "coi_" in first and "shown only once" in first
    again = client.get("/account/tokens").get_data(as_text=True)  # a reload issues nothing
    assert 'class="token"' not in again
    session.rollback()
    token = session.exec(select(ApiToken).where(ApiToken.name == "van phone")).one()
    assert token.scopes == "scan upload"
    assert token.expires_at == clock.now() + timedelta(days=90)
    assert 'value="90"' in again  # the form's default: COI_API_TOKEN_DAYS


def test_a_token_can_do_only_what_its_scopes_allow(client, session, clock, world):
    flow = Flow(client.application, session, world, clock)
    reader = api_token(session, clock, world, "staff", scopes=["read"])
    scanner = api_token(session, clock, world, "staff", scopes=["scan"])
    assert client.get(f"/api/v1/cases/{flow.coi.text}", headers=bearer(reader)).status_code == 200
    assert client.get(f"/api/v1/cases/{flow.coi.text}", headers=bearer(scanner)).status_code == 403
    scan = {"scans": [{"text": flow.bag}], "partial": True, "idempotency_key": "scope-test-0001",
            "device_at": clock.now().isoformat()}
    refused = client.post("/api/v1/scans", json=scan, headers=bearer(reader))
    assert refused.status_code == 403 and "scopes" in refused.get_json()["detail"]
    accepted = client.post("/api/v1/scans", json=scan, headers=bearer(scanner))
    assert accepted.status_code == 200, accepted.get_json()


def test_a_revoked_grant_or_deactivated_account_stops_a_token_at_once(client, session, clock,
                                                                     world):
    case = make_case(client.application, session, world, clock)
    session.commit()
    token = api_token(session, clock, world, "staff")
    url = f"/api/v1/cases/{coi_of(case).text}"
    assert client.get(url, headers=bearer(token)).status_code == 200
    staff = world.actor("staff").user_id
    users.revoke_role(session=session, now=clock.now(), actor=world.actor("admin"),
                      grant_id=grant_of(session, staff).id, reason="moved")  # type: ignore[arg-type]
    session.commit()
    assert client.get(url, headers=bearer(token)).status_code in (403, 404)
    users.set_active(session=session, now=clock.now(), actor=world.actor("admin"), user_id=staff,
                     active=False, reason="left")
    session.commit()
    assert client.get(url, headers=bearer(token)).status_code == 401


def test_audit_and_ledger_rows_name_the_token_or_session_they_came_through(
        client, session, clock, world):
    token = api_token(session, clock, world, "staff")
    token_row = session.exec(select(ApiToken).order_by(ApiToken.id.desc())).first()  # type: ignore[union-attr]
    assert token_row is not None
    enrolled = client.post("/api/v1/cases", json={
        "site": "BOS", "product": "CARTX", "manufacturing_site": "MFG",
        "patient": {"name": "Via Token", "birth_date": "1970-01-01", "mrn": "V-1"}},
        headers=bearer(token))
    assert enrolled.status_code == 201, enrolled.get_json()
    session.rollback()
    via = f"token {token_row.id} (staff device)"
    entry = session.exec(select(AuditEntry).where(AuditEntry.entity == "patient")
                         .order_by(AuditEntry.id.desc())).first()  # type: ignore[union-attr]
    assert entry is not None and entry.via == via
    event = session.exec(select(CustodyEvent).order_by(CustodyEvent.id.desc())).first()  # type: ignore[union-attr]
    assert event is not None and json.loads(event.body)["via"] == via
    # Through a browser session: the session's number.
    login(client, "staff")
    post_form(client, "/cases/new", "/cases/new", {
        "site": "BOS", "product": "CARTX", "manufacturing_site": "MFG", "name": "Via Session",
        "birth_date": "1971-01-01", "mrn": "V-2"})
    session.rollback()
    entry = session.exec(select(AuditEntry).where(AuditEntry.entity == "patient")
                         .order_by(AuditEntry.id.desc())).first()  # type: ignore[union-attr]
    assert entry is not None and entry.via is not None and entry.via.startswith("session ")


# ------------------------------------------------------------------ server-side sessions

def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def test_an_old_cookie_replayed_after_logout_gets_the_login_page(client, world):
    login(client, "staff")
    assert client.get("/cases").status_code == 200
    stolen = session_cookie(client)
    page = client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": CSRF.search(page).group(1)})  # type: ignore[union-attr]
    client.set_cookie("session", stolen)
    response = client.get("/cases")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_session_ends_after_15_idle_minutes_and_says_so(client, clock, world):
    login(client, "staff")
    clock.advance(minutes=14)
    assert client.get("/cases").status_code == 200  # activity keeps it alive
    clock.advance(minutes=14)
    assert client.get("/cases").status_code == 200
    clock.advance(minutes=16)
    response = client.get("/cases", follow_redirects=True)
    assert "signed out after 15 minutes without activity" in response.get_data(as_text=True)
    assert client.get("/cases").status_code == 302


def test_a_session_lasts_at_most_12_hours_however_active(client, clock, world):
    login(client, "staff")
    for _ in range(71):  # every 10 minutes for 11 h 50 min
        clock.advance(minutes=10)
        assert client.get("/").status_code == 200
    clock.advance(minutes=10)
    response = client.get("/cases", follow_redirects=True)
    assert "signed out after 12 hours, the longest a session lasts" in response.get_data(as_text=True)


def test_the_limits_are_settings(app_config, clock, world):
    from coi.app import create_app

    app = create_app(app_config | {"SESSION_IDLE_MINUTES": 5})
    client = app.test_client()
    login(client, "staff")
    clock.advance(minutes=6)
    assert client.get("/cases").status_code == 302


def test_a_password_change_ends_the_other_sessions(app, world):
    mine, other = app.test_client(), app.test_client()
    login(mine, "staff")
    login(other, "staff")
    response = post_form(mine, "/account/password", "/account/password",
                         {"current": PASSWORD, "new": NEW_PASSWORD, "repeated": NEW_PASSWORD})
    assert response.status_code == 302
    assert mine.get("/cases").status_code == 200  # this browser goes on, in a new session
    answer = other.get("/cases", follow_redirects=True)
    assert "signed out because the password was changed" in answer.get_data(as_text=True)
    fresh = app.test_client()
    assert login(fresh, "staff", NEW_PASSWORD).status_code == 302
    assert fresh.get("/cases").status_code == 200


def test_an_admin_ends_a_persons_sessions_audited(app, session, world):
    nurse, admin = app.test_client(), app.test_client()
    login(nurse, "staff")
    login(admin, "admin")
    staff = world.actor("staff").user_id
    response = post_form(admin, "/admin/users", f"/admin/users/{staff}/sessions/end",
                         {"reason": "phone stolen"})
    assert response.status_code == 302
    assert nurse.get("/cases").status_code == 302
    session.rollback()
    entry = session.exec(select(AuditEntry).where(AuditEntry.field == "sessions_ended")).one()
    assert (entry.new_value, entry.reason) == ("1", "phone stolen")


# ------------------------------------------------------------------ scans across sites

def test_another_sites_case_answers_exactly_as_an_unknown_code(client, session, clock, world):
    flow = Flow(client.application, session, world, clock)
    token = api_token(session, clock, world, "outsider")
    events, alarms_before = count(session, CustodyEvent), count(session, Alarm)
    extra = {"step": "collect", "device_at": clock.now().isoformat()}
    theirs = client.post("/api/v1/scans", json={"scans": [{"text": flow.bag}],
                                                "idempotency_key": "outsider-0001"} | extra,
                         headers=bearer(token))
    never = CoiId.issue(flow.coi.facility, 2000 + int(flow.coi.year), 999).text  # not enrolled
    missing = client.post("/api/v1/scans", json={"scans": [{"text": never}],
                                                 "idempotency_key": "outsider-0002"} | extra,
                          headers=bearer(token))
    assert theirs.status_code == missing.status_code == 404
    strip = lambda body: {k: v for k, v in body.items() if k != "instance"}  # noqa: E731
    assert strip(theirs.get_json()) == strip(missing.get_json())
    assert "case" not in json.dumps(theirs.get_json()).lower().split("no case of yours")[0]
    assert count(session, CustodyEvent) == events and count(session, Alarm) == alarms_before
    # The attempt is in the scanner's own audit trail, at their site only.
    entry = session.exec(select(AuditEntry).where(AuditEntry.entity == "scan")
                         .order_by(AuditEntry.id)).first()  # type: ignore[arg-type]
    assert entry is not None and entry.actor_id == world.actor("outsider").user_id
    sites = session.exec(select(AuditEntrySite.site_id).where(
        AuditEntrySite.entry_id == entry.id)).all()
    assert sites == [world.sites["BER"].id]


def test_the_courier_is_judged_once_a_handoff_waits_for_them(session, clock, world, app):
    flow = Flow(app, session, world, clock)
    flow.until("pack")
    with pytest.raises(CaseNotKnown):  # nothing handed to a courier yet
        custody.scan(session=session, now=clock.now(), actor=world.actor("courier"),
                     entries=[Entry(flow.bag)], step_name="pickup")
    session.rollback()
    flow.until("pickup")  # given by the nurse, received by the courier
    flow.until("deliver_manufacturing")  # and handed on by the courier: custody says so


# ------------------------------------------------------------------ passwords

@pytest.mark.parametrize("password, why", [
    ("short1", "at least 12 characters"),
    ("aaaaaaaaaaaa", "too easy to guess"),
    ("password1234", "too easy to guess"),
    ("newcomer2026!x", "must not contain your username"),
    ("Jane Doe forever", "must not contain your username or your name"),
])
def test_weak_passwords_are_refused(session, clock, password, why):
    with pytest.raises(InvalidInput, match=why):
        users.create_user(session=session, now=clock.now(), actor=None, username="newcomer",
                          full_name="Jane Doe", password=password, reason="joins")


def test_an_admin_reset_forces_a_new_password_at_the_next_login(app, session, world):
    admin, nurse = app.test_client(), app.test_client()
    login(admin, "admin")
    staff = world.actor("staff").user_id
    response = post_form(admin, "/admin/users", f"/admin/users/{staff}/password",
                         {"reason": "forgot it"})
    assert response.status_code == 302
    page = admin.get("/admin/users").get_data(as_text=True)
    temporary = page.split("one-time password in person: ")[1].split(" ")[0]
    assert login(nurse, "staff", PASSWORD).status_code == 401  # the old one is gone
    assert login(nurse, "staff", temporary).headers["Location"].startswith("/account/password")
    assert nurse.get("/cases").headers["Location"].startswith("/account/password")
    post_form(nurse, "/account/password", "/account/password",
              {"current": temporary, "new": NEW_PASSWORD, "repeated": NEW_PASSWORD})
    assert nurse.get("/cases").status_code == 200


def test_password_aging_is_optional_and_forces_a_change(app_config, clock, world):
    from coi.app import create_app

    app = create_app(app_config | {"PASSWORD_MAX_AGE_DAYS": 30})
    client = app.test_client()
    login(client, "staff")
    assert client.get("/cases").status_code == 200
    clock.advance(days=31)
    login(client, "staff")
    assert client.get("/cases").headers["Location"].startswith("/account/password")


def test_changing_your_password_needs_the_current_one(client, session, world):
    login(client, "staff")
    response = post_form(client, "/account/password", "/account/password",
                         {"current": "wrong password here", "new": NEW_PASSWORD,
                          "repeated": NEW_PASSWORD})
    assert response.status_code == 401
    assert "current password is wrong" in response.get_data(as_text=True)
    session.rollback()
    user = session.get(User, world.actor("staff").user_id)
    assert user is not None and password_matches(user.password_hash, PASSWORD)
