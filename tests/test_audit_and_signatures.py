"""Master-data audit trail and electronic signatures."""

from __future__ import annotations

import pytest
from sqlmodel import select

from coi.core.errors import AuthenticationFailed, Forbidden, InvalidInput
from coi.models import AuditEntry, Signature, User, coi_of
from coi.services import signatures, tokens, users
from tests.helpers import PASSWORD, login, make_case, post_form


def entries(session, entity: str) -> list[AuditEntry]:
    session.rollback()
    return list(session.exec(select(AuditEntry).where(AuditEntry.entity == entity)
                             .order_by(AuditEntry.id)))


def test_creating_an_account_records_who_when_what_and_why(session, world, clock):
    clock.advance(hours=1)
    admin = world.actor("admin")
    user = users.create_user(session=session, now=clock.now(), actor=admin, username="New.Nurse",
                             full_name="New Nurse", password="a long password 1",
                             reason="hired for apheresis unit")
    session.commit()
    rows = [e for e in entries(session, "user") if e.entity_id == str(user.id)]
    assert {(e.field, e.old_value, e.new_value) for e in rows} >= {
        ("username", None, "new.nurse"), ("full_name", None, "New Nurse")}
    assert {e.actor_name for e in rows} == {"Admin Person (admin)"}
    assert {e.at for e in rows} == {clock.now()}
    assert {e.reason for e in rows} == {"hired for apheresis unit"}
    assert all("long password" not in (e.new_value or "") for e in rows)


def test_granting_and_revoking_a_role_is_audited_with_old_and_new_value(session, world, clock):
    admin = world.actor("admin")
    grant = users.grant_role(session=session, now=clock.now(), actor=admin,
                             user_id=world.actor("staff2").user_id, site_id=world.sites["BOS"].id,
                             role="qa", reason="covering QA this week")
    users.revoke_role(session=session, now=clock.now(), actor=admin, grant_id=grant.id,
                      reason="cover ended")
    session.commit()
    rows = [e for e in entries(session, "role_grant") if e.entity_id == "staff2@BOS"]
    assert [(e.action, e.old_value, e.new_value, e.reason) for e in rows][-2:] == [
        ("create", None, "qa", "covering QA this week"), ("delete", "qa", None, "cover ended")]


def test_a_change_without_a_reason_is_refused(session, world, clock):
    with pytest.raises(InvalidInput, match="reason is required"):
        users.set_active(session=session, now=clock.now(), actor=world.actor("admin"),
                         user_id=world.actor("staff2").user_id, active=False, reason="  ")
    session.rollback()
    assert session.get(User, world.actor("staff2").user_id).active is True


def test_an_admin_of_one_site_cannot_grant_roles_at_another(session, world, clock):
    with pytest.raises(Forbidden):
        users.grant_role(session=session, now=clock.now(), actor=world.actor("admin"),
                         user_id=world.actor("staff2").user_id, site_id=world.sites["BER"].id,
                         role="site_staff", reason="x" * 5)


def test_issuing_and_revoking_a_token_is_audited_without_the_token(session, world, clock):
    # Issued by the person it acts as; revoked by their administrator.
    text, token = tokens.issue_token(session=session, now=clock.now(), actor=world.actor("staff2"),
                                     user_id=world.actor("staff2").user_id, name="handheld 7",
                                     days=90, reason="new scanner")
    tokens.revoke_token(session=session, now=clock.now(), actor=world.actor("admin"),
                        token_id=token.id, reason="scanner lost")
    session.commit()
    rows = entries(session, "api_token")
    assert [e.reason for e in rows if e.field in ("name", "revoked_at")] == [
        "new scanner", "scanner lost"]
    assert all(text not in (e.new_value or "") for e in rows)


def test_admin_sees_the_audit_trail_filtered_by_record(client, world):
    login(client, "admin")
    page = client.get("/admin/audit?entity=role_grant").get_data(as_text=True)
    assert "staff@BOS" in page and "fixture" in page
    assert "site <code>BOS</code>" not in page  # site entries are filtered out


# ------------------------------------------------------------------ e-signatures

def test_a_signature_needs_the_signers_password_and_saves_nothing_without_it(
        session, world, clock):
    with pytest.raises(AuthenticationFailed, match="nothing was saved"):
        signatures.sign(session=session, now=clock.now(), signer=world.actor("qa"),
                        password="not my password", meaning="approved", subject_type="site",
                        subject_id="BOS", content={"x": 1})
    session.rollback()
    assert session.exec(select(Signature)).all() == []


def test_a_signature_is_bound_to_the_hash_of_exactly_what_was_signed(session, world, clock):
    content = {"record": "release", "units": ["A999826000001A01X"], "temperature_ok": True}
    signature = signatures.sign(session=session, now=clock.now(), signer=world.actor("qa"),
                                password=PASSWORD, meaning="released", subject_type="case",
                                subject_id="A999826000001X", content=content)
    assert len(signature.content_sha256) == 64
    assert signatures.matches(signature, dict(reversed(list(content.items()))))  # key order
    assert not signatures.matches(signature, content | {"temperature_ok": False})
    assert signature.signer_name == "Qa Person (qa)" and signature.signed_at == clock.now()


def test_an_unknown_meaning_is_refused(session, world, clock):
    with pytest.raises(InvalidInput, match="not a signature meaning"):
        signatures.sign(session=session, now=clock.now(), signer=world.actor("qa"),
                        password=PASSWORD, meaning="liked", subject_type="x", subject_id=1,
                        content={})


def test_a_signed_correction_shows_its_manifestation_on_the_case_page(
        app, client, world, session, clock):
    case = make_case(app, session, world, clock)
    coi = coi_of(case).text
    login(client, "staff")
    response = post_form(client, f"/cases/{coi}", f"/cases/{coi}/patient",
                         {"name": "Anne Example", "reason": "typo at enrolment",
                          "password": PASSWORD})
    assert response.status_code == 302
    page = client.get(f"/cases/{coi}").get_data(as_text=True)
    assert "Anne Example" in page
    # printed name, meaning, local date and time with zone (09:00 UTC = 04:00 in Boston, EST)
    assert "Staff Person" in page and "corrected" in page and "2026-11-22 04:00 EST" in page
    assert "typo at enrolment" in page and "Ann Example" in page  # old value, readable here


def test_a_correction_with_a_wrong_password_changes_nothing(app, client, world, session, clock):
    case = make_case(app, session, world, clock)
    coi = coi_of(case).text
    login(client, "staff")
    before = len(entries(session, "patient"))
    response = post_form(client, f"/cases/{coi}", f"/cases/{coi}/patient",
                         {"name": "Anne Example", "reason": "typo", "password": "wrong one"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The password does not match" in page
    assert "Anne Example" not in page
    assert len(entries(session, "patient")) == before
    assert app.extensions["coi.phi"].unseal(None) is None


def test_an_admin_manages_only_the_people_of_their_own_sites(session, world, clock):
    berlin = world.actor("outsider").user_id
    with pytest.raises(Forbidden, match="works at sites you do not administer"):
        users.set_active(session=session, now=clock.now(), actor=world.actor("admin"),
                         user_id=berlin, active=False, reason="not mine to do")
    with pytest.raises(Forbidden, match="acts as the person who creates it"):
        tokens.issue_token(session=session, now=clock.now(), actor=world.actor("admin"),
                           user_id=berlin, name="x", days=1, reason="not mine to do")
    session.rollback()
    assert session.get(User, berlin).active is True
    boston = users.set_active(session=session, now=clock.now(), actor=world.actor("admin"),
                              user_id=world.actor("staff2").user_id, active=False,
                              reason="left the hospital")
    assert boston.active is False


def test_a_refused_new_account_keeps_what_was_typed_except_the_password(client, world, session):
    login(client, "admin")
    response = post_form(client, "/admin/users", "/admin/users", {
        "username": "new.nurse", "full_name": "New Nurse", "password": "short",
        "reason": "hired"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "at least 12 characters" in page
    assert 'value="new.nurse"' in page and 'value="New Nurse"' in page and 'value="hired"' in page
    assert page.count("The account was not created") == 1
    assert 'value="short"' not in page
    session.rollback()
    assert session.exec(select(User).where(User.username == "new.nurse")).first() is None
