"""Logging in and out, CSRF, safe redirects, API tokens and the session cookie."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from coi.app import create_app
from coi.config import ConfigError
from coi.models import ApiToken, Case, LoginAttempt
from coi.services import tokens, users
from tests.helpers import CSRF, PASSWORD, START, api_token, bearer, login, post_form

ENROL_FORM = {"site": "BOS", "product": "CARTX", "manufacturing_site": "MFG",
              "name": "Harriet Vance", "birth_date": "1961-03-14", "mrn": "MRN-0001"}


def count(session: Session, model: type) -> int:
    session.rollback()  # a fresh snapshot: SQLite readers keep theirs until the transaction ends
    return session.exec(select(func.count()).select_from(model)).one()


def attempts(session: Session) -> list[tuple[str, bool]]:
    session.rollback()
    rows = session.exec(select(LoginAttempt).order_by(col(LoginAttempt.id))).all()
    return [(row.username, row.succeeded) for row in rows]


def sent_to_login(response) -> str | None:
    """The `next` of a redirect to the login page, or None if it is no such redirect."""
    if response.status_code not in (302, 303):
        return None
    location = urlsplit(response.headers["Location"])
    return parse_qs(location.query).get("next", [""])[0] if location.path == "/login" else None


def fail_logins(client, username: str, times: int) -> None:
    for _ in range(times):
        assert login(client, username, "wrong password").status_code == 401


# ---------------------------------------------------------------- login and logout

def test_login_with_the_right_password_lands_on_the_start_page_with_the_users_name(client, world):
    response = login(client, "staff")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Welcome, Staff Person" in page.get_data(as_text=True)


def test_wrong_password_is_refused_with_a_message_and_recorded(client, world, session):
    response = login(client, "staff", "not the password")
    assert response.status_code == 401
    assert "Unknown username or wrong password" in response.get_data(as_text=True)
    assert attempts(session) == [("staff", False)]
    assert sent_to_login(client.get("/cases")) == "/cases"  # not logged in


def test_unknown_username_gets_the_same_answer_as_a_wrong_password(client, world):
    unknown = login(client, "nobody", PASSWORD)
    wrong = login(client, "staff", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert "Unknown username or wrong password" in unknown.get_data(as_text=True)


def test_logout_ends_the_session(client, world):
    login(client, "staff")
    assert client.get("/cases").status_code == 200
    response = post_form(client, "/", "/logout", {})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert sent_to_login(client.get("/cases")) == "/cases"


def test_logout_without_a_csrf_token_is_refused_and_keeps_the_session(client, world):
    login(client, "staff")
    assert client.post("/logout").status_code == 400
    assert client.get("/cases").status_code == 200


# ---------------------------------------------------------------- login_attempt

def test_every_login_attempt_is_recorded(client, world, session, clock):
    login(client, "staff", "wrong")
    login(client, "staff")
    login(client, "nobody", "whatever")
    fail_logins(client, "staff2", 5)
    login(client, "staff2")  # refused unchecked, in the delay: recorded as a failure too
    assert attempts(session) == [("staff", False), ("staff", True), ("nobody", False)] + \
        [("staff2", False)] * 6
    rows = session.exec(select(LoginAttempt)).all()
    assert {row.at for row in rows} == {START}
    assert {row.remote_addr for row in rows} == {"127.0.0.1"}


@pytest.mark.parametrize("statement", [
    "UPDATE login_attempt SET succeeded = :yes",
    "DELETE FROM login_attempt",
], ids=["update", "delete"])
def test_login_attempts_cannot_be_rewritten_or_deleted(client, world, session, engine,
                                                       statement):
    login(client, "staff", "wrong")
    login(client, "staff")
    before = attempts(session)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text(statement), {"yes": True} if ":yes" in statement else {})
    assert attempts(session) == before == [("staff", False), ("staff", True)]


# ---------------------------------------------------------------- CSRF and redirects

def test_a_form_without_csrf_token_is_refused_and_saves_nothing(client, world, session):
    login(client, "staff")
    before = count(session, Case)
    response = client.post("/cases/new", data=ENROL_FORM)
    assert response.status_code == 400
    assert "Nothing was saved" in response.get_data(as_text=True)
    assert count(session, Case) == before == 0


def test_a_form_with_a_forged_csrf_token_is_refused_and_saves_nothing(client, world, session):
    login(client, "staff")
    response = client.post("/cases/new", data={**ENROL_FORM, "csrf_token": "forged"})
    assert response.status_code == 400
    assert count(session, Case) == 0


def test_after_login_a_local_next_page_is_followed(client, world):
    sent = client.get("/cases?state=enrolled")
    assert sent_to_login(sent) == "/cases?state=enrolled"
    page = client.get(sent.headers["Location"])
    token = CSRF.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert 'name="next" value="/cases?state=enrolled"' in page.get_data(as_text=True)
    response = client.post("/login", data={"username": "staff", "password": PASSWORD,
                                           "next": "/cases?state=enrolled", "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/cases?state=enrolled"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example",
                                    "javascript:alert(1)"])
def test_after_login_a_next_page_elsewhere_is_ignored(client, world, target):
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert "evil" not in page and "javascript" not in page
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    response = client.post("/login", query_string={"next": target},
                           data={"username": "staff", "password": PASSWORD, "next": target,
                                 "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


# ---------------------------------------------------------------- deactivation

def test_a_deactivated_user_is_logged_out_on_the_next_request(client, world, session, clock):
    login(client, "staff")
    assert client.get("/cases").status_code == 200
    staff = world.actor("staff").user_id
    users.set_active(session=session, now=clock.now(), actor=world.actor("admin"),
                     user_id=staff, active=False, reason="left the hospital")
    session.commit()
    assert sent_to_login(client.get("/cases")) == "/cases"
    assert login(client, "staff").status_code == 401  # and cannot log in again
    # Reactivation does not bring the old session back: the person logs in afresh.
    users.set_active(session=session, now=clock.now(), actor=world.actor("admin"),
                     user_id=staff, active=True, reason="returned")
    session.commit()
    assert sent_to_login(client.get("/cases")) == "/cases"


def test_a_deactivated_users_api_token_stops_working(client, world, session, clock):
    token = api_token(session, clock, world, "staff")
    assert client.get("/api/v1/cases", headers=bearer(token)).status_code == 200
    users.set_active(session=session, now=clock.now(), actor=world.actor("admin"),
                     user_id=world.actor("staff").user_id, active=False, reason="left")
    session.commit()
    response = client.get("/api/v1/cases", headers=bearer(token))
    assert response.status_code == 401
    assert "deactivated" in response.get_json()["detail"]


# ---------------------------------------------------------------- API tokens

def assert_api_refusal(response, says: str) -> None:
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["status"] == 401 and body["code"] == "authentication_failed"
    assert says in body["detail"]


def test_the_api_without_a_token_answers_401_problem_json(client, world):
    assert_api_refusal(client.get("/api/v1/cases"), "needs a token")


def test_a_web_login_does_not_open_the_api(client, world):
    login(client, "staff")
    assert_api_refusal(client.get("/api/v1/cases"), "needs a token")


@pytest.mark.parametrize("header", ["Basic c3RhZmY6c2VjcmV0", "Bearer", "Bearer    ",
                                    "Token coi_abc", "coi_abc"])
def test_a_malformed_authorization_header_answers_401(client, world, session, clock, header):
    token = api_token(session, clock, world, "staff")
    if header == "coi_abc":
        header = token  # the right token, but without the scheme
    assert_api_refusal(client.get("/api/v1/cases", headers={"Authorization": header}),
                       "Bearer <token>")


def test_an_unknown_token_answers_401(client, world):
    assert_api_refusal(client.get("/api/v1/cases", headers=bearer("coi_" + "x" * 43)),
                       "not valid")


def test_a_revoked_token_answers_401_saying_revoked(client, world, session, clock):
    token = api_token(session, clock, world, "staff")
    assert client.get("/api/v1/cases", headers=bearer(token)).status_code == 200
    row = session.exec(select(ApiToken).where(
        ApiToken.token_hash == tokens.token_hash(token))).one()
    tokens.revoke_token(session=session, now=clock.now(), actor=world.actor("admin"),
                        token_id=row.id, reason="device lost")  # type: ignore[arg-type]
    session.commit()
    assert_api_refusal(client.get("/api/v1/cases", headers=bearer(token)), "revoked")


def test_a_token_works_until_it_expires_then_answers_401_saying_expired(client, world, session,
                                                                        clock):
    token = api_token(session, clock, world, "staff")  # 30 days
    row = session.exec(select(ApiToken).where(
        ApiToken.token_hash == tokens.token_hash(token))).one()
    assert row.expires_at == START + timedelta(days=30)
    clock.set(row.expires_at - timedelta(seconds=1))
    assert client.get("/api/v1/cases", headers=bearer(token)).status_code == 200
    clock.set(row.expires_at + timedelta(seconds=1))
    assert_api_refusal(client.get("/api/v1/cases", headers=bearer(token)), "expired")


def test_the_token_is_stored_only_as_its_sha256(client, world, session, clock, engine):
    token = api_token(session, clock, world, "staff")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_token")).mappings().all()
    assert len(rows) == 1
    row = dict(rows[0])
    assert re.fullmatch(r"[0-9a-f]{64}", row["token_hash"])
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    for column, value in row.items():
        assert token not in str(value), f"the token is readable in api_token.{column}"
        assert token[len("coi_"):] not in str(value), f"the token's secret is in {column}"


# ---------------------------------------------------------------- the session cookie

def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def test_the_session_cookie_is_httponly_and_samesite_lax(client, world):
    cookie = session_cookie(login(client, "staff"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_in_production_the_session_cookie_is_secure(app_config):
    production = create_app(dict(app_config, MODE="production"))
    try:
        assert production.config["SESSION_COOKIE_SECURE"] is True
        cookie = session_cookie(production.test_client().get("/login"))
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        production.extensions["coi.engine"].dispose()


def test_production_refuses_to_start_without_its_keys(app_config):
    with pytest.raises(ConfigError, match="COI_PHI_KEYS"):
        create_app(dict(app_config, MODE="production", PHI_KEYS=None))


def test_a_malformed_authorization_header_does_not_break_public_endpoints(client):
    response = client.get("/api/v1/openapi.json", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert response.status_code == 200 and response.get_json()["openapi"] == "3.1.0"
