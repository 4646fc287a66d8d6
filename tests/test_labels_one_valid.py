"""One valid label per unit (and per case's wristband): another output of the same print is
not a reprint, a unit registered later gets its label alone, a reprint revokes the label it
replaces in the same transaction, and the database refuses a second valid label."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from coi.core.errors import Conflict, DomainError, InvalidInput
from coi.core.identifiers import CoiId
from coi.db import for_writing
from coi.labels import payload
from coi.models import AuditEntry, Case, Label, LabelRevocation, Unit, coi_of, serial_of
from coi.services import enrolment, labels, seals
from tests.helpers import login, make_case, post_form

OUTPUTS = tuple(labels.OUTPUTS)
MRNS = itertools.count(1)


@pytest.fixture
def case(app, session, world, clock):
    return new_case(app, session, world, clock)


def new_case(app, session, world, clock) -> str:
    coi = coi_of(make_case(app, session, world, clock, mrn=f"ONE-{next(MRNS)}")).text
    for kind in ("apheresis_bag", "sample"):
        register(session, world, clock, coi, kind)
    session.commit()
    return coi


def register(session, world, clock, coi: str, kind: str) -> None:
    enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                            coi_text=coi, kind=kind)


def print_set(app, session, world, clock, coi, *, output="png", reason=None, wristband=True):
    job = labels.print_set(session=session, now=clock.now(), actor=world.actor("staff"),
                           signer=app.extensions["coi.signer"], coi_text=coi, output=output,
                           size="4x2", include_wristband=wristband, reason=reason)
    session.commit()
    return job


def reprint(app, session, world, clock, label_id, *, output="png", reason="label torn"):
    return labels.reprint(session=session, now=clock.now(), actor=world.actor("staff"),
                          signer=app.extensions["coi.signer"], label_id=label_id, output=output,
                          reason=reason)


def label_rows(session, coi: str | None = None) -> list[Label]:
    query = select(Label)
    if coi is not None:
        query = query.join(Case, col(Case.id) == Label.case_id).where(
            Case.coi == CoiId.parse(coi).compact)
    return list(session.exec(query))


def valid_counts(session) -> dict[tuple[str, str], int]:
    """Unrevoked labels per (kind, identifier), from the records themselves."""
    rows = session.exec(
        select(Label.kind, Label.identifier, func.count())
        .join(LabelRevocation, col(LabelRevocation.label_id) == Label.id, isouter=True)
        .where(col(LabelRevocation.id).is_(None))
        .group_by(col(Label.kind), col(Label.identifier))).all()
    return {(kind, identifier): number for kind, identifier, number in rows}


def token_of(job, index=0) -> str:
    token = payload.token_from_text(job.labels[index].qr)
    assert token
    return token


# ---------------------------------------------------------------- outputs are not reprints

def test_choosing_another_output_for_the_same_print_makes_no_new_label_and_no_reprint(
        app, session, world, clock, case):
    first = print_set(app, session, world, clock, case, output="zpl300")
    clock.advance(minutes=2)
    for output in OUTPUTS:
        again = print_set(app, session, world, clock, case, output=output)
        assert [row.id for row in again.rows] == [row.id for row in first.rows]
        assert [label.qr for label in again.labels] == [label.qr for label in first.labels]
        assert not any(label.reprint for label in again.labels)
        rendered = labels.render(session=session, now=clock.now(), actor=world.actor("staff"),
                                 signer=app.extensions["coi.signer"], coi_text=case,
                                 label_ids=[row.id for row in first.rows], output=output)
        assert [label.qr for label in rendered.labels] == [label.qr for label in first.labels]
    session.rollback()
    assert len(label_rows(session)) == 3
    assert session.exec(select(LabelRevocation)).all() == []


def test_the_case_page_prints_the_same_labels_again_as_a_pdf_without_a_new_label(
        app, client, session, world, clock, case):
    first = print_set(app, session, world, clock, case, output="zpl203")
    login(client, "staff")
    response = post_form(client, f"/cases/{case}/labels", f"/cases/{case}/labels/again",
                         {"output": "pdf", "label": str(first.rows[0].id)})
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    response = post_form(client, f"/cases/{case}/labels", f"/cases/{case}/labels",
                         {"output": "png", "size": "4x2", "wristband": "1"})
    assert response.mimetype == "image/png"
    session.rollback()
    assert {row.id for row in label_rows(session)} == {row.id for row in first.rows}
    # Each output is on the audit trail: the PDF of the first label, then the PNG of the set.
    printed = session.exec(select(AuditEntry).where(AuditEntry.entity == "label",
                                                    AuditEntry.action == "print")
                           .order_by(col(AuditEntry.id))).all()
    assert [(e.entity_id, e.new_value, e.actor_name) for e in printed] == [
        (str(first.rows[0].id), "pdf", printed[0].actor_name)] + [
        (str(row.id), "png", printed[0].actor_name) for row in first.rows]
    assert printed[0].actor_name.endswith("(staff)")
    assert "Print again (same labels, not a reprint)" in client.get(
        f"/cases/{case}/labels").get_data(as_text=True)


def test_a_revoked_label_is_not_printed_again(app, session, world, clock, case):
    first = print_set(app, session, world, clock, case)
    labels.revoke(session=session, now=clock.now(), actor=world.actor("staff"),
                  label_id=first.rows[0].id, category="damaged", reason="torn")
    session.commit()
    with pytest.raises(Conflict, match="revoked: it must not be printed again"):
        labels.render(session=session, now=clock.now(), actor=world.actor("staff"),
                      signer=app.extensions["coi.signer"], coi_text=case,
                      label_ids=[first.rows[0].id], output="pdf")


# ---------------------------------------------------------------- later units

def test_a_unit_registered_later_gets_its_label_alone_not_a_reprint_of_the_set(
        app, session, world, clock, case):
    first = print_set(app, session, world, clock, case)
    register(session, world, clock, case, "sample")
    session.commit()
    clock.advance(hours=1)
    later = print_set(app, session, world, clock, case, output="zpl300")
    [row] = later.rows
    assert row.kind == "unit" and row.reprint_of_id is None and row.reason is None
    assert row.identifier not in {earlier.identifier for earlier in first.rows}
    assert not later.labels[0].reprint
    assert session.exec(select(LabelRevocation)).all() == []
    assert set(valid_counts(session).values()) == {1} and len(valid_counts(session)) == 4


def test_a_unit_whose_label_was_revoked_gets_a_reprint_with_a_reason(app, session, world,
                                                                     clock, case):
    first = print_set(app, session, world, clock, case)
    labels.revoke(session=session, now=clock.now(), actor=world.actor("qa"),
                  label_id=first.rows[1].id, category="damaged", reason="wet")
    session.commit()
    with pytest.raises(InvalidInput, match="give a reason"):
        print_set(app, session, world, clock, case)
    session.rollback()
    [row] = print_set(app, session, world, clock, case, reason="sample label wet").rows
    assert row.reprint_of_id == first.rows[1].id and row.identifier == first.rows[1].identifier


# ---------------------------------------------------------------- reprints

def test_a_reprint_revokes_the_label_it_replaces_in_the_same_transaction(
        app, client, session, world, clock, case):
    first = print_set(app, session, world, clock, case)
    old = first.rows[0]
    job = reprint(app, session, world, clock, old.id, reason="smudged at collection")
    revocation = session.exec(select(LabelRevocation)
                              .where(LabelRevocation.label_id == old.id)).one()
    assert revocation.category == "replaced" and "smudged at collection" in revocation.reason
    session.rollback()  # neither the reprint nor the revocation without the other
    assert session.exec(select(LabelRevocation)).all() == []
    assert len(label_rows(session)) == 3

    job = reprint(app, session, world, clock, old.id, reason="smudged at collection")
    session.commit()
    assert job.rows[0].reprint_of_id == old.id and job.labels[0].reprint
    page = client.get(f"/V/{token_of(first)}").get_data(as_text=True)
    assert "REVOKED" in page and "Revoked: replaced by a new label" in page
    assert "smudged" not in page
    page = client.get(f"/V/{token_of(job)}").get_data(as_text=True)
    assert "GENUINE" in page and "NOT GENUINE" not in page and "REPRINT" in page


def test_a_label_already_replaced_is_not_reprinted_again(app, session, world, clock, case):
    first = print_set(app, session, world, clock, case, wristband=True)
    wristband = first.rows[-1]
    replacement = reprint(app, session, world, clock, wristband.id).rows[0]
    session.commit()
    with pytest.raises(Conflict, match=f"replaced by label {replacement.id}"):
        reprint(app, session, world, clock, wristband.id)
    session.rollback()
    assert valid_counts(session)[("wristband", CoiId.parse(case).compact)] == 1


def test_a_reprint_through_the_page_revokes_the_old_label(app, client, session, world, clock,
                                                          case):
    old = print_set(app, session, world, clock, case).rows[0]
    login(client, "staff")
    response = post_form(client, f"/cases/{case}/labels", f"/labels/{old.id}/reprint",
                         {"output": "pdf", "reason": "label torn", "coi": case})
    assert response.data.startswith(b"%PDF")
    session.rollback()
    assert session.exec(select(LabelRevocation.label_id)).all() == [old.id]


# ---------------------------------------------------------------- the database

def _insert_copy(connection: Any, label: Label, new_id: int) -> None:
    connection.execute(text(
        "INSERT INTO label (id, case_id, unit_id, kind, identifier, template, template_version,"
        " key_id, signature, output, dpi, printed_at, printed_by_id, reprint_of_id, reason) "
        "SELECT :new, case_id, unit_id, kind, identifier, template, template_version, key_id, "
        "signature, output, dpi, printed_at, printed_by_id, NULL, NULL FROM label WHERE id = :old"),
        {"new": new_id, "old": label.id})


@pytest.mark.parametrize("index", [0, -1], ids=["unit", "wristband"])
def test_the_database_refuses_a_second_valid_label_whoever_writes_it(
        app, engine, session, world, clock, case, index):
    label = print_set(app, session, world, clock, case).rows[index]
    with for_writing(engine).connect() as connection:
        with pytest.raises(DBAPIError, match=labels.ONE_VALID_LABEL):
            _insert_copy(connection, label, 4_000_000_001)
        connection.rollback()
    labels.revoke(session=session, now=clock.now(), actor=world.actor("staff"),
                  label_id=label.id, category="other", reason="test")
    session.commit()
    with for_writing(engine).connect() as connection:  # revoked: another may be valid now
        _insert_copy(connection, label, 4_000_000_002)
        connection.rollback()


# ---------------------------------------------------------------- any sequence

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("print"), st.sampled_from(OUTPUTS), st.booleans()),
    st.tuples(st.just("register"), st.sampled_from(("apheresis_bag", "sample",
                                                    "drug_product_bag"))),
    st.tuples(st.just("reprint"), st.integers(0, 20), st.sampled_from(OUTPUTS)),
    st.tuples(st.just("revoke"), st.integers(0, 20), st.sampled_from(("damaged", "destroyed"))),
    st.tuples(st.just("again"), st.sampled_from(OUTPUTS)),
), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(operations=OPERATIONS)
def test_no_sequence_of_prints_reprints_outputs_and_revocations_leaves_two_valid_labels(
        app, session, world, clock, operations):
    coi = new_case(app, session, world, clock)  # the examples share the test's database
    signer, staff = app.extensions["coi.signer"], world.actor("staff")
    for operation in operations:
        clock.advance(minutes=1)
        before = {row.id for row in label_rows(session, coi)}
        ids = sorted(before)
        try:
            match operation:
                case ("print", output, wristband):
                    print_set(app, session, world, clock, coi, output=output,
                              reason="relabel", wristband=wristband)
                case ("register", kind):
                    register(session, world, clock, coi, kind)
                case ("reprint", index, output) if ids:
                    reprint(app, session, world, clock, ids[index % len(ids)], output=output)
                case ("revoke", index, category) if ids:
                    labels.revoke(session=session, now=clock.now(), actor=staff,
                                  label_id=ids[index % len(ids)], category=category,
                                  reason="test")
                case ("again", output) if ids:
                    valid = [label.id for label, revocation, _by in labels.labels_of(
                        session=session, actor=staff, coi_text=coi) if revocation is None]
                    labels.render(session=session, now=clock.now(), actor=staff, signer=signer,
                                  coi_text=coi, label_ids=valid or ids, output=output)
            session.commit()
        except DomainError:
            session.rollback()
        after = {row.id for row in label_rows(session, coi)}
        if operation[0] in ("again", "register"):
            assert after == before, f"{operation[0]} made a label"
        assert max(valid_counts(session).values(), default=0) <= 1, operations
        if operation[0] == "print":  # every unit has its label now, once
            units = unit_serials(session, coi)
            assert units <= {identifier for (kind, identifier) in valid_counts(session)
                             if kind == "unit"}


def unit_serials(session, coi: str) -> set[str]:
    case = session.exec(select(Case).where(Case.coi == CoiId.parse(coi).compact)).one()
    return {serial_of(unit).compact
            for unit in session.exec(select(Unit).where(Unit.case_id == case.id))}


def test_the_chain_vouches_for_reprints_and_revocations(app, session, world, clock, case):
    job = print_set(app, session, world, clock, case)
    reprint(app, session, world, clock, job.rows[0].id)
    session.commit()
    assert seals.check(session=session).findings == []


# ---------------------------------------------------------------- concurrency

def test_concurrent_reprints_of_one_label_leave_one_valid_label(app, engine, session, world,
                                                                 clock, case):
    old = print_set(app, session, world, clock, case).rows[0]
    start, outcomes = threading.Barrier(4), []

    def reprint_it(number: int) -> None:
        with Session(for_writing(engine), expire_on_commit=False) as db:
            try:
                start.wait()
                reprint(app, db, world, clock, old.id, reason=f"writer {number}")
                db.commit()
                outcomes.append("printed")
            except Conflict as refused:
                db.rollback()
                outcomes.append(refused.message)

    threads = [threading.Thread(target=reprint_it, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 4 and outcomes.count("printed") == 1, outcomes
    assert all("valid: reprint that one" in outcome for outcome in outcomes if outcome != "printed")
    session.rollback()
    assert valid_counts(session)[("unit", old.identifier)] == 1
    assert len(label_rows(session)) == 4


def test_concurrent_writers_around_the_services_cannot_make_two_valid_labels(
        app, engine, session, world, clock, case):
    label = print_set(app, session, world, clock, case).rows[0]
    labels.revoke(session=session, now=clock.now(), actor=world.actor("staff"),
                  label_id=label.id, category="damaged", reason="test")
    session.commit()  # the unit has no valid label: each writer may make one
    start, outcomes = threading.Barrier(4), []

    def insert(number: int) -> None:
        with for_writing(engine).connect() as connection:
            try:
                start.wait()
                _insert_copy(connection, label, 4_000_000_100 + number)
                connection.commit()
                outcomes.append("inserted")
            except DBAPIError as refused:
                connection.rollback()
                outcomes.append(str(refused.orig))

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 4 and outcomes.count("inserted") == 1, outcomes
    assert all(labels.ONE_VALID_LABEL in outcome for outcome in outcomes if outcome != "inserted")
    session.rollback()
    assert valid_counts(session)[("unit", label.identifier)] == 1


# ---------------------------------------------------------------- older records

def test_the_upgrade_revokes_what_older_reprints_left_valid_and_seals_it(
        app, engine, session, world, clock, case):
    from alembic import command

    from coi import migrate

    first = print_set(app, session, world, clock, case)
    config = migrate.alembic_config()
    with for_writing(engine).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    # A reprint as the application made them before 0010: the replaced label stays valid.
    clock.advance(hours=1)
    older = first.rows[0]
    session.add(Label(id=4_000_000_200, case_id=older.case_id, unit_id=older.unit_id,
                      kind=older.kind, identifier=older.identifier, template=older.template,
                      template_version=older.template_version, key_id=older.key_id,
                      signature=older.signature, output="pdf", dpi=300, printed_at=clock.now(),
                      printed_by_id=world.actor("qa").user_id, reprint_of_id=older.id,
                      reason="old reprint"))
    session.commit()
    assert valid_counts(session)[("unit", older.identifier)] == 2
    session.rollback()
    migrate.upgrade(engine)
    assert valid_counts(session)[("unit", older.identifier)] == 1
    revocation = session.exec(select(LabelRevocation)).one()
    assert (revocation.label_id, revocation.category) == (older.id, "replaced")
    assert revocation.revoked_by_id == world.actor("qa").user_id
    assert revocation.revoked_at == clock.now() and "migration 0010" in revocation.reason
    assert seals.check(session=session).findings == []


def test_concurrent_prints_of_a_new_units_label_make_one_label(app, engine, session, world,
                                                               clock, case):
    print_set(app, session, world, clock, case)
    register(session, world, clock, case, "sample")
    session.commit()
    start, made = threading.Barrier(4), []

    def print_it() -> None:
        with Session(for_writing(engine), expire_on_commit=False) as db:
            start.wait()
            made.append([row.id for row in print_set(app, db, world, clock, case).rows])

    threads = [threading.Thread(target=print_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 4
    session.rollback()
    assert len(label_rows(session)) == 4  # the set of three, and the new unit's label once
    assert set(valid_counts(session).values()) == {1}
