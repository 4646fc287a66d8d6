"""Management commands (`flask coi user|role|token|session`): each command's effect seen as
the person concerned sees it (a login, a page, an API call, a session), every change audited
as the operating-system user on the command line, the identity chain intact afterwards, and
bad input refused in one line with nothing written."""

from __future__ import annotations

import csv
import getpass
import io
import socket
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from coi.models import ApiToken, AuditEntry, RecordSeal, RoleGrant, User, WebSession
from coi.services import integrity
from tests.helpers import PASSWORD, bearer, count, login

OPERATOR = "os user alice on host db1 (command line)"
NEW_PASSWORD = "a much longer secret 42"


@pytest.fixture(autouse=True)
def alice_on_db1(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operating-system user and host the commands run as."""
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    monkeypatch.setattr(socket, "gethostname", lambda: "db1")


def run(app: Flask, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["coi", *args], input=input)


def ok(app: Flask, *args: str, input: str | None = None) -> str:
    result = run(app, *args, input=input)
    assert result.exit_code == 0, result.output
    return result.output  # type: ignore[no-any-return]


def signed_in(client: FlaskClient) -> bool:
    return client.get("/cases").status_code == 200


def last_entries(session: Session, entity: str) -> list[AuditEntry]:
    session.rollback()
    return list(session.exec(select(AuditEntry).where(AuditEntry.entity == entity)
                             .order_by(col(AuditEntry.id))).all())


def create_nina(app: Flask, *extra: str) -> str:
    return ok(app, "user", "create", "nina", "--name", "Nina Newcomer", "--email",
              "nina@example.org", "--reason", "joins the Boston team", *extra,
              input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")


# ---------------------------------------------------------------- users

def test_a_user_created_on_the_command_line_logs_in_on_the_web(app, session, world, client):
    output = create_nina(app)
    assert "Account nina created" in output and NEW_PASSWORD not in output
    assert login(client, "nina", NEW_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    entry = next(e for e in last_entries(session, "user") if e.field == "username"
                 and e.new_value == "nina")
    assert (entry.actor_name, entry.via, entry.actor_id) == (OPERATOR, "command line", None)
    assert entry.reason == "joins the Boston team"


def test_the_password_can_come_from_standard_input(app, world, client):
    ok(app, "user", "create", "nina", "--name", "Nina Newcomer", "--password-stdin",
       "--reason", "provisioning script", input=f"{NEW_PASSWORD}\n")
    assert login(client, "nina", NEW_PASSWORD).status_code == 302


def test_a_global_administrator_made_on_the_command_line_administers_every_site(app, world,
                                                                                 client):
    create_nina(app, "--global-admin")
    login(client, "nina", NEW_PASSWORD)
    page = client.get("/admin/users")
    assert page.status_code == 200 and "outsider" in page.get_data(as_text=True)


def test_a_deactivated_user_is_signed_out_and_cannot_log_in_until_activated(app, world, client):
    login(client, "staff")
    assert signed_in(client)
    ok(app, "user", "deactivate", "staff", "--reason", "left the hospital")
    assert not signed_in(client)
    assert login(client, "staff").status_code == 401
    ok(app, "user", "activate", "staff", "--reason", "came back")
    assert login(client, "staff").status_code == 302 and signed_in(client)


def test_a_reset_password_works_once_and_must_be_changed_at_login(app, world, client):
    other = app.test_client()
    login(other, "staff")
    output = ok(app, "user", "reset-password", "staff", "--reason", "forgot it")
    temporary = output.split("in person: ")[1].split()[0]
    assert not signed_in(other)
    assert login(client, "staff", PASSWORD).status_code == 401
    assert login(client, "staff", temporary).headers["Location"].startswith("/account/password")
    assert client.get("/cases").headers["Location"].startswith("/account/password")


def test_end_sessions_signs_a_person_out_everywhere(app, world):
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "staff")
    login(phone, "staff")
    assert "2 session(s) of staff ended" in ok(app, "user", "end-sessions", "staff",
                                                "--reason", "phone stolen")
    assert not signed_in(laptop) and not signed_in(phone)
    answer = laptop.get("/cases", follow_redirects=True).get_data(as_text=True)
    assert "signed out by an administrator" in answer


def test_the_user_list_shows_states_and_roles(app, world):
    ok(app, "user", "deactivate", "staff2", "--reason", "on leave")
    lines = ok(app, "user", "list").splitlines()
    assert any(line.split()[:1] == ["admin"] and "admin@BOS" in line for line in lines)
    assert any(line.startswith("staff2 ") and "deactivated" in line for line in lines)
    assert any(line.startswith("root ") and "global admin" in line for line in lines)


# ---------------------------------------------------------------- roles

def test_a_granted_role_opens_a_page_and_a_revoked_one_closes_it(app, world, client):
    login(client, "staff")
    assert client.get("/admin/users").status_code == 403
    ok(app, "role", "grant", "staff", "admin", "--site", "BOS", "--reason", "new site admin")
    assert client.get("/admin/users").status_code == 200
    ok(app, "role", "revoke", "staff", "admin", "--site", "BOS", "--reason", "rotation ended")
    assert client.get("/admin/users").status_code == 403


def test_a_grant_is_audited_at_its_site_as_the_operator(app, session, world):
    ok(app, "role", "grant", "staff", "qa", "--site", "mfg", "--reason", "covers QA")
    entry = last_entries(session, "role_grant")[-1]
    assert (entry.entity_id, entry.new_value, entry.actor_name, entry.via) == (
        "staff@MFG", "qa", OPERATOR, "command line")


# ---------------------------------------------------------------- tokens

def test_a_token_is_shown_once_works_and_is_refused_once_revoked(app, session, world, client):
    output = ok(app, "token", "create", "staff", "--name", "ward tablet", "--scope", "read",
                "--days", "30", "--reason", "ward 3 tablet")
    text = output.splitlines()[-1]
    assert text.startswith("coi_")
    token_id = output.split()[1]
    assert client.get("/api/v1/cases", headers=bearer(text)).status_code == 200
    listed = ok(app, "token", "list", "--user", "staff")
    assert "ward tablet" in listed and text not in listed and text[:12] in listed
    assert "valid" in listed
    ok(app, "token", "revoke", token_id, "--reason", "tablet lost")
    assert client.get("/api/v1/cases", headers=bearer(text)).status_code == 401
    assert "revoked" in ok(app, "token", "list")
    created, revoked = last_entries(session, "api_token")[0], last_entries(session, "api_token")[-1]
    assert created.actor_name == revoked.actor_name == OPERATOR
    assert revoked.field == "revoked_at" and revoked.reason == "tablet lost"


# ---------------------------------------------------------------- sessions

def test_sessions_are_listed_without_their_key_and_ended_one_by_one(app, session, world, clock):
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "staff")
    clock.advance(minutes=2)
    login(phone, "staff")
    login(app.test_client(), "qa")
    listed = ok(app, "session", "list", "--user", "staff")
    session.rollback()
    rows = session.exec(select(WebSession).where(WebSession.user_id == world.actor("staff").user_id)
                        .order_by(col(WebSession.id))).all()
    assert [line.split()[0] for line in listed.splitlines()[1:]] == [str(r.id) for r in rows]
    assert "qa" not in listed and "2026-11-22 09:00 UTC" in listed and "127.0.0.1" in listed
    cookie = laptop.get_cookie("session")
    assert cookie is not None and cookie.value not in listed
    assert all(row.key_hash not in listed for row in rows)
    ok(app, "session", "end", str(rows[0].id), "--reason", "laptop left in the ward")
    assert not signed_in(laptop) and signed_in(phone)
    assert str(rows[0].id) not in [line.split()[0] for line in
                                   ok(app, "session", "list").splitlines()[1:]]
    entry = last_entries(session, "web_session")[-1]
    assert (entry.entity_id, entry.actor_name, entry.reason) == (
        str(rows[0].id), OPERATOR, "laptop left in the ward")


def test_every_session_of_a_person_ends_with_user(app, world):
    laptop = app.test_client()
    login(laptop, "staff")
    ok(app, "session", "end", "--user", "staff", "--reason", "account review")
    assert not signed_in(laptop)
    assert "No live sessions." in ok(app, "session", "list", "--user", "staff")


# ---------------------------------------------------------------- the audit trail and the chain

def test_the_trail_and_its_exports_name_the_os_user_and_the_command_line(app, world, client):
    ok(app, "user", "deactivate", "staff2", "--reason", "on leave")
    login(client, "root")
    page = client.get("/admin/audit?entity=user").get_data(as_text=True)
    assert OPERATOR in page and "command line" in page
    assert OPERATOR in client.get("/admin/audit?actor=system&q=on+leave").get_data(as_text=True)
    assert OPERATOR not in client.get("/admin/audit?actor=admin").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(
        client.get("/admin/audit.csv?q=on+leave").get_data(as_text=True))))
    assert [(r["actor"], r["actor_id"], r["via"], r["field"]) for r in rows] == [
        (OPERATOR, "", "command line", "active")]
    entries = client.get("/admin/audit.json?q=on+leave").get_json()["entries"]
    assert [(e["actor"], e["actor_id"], e["via"]) for e in entries] == [
        (OPERATOR, None, "command line")]


def test_the_ledger_is_intact_after_a_series_of_commands(app, session, world, client):
    login(client, "staff")
    create_nina(app)
    ok(app, "role", "grant", "nina", "site_staff", "--site", "BOS", "--reason", "starts")
    output = ok(app, "token", "create", "nina", "--name", "scanner", "--reason", "device")
    ok(app, "token", "revoke", output.split()[1], "--reason", "swapped device")
    ok(app, "user", "reset-password", "nina", "--reason", "forgot it")
    ok(app, "session", "end", "--user", "staff", "--reason", "review")
    ok(app, "role", "revoke", "nina", "site_staff", "--site", "BOS", "--reason", "moved")
    ok(app, "user", "deactivate", "nina", "--reason", "left")
    session.rollback()
    report = integrity.verify(session=session, cipher=app.extensions["coi.phi"])
    assert report.findings == [] and report.seals > 0
    assert "Ledger intact" in ok(app, "ledger", "verify")


# ---------------------------------------------------------------- refusals

REFUSED = [
    (["user", "create", "staff", "--name", "Another Staff", "--password-stdin"],
     "username 'staff' is taken"),
    (["user", "create", "nina", "--name", "Nina Newcomer", "--password-stdin"],
     "at least 12 characters"),
    (["user", "create", "nora", "--name", "Nora Newcomer", "--email", "not-an-address",
      "--password-stdin"], "Give an e-mail address"),
    (["user", "deactivate", "nobody"], "No user 'nobody'"),
    (["user", "activate", "staff"], "staff is active already"),
    (["user", "reset-password", "ghost"], "No user 'ghost'"),
    (["role", "grant", "staff", "site_staff", "--site", "BOS"], "already has the role"),
    (["role", "grant", "staff", "wizard", "--site", "BOS"], "'wizard' is not a role"),
    (["role", "grant", "staff", "qa", "--site", "XXX"], "No active site with the code 'XXX'"),
    (["role", "revoke", "staff", "qa", "--site", "BOS"], "staff has no role 'qa' at BOS"),
    (["token", "create", "nobody", "--name", "x"], "No user 'nobody'"),
    (["token", "create", "staff", "--name", "x", "--days", "0"], "1 to 730 days"),
    (["token", "revoke", "999"], "No such token"),
    (["session", "end", "999"], "No session 999"),
    (["user", "deactivate", "staff", "--reason", "   "], "A reason is required"),
]


@pytest.mark.parametrize("args, why", REFUSED, ids=[" ".join(a[:3]) for a, _w in REFUSED])
def test_bad_input_is_refused_in_one_line_and_nothing_is_written(app, session, world, args, why):
    before = {model: count(session, model) for model in (User, RoleGrant, ApiToken, AuditEntry,
                                                         RecordSeal)}
    reason = [] if "--reason" in args else ["--reason", "testing a refusal"]
    result = run(app, *args, *reason, input="short\n" if "nina" in args else f"{NEW_PASSWORD}\n")
    assert result.exit_code == 1
    assert why in result.output and len(result.output.strip().splitlines()) == 1
    assert {model: count(session, model) for model in before} == before


def test_a_change_without_a_reason_is_not_run(app, session, world):
    result = run(app, "user", "deactivate", "staff")
    assert result.exit_code == 2 and "--reason" in result.output
    session.rollback()
    assert session.exec(select(User).where(User.username == "staff")).one().active


def test_a_revoked_token_cannot_be_revoked_again(app, session, world):
    output = ok(app, "token", "create", "staff", "--name", "tablet", "--reason", "ward")
    token_id = output.split()[1]
    ok(app, "token", "revoke", token_id, "--reason", "lost")
    entries = count(session, AuditEntry)
    result = run(app, "token", "revoke", token_id, "--reason", "again")
    assert result.exit_code == 1 and "revoked already" in result.output
    assert count(session, AuditEntry) == entries


def test_a_mistyped_password_confirmation_is_asked_again_never_stored(app, session, world):
    result = run(app, "user", "create", "nina", "--name", "Nina Newcomer", "--reason", "joins",
                 input=f"{NEW_PASSWORD}\ntypo typo typo typo\n")
    assert result.exit_code != 0 and "do not match" in result.output
    session.rollback()
    assert session.exec(select(User).where(User.username == "nina")).first() is None

