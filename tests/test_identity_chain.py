"""The identity chain finds what an attacker with database access changes behind the
application's back: patients' PHI swapped, a case pointed at another patient, units, alarms and
their events, role grants, the audit trail and signatures rewritten, with the append-only
triggers dropped first; and a history rewritten end to end, even with the signing key, fails
against a head exported before."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, delete, text, update
from sqlmodel import Session, SQLModel, col, func, select

from coi import demo, migrate
from coi.core.canonical import canonical_json
from coi.db import for_writing
from coi.models import (
    APPEND_ONLY_TABLES,
    Alarm,
    AlarmEvent,
    AuditEntry,
    Case,
    CustodyEvent,
    Patient,
    RecordSeal,
    RoleGrant,
    Signature,
    Unit,
    coi_of,
)
from coi.services import (
    alarms,
    enrolment,
    integrity,
    labels,
    ledger,
    patients,
    seals,
    tokens,
    users,
)
from tests.databases import ENGINE, Databases, Template
from tests.helpers import PASSWORD, Flow, World, make_case

# ---------------------------------------------------------------- the records attacked


@dataclass(frozen=True)
class Records:
    case: int  # taken along its route to release: signatures at collect and release
    other_case: int  # another patient's, whose data was corrected (a signed correction)
    patient: int
    other_patient: int
    bag: int
    alarm: int  # raised, acknowledged and resolved with a signature
    grant: int  # staff2's grant at BOS
    seals: int  # the identity chain's length, which the checkpoint signed


def fill(world: World):  # type: ignore[no-untyped-def]
    def build(app: Flask, session: Session, clock: Any) -> Records:
        flow = Flow(app, session, world, clock)
        flow.until("release")
        other = make_case(app, session, world, clock, name="Bea Other", mrn="M-2",
                          birth_date=date(1981, 2, 3))
        clock.advance(minutes=5)
        patients.correct(session=session, now=clock.now(), actor=world.actor("staff"),
                         cipher=app.extensions["coi.phi"], coi_text=coi_of(other).text,
                         name="Bea Q. Other", birth_date=date(1981, 3, 2), mrn=None,
                         reason="misspelt at enrolment", password=PASSWORD)
        alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="custody", code="late",
                                   severity="major", summary="late happened",
                                   rule={"rule": "custody.late"}, case_id=flow.case.id)
        assert alarm is not None and alarm.id is not None
        session.commit()
        clock.advance(minutes=5)
        alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("staff"),
                           alarm_id=alarm.id, comment="looking")
        session.commit()
        clock.advance(minutes=5)
        alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                       outcome="quarantined", comment="held pending DEV-12", password=PASSWORD)
        job = labels.print_set(session=session, now=clock.now(), actor=world.actor("staff"),
                               signer=app.extensions["coi.signer"], coi_text=coi_of(other).text,
                               output="png", size="2x1", include_wristband=True, reason=None)
        labels.revoke(session=session, now=clock.now(), actor=world.actor("staff"),
                      label_id=job.rows[0].id, reason="smudged", category="damaged")
        tokens.issue_token(session=session, now=clock.now(), actor=None,
                           user_id=world.actor("courier").user_id, name="scanner", days=30,
                           reason="test")
        extra = users.grant_role(session=session, now=clock.now(), actor=None,
                                 user_id=world.actor("staff2").user_id,
                                 site_id=world.sites["BOS"].id, role="qa",  # type: ignore[arg-type]
                                 reason="cover")
        session.commit()
        users.revoke_role(session=session, now=clock.now(), actor=world.actor("admin"),
                          grant_id=extra.id, reason="cover ended")  # type: ignore[arg-type]
        session.commit()
        ledger.checkpoint(session=session, now=clock.now(), signer=app.extensions["coi.signer"])
        session.commit()
        bag = session.exec(select(Unit).where(Unit.case_id == flow.case.id,
                                              Unit.kind == "apheresis_bag")).one()
        grant = session.exec(select(RoleGrant).where(
            RoleGrant.user_id == world.actor("staff2").user_id,
            RoleGrant.role == "site_staff")).one()
        return Records(flow.case.id, other.id, flow.case.patient_id, other.patient_id,  # type: ignore[arg-type]
                       bag.id, alarm.id, grant.id, seals.head(session=session)[0])  # type: ignore[arg-type]
    return build


@pytest.fixture(scope="session")
def identity_template(databases: Databases, world_template: Template[World]) -> Template[Records]:
    return databases.build("identity", world_template, fill(world_template.records.copy()))


@pytest.fixture(scope="session")
def demo_like_template(databases: Databases) -> Template[None]:
    def load(app: Flask, session: Session, clock: Any) -> None:
        demo.load(session=session, now=clock.now(), cipher=app.extensions["coi.phi"],
                  signer=app.extensions["coi.signer"])

    return databases.build("identity-demo", databases.empty, load)


@pytest.fixture
def template(request: pytest.FixtureRequest) -> Template[Any]:
    """The records above, unless the test asks for the demo or for the bare world."""
    name = ("demo_like_template" if "demo_like" in request.fixturenames else
            "world_template" if "bare_world" in request.fixturenames else "identity_template")
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def demo_like(template: Template[Any]) -> None:
    assert template.name == "identity-demo"


@pytest.fixture
def bare_world(template: Template[Any], world: World) -> World:
    assert template.name == "world"
    return world


@pytest.fixture
def records(template: Template[Records], world: World) -> Records:
    return template.records


# ---------------------------------------------------------------- the attacker and the checks

def behind_the_apps_back(engine: Engine, *statements: str | tuple[str, dict[str, Any]],
                         tables: tuple[str, ...] = APPEND_ONLY_TABLES) -> None:
    """What the attacker did: switch off every append-only trigger, rewrite rows with raw SQL
    (a statement, or one with its parameters)."""
    with for_writing(engine).begin() as connection:
        for table in tables:
            if ENGINE == "postgresql":
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            else:
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
        for statement in statements:
            sql, parameters = statement if isinstance(statement, tuple) else (statement, {})
            connection.execute(text(sql), parameters)
        if ENGINE == "postgresql":
            for table in tables:
                connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def findings(app: Flask, session: Session, head: dict[str, Any] | None = None) -> list[str]:
    session.rollback()
    report = integrity.verify(session=session, cipher=app.extensions["coi.phi"], head=head,
                              installation_key=app.extensions["coi.signer"].public_key_text)
    return [str(finding) for finding in report.findings]


def verify_command(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["coi", "ledger", "verify", *args])


def exported_head(app: Flask, tmp_path: Path) -> Path:
    result = app.test_cli_runner().invoke(args=["coi", "ledger", "head"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "head.json"
    path.write_text(result.output)
    return path


def rewrite_the_seal_chain(engine: Engine) -> None:
    """An attacker who knows how seals are made: the whole chain written again from the rows
    as they are now, every link consistent."""
    with Session(engine) as session:
        rows = [(table, key, content) for table in seals.SEALED
                for key, content in seals._all_contents(session, table)]
    statements, prev = ["DELETE FROM record_seal"], seals.GENESIS
    for seq, (table, key, content) in enumerate(rows, start=1):
        name = seals.row_key(key)
        digest = seals.seal_hash(prev, seq, table, name, "existing", content)
        statements.append("INSERT INTO record_seal (seq, table_name, row_key, action, "
                          f"content_sha256, prev_hash, hash) VALUES ({seq}, '{table}', '{name}', "
                          f"'existing', '{content}', '{prev}', '{digest}')")
        prev = digest
    behind_the_apps_back(engine, *statements)


def sign_a_checkpoint(app: Flask, session: Session, clock: Any) -> None:
    """What the holder of the installation's key can do after rewriting."""
    session.rollback()
    ledger.checkpoint(session=session, now=clock.now(), signer=app.extensions["coi.signer"])
    session.commit()


# ---------------------------------------------------------------- intact

def test_an_untouched_database_verifies_intact_with_every_signature_rechecked(app, session,
                                                                             records):
    assert findings(app, session) == []
    result = verify_command(app)
    assert result.exit_code == 0, result.output
    assert "Ledger intact" in result.output
    signatures = len(session.exec(select(Signature)).all())
    assert signatures == 5  # collect (doer and verifier), release, the alarm, the correction
    assert f"{signatures} signature(s) match what they sign" in result.output
    assert "Not re-checked" not in result.output


def test_an_untouched_demo_like_database_verifies_intact(app, session, demo_like):
    assert findings(app, session) == []
    # Its checkpoint, signed in the transaction that loaded it, covers every record of it.
    latest = ledger.latest_checkpoint(session)
    assert latest is not None and latest.seal_seq == seals.head(session=session)[0] > 100
    result = verify_command(app)
    assert result.exit_code == 0, result.output
    assert "Ledger intact" in result.output and "Not re-checked" not in result.output


def test_every_change_through_the_application_is_sealed_in_order(app, session, records):
    chain = session.exec(select(RecordSeal).order_by(col(RecordSeal.seq))).all()
    assert [seal.seq for seal in chain] == list(range(1, len(chain) + 1))
    assert chain[0].prev_hash == seals.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(chain, chain[1:], strict=False))
    about_alarm = [seal.action for seal in chain
                   if (seal.table_name, seal.row_key) == ("alarm", str(records.alarm))]
    assert about_alarm == ["insert", "update", "update"]  # raised, acknowledged, resolved
    revoked = [seal.action for seal in chain if seal.table_name == "role_grant"][-2:]
    assert revoked == ["insert", "delete"]


def test_a_scan_seals_its_units_but_not_the_cases_place_on_its_route(app, session, bare_world,
                                                                      clock):
    flow = Flow(app, session, bare_world, clock)
    before = seals.head(session=session)[0]
    flow.until("collect")
    session.rollback()
    sealed = session.exec(select(RecordSeal).where(col(RecordSeal.seq) > before)).all()
    assert {seal.table_name for seal in sealed} == {"unit", "signature"}
    assert findings(app, session) == []


# ---------------------------------------------------------------- each tampering, found

def test_swapped_patient_phi_is_found(app, engine, session, records):
    one, two = session.get(Patient, records.patient), session.get(Patient, records.other_patient)
    assert one is not None and two is not None
    behind_the_apps_back(  # the unique MRN index is stepped around
        engine, f"UPDATE patient SET phi = '{two.phi}', mrn_index = 'x' WHERE id = {one.id}",
        f"UPDATE patient SET phi = '{one.phi}', mrn_index = '{one.mrn_index}' WHERE id = {two.id}",
        f"UPDATE patient SET mrn_index = '{two.mrn_index}' WHERE id = {one.id}")
    assert findings(app, session) == [
        f"patient {records.patient}: edited: its content differs from seal "
        f"{seal_of(session, 'patient', one.id)}",
        f"patient {records.other_patient}: edited: its content differs from seal "
        f"{seal_of(session, 'patient', two.id)}"]
    result = verify_command(app)
    assert result.exit_code == 1
    assert f"TAMPERED patient {records.patient}: edited" in result.output


def seal_of(session: Session, table: str, key: object) -> int:
    return session.exec(select(RecordSeal.seq).where(
        RecordSeal.table_name == table, RecordSeal.row_key == str(key))
        .order_by(col(RecordSeal.seq).desc())).first() or 0


def test_a_case_pointed_at_another_patient_is_found(app, engine, session, records):
    behind_the_apps_back(engine, f"UPDATE therapy_case SET patient_id = {records.other_patient} "
                                 f"WHERE id = {records.case}")
    assert findings(app, session) == [f"therapy_case {records.case}: edited: its content "
                                      f"differs from seal {seal_of(session, 'therapy_case', records.case)}"]
    result = verify_command(app)
    assert result.exit_code == 1 and f"TAMPERED therapy_case {records.case}: edited" in result.output


@pytest.mark.parametrize("change", ["kind = 'sample'", "serial = 'A999826000001X01'",
                                    "case_id = {other}", "state = 'released'",
                                    "custodian_site_id = custodian_site_id + 1"])
def test_an_edited_unit_is_found(app, engine, session, records, change):
    behind_the_apps_back(engine, f"UPDATE unit SET {change.format(other=records.other_case)} "
                                 f"WHERE id = {records.bag}")
    assert findings(app, session) == [f"unit {records.bag}: edited: its content differs from "
                                      f"seal {seal_of(session, 'unit', records.bag)}"]


def test_an_edited_alarm_and_alarm_event_are_found(app, engine, session, records):
    resolved = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == records.alarm,
                                                     AlarmEvent.action == "resolved")).one()
    behind_the_apps_back(engine, f"UPDATE alarm SET outcome = 'accepted' WHERE id = {records.alarm}",
                         f"UPDATE alarm_event SET outcome = 'accepted' WHERE id = {resolved.id}")
    found = findings(app, session)
    assert f"alarm {records.alarm}: edited: its content differs from seal " \
           f"{seal_of(session, 'alarm', records.alarm)}" in found
    assert f"alarm_event {resolved.id}: edited: its content differs from seal " \
           f"{seal_of(session, 'alarm_event', resolved.id)}" in found
    # The resolution's signature was bound to "quarantined": re-checked, it no longer matches.
    assert f"signature {resolved.signature_id}: does not match what was signed: the record it " \
           "binds, or its content hash, was changed" in found
    assert len(found) == 3


def test_role_grants_inserted_edited_and_deleted_are_found(app, engine, session, world, records):
    outsider, mfg = world.actor("outsider").user_id, world.sites["MFG"].id
    behind_the_apps_back(
        engine, "INSERT INTO role_grant (id, user_id, site_id, role, created_at) VALUES "
                f"(900, {outsider}, {mfg}, 'qa', '2026-11-22 09:00:00')",
        f"UPDATE role_grant SET role = 'admin' WHERE id = {records.grant}",
        f"DELETE FROM role_grant WHERE user_id = {world.actor('courier').user_id}")
    found = findings(app, session)
    assert "role_grant 900: not sealed: added behind the application's back" in found
    assert f"role_grant {records.grant}: edited: its content differs from seal " \
           f"{seal_of(session, 'role_grant', records.grant)}" in found
    assert any(f.startswith("role_grant ") and "missing: deleted behind the application's back"
               in f for f in found)
    assert len(found) == 3


def test_an_audit_entry_and_a_signature_rewritten_are_found(app, engine, session, records):
    entry = session.exec(select(AuditEntry).where(AuditEntry.entity == "role_grant")
                          .order_by(col(AuditEntry.id))).first()
    signature = session.exec(select(Signature).where(Signature.subject_type == "alarm")).one()
    assert entry is not None
    behind_the_apps_back(
        engine, f"UPDATE audit_entry SET reason = 'routine' WHERE id = {entry.id}",
        f"UPDATE signature SET signer_name = 'Staff Person', signer_id = signer_id + 0, "
        f"content_sha256 = '{'0' * 64}' WHERE id = {signature.id}")
    found = findings(app, session)
    assert sorted(found) == sorted([
        f"audit_entry {entry.id}: edited: its content differs from seal "
        f"{seal_of(session, 'audit_entry', entry.id)}",
        f"signature {signature.id}: edited: its content differs from seal "
        f"{seal_of(session, 'signature', signature.id)}",
        f"signature {signature.id}: does not match what was signed: the record it binds, or "
        "its content hash, was changed"])
    result = verify_command(app)
    assert result.exit_code == 1
    assert f"TAMPERED audit_entry {entry.id}: edited" in result.output
    assert f"TAMPERED signature {signature.id}: edited" in result.output


def test_a_deleted_seal_and_an_edited_seal_are_found(app, engine, session, records):
    last = seals.head(session=session)[0]
    behind_the_apps_back(engine, f"DELETE FROM record_seal WHERE seq = {last - 3}",
                         f"UPDATE record_seal SET action = 'update' WHERE seq = {last - 1}")
    found = findings(app, session)
    assert f"seal {last - 3}: missing: seals {last - 3}-{last - 3} were deleted" in found
    assert f"seal {last - 1}: edited: its content does not match its hash" in found


# ---------------------------------------------------------------- rewritten from the start

def test_a_rewritten_seal_chain_is_found_by_the_signed_checkpoint(app, engine, session, records):
    behind_the_apps_back(engine, f"UPDATE therapy_case SET patient_id = {records.other_patient} "
                                 f"WHERE id = {records.case}")
    rewrite_the_seal_chain(engine)
    found = findings(app, session)
    # One seal a row, now: shorter than the chain the checkpoint signed.
    assert found == [f"seal {records.seals}: truncated: the identity chain ends before seal "
                     f"{records.seals}, which checkpoint 1 saw"]


def test_a_history_rewritten_with_the_key_passes_alone_but_fails_against_an_exported_head(
        app, engine, session, clock, records, tmp_path):
    head = exported_head(app, tmp_path)
    assert verify_command(app, "--head", str(head)).exit_code == 0
    clock.advance(hours=1)
    behind_the_apps_back(engine, f"UPDATE therapy_case SET patient_id = {records.other_patient} "
                                 f"WHERE id = {records.case}")
    rewrite_the_seal_chain(engine)
    sign_a_checkpoint(app, session, clock)
    # Without the exported head: every chain is consistent and the last checkpoint signs it.
    assert findings(app, session) == []
    assert verify_command(app).exit_code == 0
    # Against the head kept outside: the history it saw is gone.
    document = json.loads(head.read_text())
    seq = document["seals"][0]
    result = verify_command(app, "--head", str(head))
    assert result.exit_code == 1
    assert result.output == (f"TAMPERED seal {seq}: truncated: the identity chain ends before "
                             f"seal {seq}, which the exported head of {document['at']} saw\n")


def test_a_custody_chain_rewritten_with_the_key_fails_against_an_exported_head(
        app, engine, session, clock, records, tmp_path):
    head = exported_head(app, tmp_path)
    events = session.exec(select(CustodyEvent).where(CustodyEvent.case_id == records.case)
                          .order_by(col(CustodyEvent.seq))).all()
    statements, prev = [], events[0].prev_hash
    for event in events:  # the second event's device changed, every later hash computed again
        event.device = "rewritten" if event.seq == 2 else event.device
        digest = ledger.event_hash(event, prev)
        statements.append(f"UPDATE custody_event SET device = "
                          f"{'NULL' if event.device is None else repr(event.device)}, "
                          f"prev_hash = '{prev}', hash = '{digest}' WHERE id = {event.id}")
        prev = digest
    session.rollback()
    behind_the_apps_back(engine, *statements)
    sign_a_checkpoint(app, session, clock)
    assert findings(app, session) == []
    document = json.loads(head.read_text())
    seq = document["custody"][str(records.case)][0]
    assert findings(app, session, head=document) == [
        f"case {records.case}, event {seq}: rewritten: event {seq} differs from the one the "
        f"exported head of {document['at']} saw"]


def test_an_altered_head_document_is_refused(app, session, records, tmp_path):
    head = exported_head(app, tmp_path)
    document = json.loads(head.read_text())
    document["seals"][0] -= 1
    head.write_text(json.dumps(document))
    result = verify_command(app, "--head", str(head))
    assert result.exit_code == 1 and "its signature does not hold" in result.output
    head.write_text("{}")
    assert "not an exported ledger head" in verify_command(app, "--head", str(head)).output


def test_a_planted_key_cannot_sign_a_rewritten_chain(app, engine, session, clock, records):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from coi.services.keys import Signer

    behind_the_apps_back(engine, f"UPDATE therapy_case SET patient_id = {records.other_patient} "
                                 f"WHERE id = {records.case}")
    planted = Signer(Ed25519PrivateKey.generate(), "https://attacker.example")
    session.rollback()
    ledger.checkpoint(session=session, now=clock.now(), signer=planted)  # registers the key too
    session.commit()
    rewrite_the_seal_chain(engine)
    session.rollback()
    ledger.checkpoint(session=session, now=clock.now(), signer=planted)
    session.commit()
    found = findings(app, session)
    assert len(found) == 1 and "not this installation's signing key" in found[0]


# ---------------------------------------------------------------- signatures re-checked

def test_each_kind_of_signature_is_rechecked_against_its_record(app, engine, session, clock,
                                                                records):
    """Rewritten together with their seals and signed again with the key: only rebuilding
    what each signature signs finds them."""
    collect = session.exec(select(CustodyEvent).where(CustodyEvent.case_id == records.case,
                                                      CustodyEvent.kind == "step")
                           .order_by(col(CustodyEvent.seq))).first()
    resolved = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == records.alarm,
                                                     AlarmEvent.action == "resolved")).one()
    correction = session.exec(select(AuditEntry).where(AuditEntry.entity == "patient",
                                                       AuditEntry.action == "update")
                              .order_by(col(AuditEntry.id))).first()
    assert collect is not None and correction is not None
    session.expunge_all()  # the rows below are changed in Python to compute hashes, not saved
    collect.body = collect.body.replace('"collect"', '"pack"', 1)
    digest = ledger.event_hash(collect, collect.prev_hash)
    events = session.exec(select(CustodyEvent).where(CustodyEvent.case_id == records.case,
                                                     col(CustodyEvent.seq) > collect.seq)
                          .order_by(col(CustodyEvent.seq))).all()
    statements: list[str | tuple[str, dict[str, Any]]] = [(
        f"UPDATE custody_event SET body = :body, hash = '{digest}' WHERE id = {collect.id}",
        {"body": collect.body})]
    for event in events:
        event_digest = ledger.event_hash(event, digest)
        statements.append(f"UPDATE custody_event SET prev_hash = '{digest}', hash = "
                          f"'{event_digest}' WHERE id = {event.id}")
        digest = event_digest
    statements += [f"UPDATE alarm_event SET comment = 'all fine' WHERE id = {resolved.id}",
                   f"UPDATE audit_entry SET reason = 'routine' WHERE id = {correction.id}"]
    session.rollback()
    behind_the_apps_back(engine, *statements)
    rewrite_the_seal_chain(engine)
    sign_a_checkpoint(app, session, clock)
    found = findings(app, session)
    custody_signatures = [s["id"] for s in json.loads(collect.body)["signatures"]]
    correction_signature = session.exec(select(Signature).where(
        Signature.subject_type == "patient")).one()
    assert sorted(found) == sorted(
        [f"signature {number}: bound to custody {subject}, but given for {given}"
         for number, subject, given in [
             (n, session.get(Signature, n).subject_id,  # type: ignore[union-attr]
              session.get(Signature, n).subject_id.replace(":collect:", ":pack:"))  # type: ignore[union-attr]
             for n in custody_signatures]]
        + [f"signature {resolved.signature_id}: does not match what was signed: the record it "
           "binds, or its content hash, was changed",
           f"signature {correction_signature.id}: does not match what was signed: the record "
           "it binds, or its content hash, was changed"])


def test_a_correction_is_found_changed_whichever_of_its_field_entries_was_changed(
        app, engine, session, clock, records):
    """A correction of two fields writes two audit entries with the one reason signed: a
    change of either entry's reason is found."""
    entries = session.exec(select(AuditEntry).where(AuditEntry.entity == "patient",
                                                    AuditEntry.action == "update")
                           .order_by(col(AuditEntry.id))).all()
    assert len(entries) == 2
    signature = session.exec(select(Signature).where(Signature.subject_type == "patient")).one()
    behind_the_apps_back(engine, f"UPDATE audit_entry SET reason = 'routine' WHERE id = {entries[-1].id}")
    rewrite_the_seal_chain(engine)
    sign_a_checkpoint(app, session, clock)
    assert findings(app, session) == [
        f"signature {signature.id}: does not match what was signed: the record it binds, or its "
        "content hash, was changed"]


def test_who_signed_is_rechecked_against_the_record_it_was_given_for(app, engine, session, clock,
                                                                      world, records):
    signature = session.exec(select(Signature).where(Signature.subject_type == "alarm")).one()
    behind_the_apps_back(engine, f"UPDATE signature SET signer_id = {world.actor('staff').user_id}, "
                                 f"meaning = 'approved' WHERE id = {signature.id}")
    rewrite_the_seal_chain(engine)
    sign_a_checkpoint(app, session, clock)
    assert findings(app, session) == [
        f"signature {signature.id}: its signer_id is {world.actor('staff').user_id}, but the "
        f"record it was given for says {world.actor('qa').user_id}",
        f"signature {signature.id}: its meaning is 'approved', but the record it was given for "
        "says 'resolved'"]


def test_a_signature_no_record_carries_is_found(app, engine, session, records):
    signature = session.exec(select(Signature).where(Signature.subject_type == "alarm")).one()
    behind_the_apps_back(engine, f"UPDATE alarm_event SET signature_id = NULL "
                                 f"WHERE signature_id = {signature.id}")
    assert f"signature {signature.id}: no alarm resolution carries it" in findings(app, session)


# ---------------------------------------------------------------- the hook, the rules, upgrades

def test_every_column_of_a_sealed_table_is_sealed_or_left_out_for_a_reason():
    for table, sealed in seals.SEALED.items():
        columns = {column.name for column in SQLModel.metadata.tables[table].columns}
        left_out = set(seals.UNSEALED.get(table, {}))
        assert set(sealed) | left_out == columns, table
        assert not set(sealed) & left_out, table


def test_a_write_that_loses_its_race_leaves_no_seal_behind(app, session, clock, records):
    def raise_it() -> Alarm | None:
        return alarms.raise_alarm(session=session, now=clock.now(), kind="deadline", code="late",
                                  severity="major", summary="once", rule={"rule": "x"},
                                  fingerprint="once")

    assert raise_it() is not None
    assert raise_it() is None  # its insert rolled back to a savepoint
    session.commit()
    assert findings(app, session) == []


def test_concurrent_writers_keep_one_unbroken_chain(app, engine, clock, world, records):
    """Writers that share no row lock (alarms on no case, units of two cases) take turns at
    the chain's head: on PostgreSQL the advisory lock, on SQLite the write lock."""
    errors: list[Exception] = []
    cases = (records.case, records.other_case)

    def write(number: int) -> None:
        try:
            for round_ in range(5):
                with Session(for_writing(engine), expire_on_commit=False) as db:
                    alarms.raise_alarm(session=db, now=clock.now(), kind="custody", code="late",
                                       severity="minor", summary=f"writer {number}, {round_}",
                                       rule={"rule": "test"})
                    case = db.get(Case, cases[number % 2])
                    assert case is not None
                    enrolment.register_unit(session=db, now=clock.now(),
                                            actor=world.actor("staff"),
                                            coi_text=coi_of(case).text, kind="sample")
                    db.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as db:
        assert seals.check(session=db).findings == []
        written = db.exec(select(RecordSeal.table_name, func.count()).where(
            col(RecordSeal.seq) > records.seals, RecordSeal.action == "insert")
            .group_by(col(RecordSeal.table_name))).all()
        assert {"alarm": 20, "alarm_event": 20, "unit": 20}.items() <= dict(written).items()


def test_update_and_delete_statements_through_the_session_are_sealed(app, session, world,
                                                                     records):
    session.execute(update(Unit), [{"id": records.bag, "state": "quarantined",
                                    "expiry_check_at": None}])  # an ORM bulk UPDATE by key
    session.execute(delete(RoleGrant).where(col(RoleGrant.id) == records.grant))
    session.commit()
    last = session.exec(select(RecordSeal).order_by(col(RecordSeal.seq).desc()).limit(2)).all()
    assert {(seal.table_name, seal.row_key, seal.action) for seal in last} == {
        ("unit", str(records.bag), "update"), ("role_grant", str(records.grant), "delete")}
    assert findings(app, session) == []


def test_statements_that_change_no_sealed_column_append_no_seal(app, session, clock, records):
    before = seals.head(session=session)
    alarms.notify(session, clock.now())  # the notify bookkeeping of every alarm: not sealed
    session.commit()
    assert seals.head(session=session) == before


def test_rows_of_a_database_upgraded_to_the_identity_chain_are_sealed_as_found(app, engine,
                                                                               session, clock,
                                                                               records):
    from alembic import command

    config = migrate.alembic_config()
    with for_writing(engine).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    try:
        # As a checkpoint was signed at 0008: over the case heads alone.
        session.rollback()
        heads = canonical_json({str(case_id): [seq, digest]
                                for case_id, seq, digest in ledger._heads(session)})
        key = app.extensions["coi.signer"].private_key
        signature = key.sign(ledger.CHECKPOINT_DOMAIN + heads.encode()).hex()
        session.rollback()
        behind_the_apps_back(
            engine, "DELETE FROM ledger_checkpoint",
            "INSERT INTO ledger_checkpoint (id, at, heads, key_id, signature) VALUES "
            f"(7, '2026-11-22 12:00:00', '{heads}', '{app.extensions['coi.signer'].key_id.hex()}', "
            f"'{signature}')", tables=("ledger_checkpoint",))
    finally:
        migrate.upgrade(engine)  # the database of the next test (PostgreSQL) is at the head
    session.rollback()
    assert {seal.action for seal in session.exec(select(RecordSeal))} == {"existing"}
    assert findings(app, session) == []
    sign_a_checkpoint(app, session, clock)
    assert findings(app, session) == []


def test_the_head_command_needs_a_checkpoint_of_the_identity_chain(app, session, bare_world):
    result = app.test_cli_runner().invoke(args=["coi", "ledger", "head"])
    assert result.exit_code == 1 and "flask coi ledger checkpoint" in result.output


def test_a_case_page_after_a_swap_is_named_by_verify(app, engine, session, records):
    case = session.get(Case, records.case)
    assert case is not None
    behind_the_apps_back(engine, f"UPDATE therapy_case SET patient_id = {records.other_patient} "
                                 f"WHERE id = {case.id}")
    result = verify_command(app)
    assert result.exit_code == 1 and "therapy_case" in result.output
