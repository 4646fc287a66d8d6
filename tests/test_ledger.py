"""The custody ledger finds what is changed behind the application's back."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from coi.db import for_writing
from coi.models import Case, CustodyEvent, LedgerCheckpoint, Unit, coi_of, serial_of
from coi.services import enrolment, ledger
from tests.databases import ENGINE
from tests.helpers import login, make_case


@pytest.fixture
def case(app, session, world, clock) -> Case:
    made = make_case(app, session, world, clock)
    for kind in ("apheresis_bag", "sample"):
        clock.advance(minutes=1)
        enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                coi_text=coi_of(made).text, kind=kind)
    session.commit()
    return made


def behind_the_apps_back(engine, *statements: str) -> None:
    """What a database administrator could do: switch off the append-only triggers, change
    rows with raw SQL, switch them on again."""
    with for_writing(engine).begin() as connection:
        for table in ("custody_event", "ledger_checkpoint"):
            if ENGINE == "postgresql":
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            else:
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
        for statement in statements:
            connection.execute(text(statement))
        if ENGINE == "postgresql":
            for table in ("custody_event", "ledger_checkpoint"):
                connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def problems(session: Session) -> list[str]:
    session.rollback()
    return [str(problem) for problem in ledger.verify(session=session)]


def signed_checkpoint(app, session, clock) -> LedgerCheckpoint:
    row = ledger.checkpoint(session=session, now=clock.now(),
                            signer=app.extensions["coi.signer"])
    session.commit()
    return row


def test_enrolment_and_units_start_an_intact_chain(session, case):
    events = ledger.events_of(session=session, case=case)
    assert [(e.seq, e.kind) for e in events] == [
        (1, "enrol"), (2, "register_unit"), (3, "register_unit")]
    assert events[0].prev_hash == ledger.GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert problems(session) == []


def test_the_verify_command_says_intact_or_lists_what_was_tampered(app, engine, session, case):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["coi", "ledger", "verify"])
    assert result.exit_code == 0 and "Ledger intact: 3 event(s)" in result.output
    behind_the_apps_back(engine, f"UPDATE custody_event SET kind = 'collect' "
                                 f"WHERE case_id = {case.id} AND seq = 2")
    result = runner.invoke(args=["coi", "ledger", "verify"])
    assert result.exit_code == 1
    assert f"TAMPERED case {case.id}, event 2: edited" in result.output


def test_an_edited_event_is_found(engine, session, case):
    behind_the_apps_back(engine, "UPDATE custody_event SET body = replace(body, 'sample', "
                                 f"'apheresis_bag') WHERE case_id = {case.id} AND seq = 3")
    assert problems(session) == [f"case {case.id}, event 3: edited: its content does not "
                                 "match its hash"]


def test_an_edited_time_is_found(engine, session, case):
    behind_the_apps_back(engine, "UPDATE custody_event SET at = at - interval '1 hour' "
                         if ENGINE == "postgresql" else
                         "UPDATE custody_event SET at = datetime(at, '-1 hour')",
                         )
    assert any("edited" in p for p in problems(session))


def test_a_deleted_event_is_found(engine, session, case):
    behind_the_apps_back(engine, f"DELETE FROM custody_event WHERE case_id = {case.id} AND seq = 2")
    found = problems(session)
    assert f"case {case.id}, event 2: missing: events 2-2 were deleted" in found


def test_a_deleted_last_event_is_found_by_the_checkpoint(app, engine, session, clock, case):
    signed_checkpoint(app, session, clock)
    behind_the_apps_back(engine, f"DELETE FROM custody_event WHERE case_id = {case.id} AND seq = 3")
    assert problems(session) == [f"case {case.id}, event 3: truncated: the chain ends before "
                                 "event 3, which checkpoint 1 saw"]


def test_an_inserted_event_is_found(engine, session, case):
    # Room is made by renumbering the later events; the new one even carries a correct hash.
    events = ledger.events_of(session=session, case=case)
    forged = CustodyEvent(case_id=case.id, seq=2, at=events[1].at, kind="collect",
                          actor_id=events[1].actor_id, site_id=events[1].site_id, body="{}",
                          prev_hash=events[0].hash, hash="")
    forged.hash = ledger.event_hash(forged, forged.prev_hash)
    behind_the_apps_back(
        engine,
        f"UPDATE custody_event SET seq = seq + 100 WHERE case_id = {case.id} AND seq >= 2",
        f"UPDATE custody_event SET seq = seq - 99 WHERE case_id = {case.id} AND seq >= 100",
        "INSERT INTO custody_event (case_id, seq, at, kind, actor_id, site_id, body, prev_hash, "
        f"hash) VALUES ({case.id}, 2, '{forged.at.isoformat()}', 'collect', {forged.actor_id}, "
        f"{forged.site_id}, '{{}}', '{forged.prev_hash}', '{forged.hash}')")
    found = problems(session)
    assert f"case {case.id}, event 3: edited: its content does not match its hash" in found
    assert f"case {case.id}, event 4: edited: its content does not match its hash" in found


def test_reordered_events_are_found(engine, session, case):
    behind_the_apps_back(
        engine,
        f"UPDATE custody_event SET seq = 99 WHERE case_id = {case.id} AND seq = 2",
        f"UPDATE custody_event SET seq = 2 WHERE case_id = {case.id} AND seq = 3",
        f"UPDATE custody_event SET seq = 3 WHERE case_id = {case.id} AND seq = 99")
    found = problems(session)
    assert any(p.startswith(f"case {case.id}, event 2") for p in found)
    assert any(p.startswith(f"case {case.id}, event 3") for p in found)


def test_a_chain_rewritten_with_fresh_hashes_is_found_by_the_checkpoint(app, engine, session,
                                                                       clock, case):
    signed_checkpoint(app, session, clock)
    events = ledger.events_of(session=session, case=case)
    # Rewrite event 3 and recompute its hash: the chain alone looks intact.
    events[2].body = events[2].body.replace("sample", "apheresis_bag")
    new_hash = ledger.event_hash(events[2], events[2].prev_hash)
    session.rollback()
    behind_the_apps_back(engine, "UPDATE custody_event SET body = replace(body, 'sample', "
                                 f"'apheresis_bag'), hash = '{new_hash}' "
                                 f"WHERE case_id = {case.id} AND seq = 3")
    assert problems(session) == [f"case {case.id}, event 3: rewritten: event 3 differs from "
                                 "the one checkpoint 1 signed"]


def test_a_forged_checkpoint_is_found(app, engine, session, clock, case):
    signed_checkpoint(app, session, clock)
    behind_the_apps_back(engine, "UPDATE ledger_checkpoint SET heads = replace(heads, '3', '2')")
    assert problems(session) == ["case 0: checkpoint 1: its signature does not hold"]


def test_the_checkpoint_command_signs_every_chain_head(app, session, case):
    result = app.test_cli_runner().invoke(args=["coi", "ledger", "checkpoint"])
    assert "Checkpoint signed over 1 chain head(s)" in result.output
    session.rollback()
    assert session.exec(select(LedgerCheckpoint)).one().key_id


def test_the_ledger_refuses_updates_through_the_application(engine, session, case):
    from sqlalchemy.exc import DBAPIError

    with for_writing(engine).connect() as connection:
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text("UPDATE custody_event SET kind = 'x'"))


def test_concurrent_appends_to_one_case_keep_one_chain(app, engine, world, clock, case):
    errors: list[Exception] = []

    def register(count: int) -> None:
        try:
            for _ in range(count):
                with Session(for_writing(engine), expire_on_commit=False) as db:
                    enrolment.register_unit(session=db, now=clock.now(),
                                            actor=world.actor("staff"),
                                            coi_text=coi_of(case).text, kind="sample")
                    db.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(5,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as db:
        assert len(ledger.events_of(session=db, case=case)) == 3 + 20
        assert ledger.verify(session=db) == []


def test_the_case_page_shows_the_timeline_in_local_time(client, session, case):
    login(client, "coordinator")  # at manufacturing: sees the timeline, not the patient
    page = client.get(f"/cases/{coi_of(case).text}").get_data(as_text=True)
    assert "Timeline" in page and "Unit registered" in page and "Enrolled" in page
    assert "2026-11-22 03:01 CST" in page  # 09:01 UTC in the reader's zone (manufacturing's)
    assert "04:01 EST" not in page
    assert "Staff Person" in page and "Ann Example" not in page


def test_scans_are_on_the_chain_and_their_edited_idempotency_key_is_found(engine, session, world,
                                                                          clock, case):
    from coi.core.workflow import Entry
    from coi.services import custody

    bag = session.exec(select(Unit).where(Unit.case_id == case.id)).first()
    custody.scan(session=session, now=clock.now(), actor=world.actor("staff"),
                 entries=[Entry(serial_of(bag).text)], step_name="pack",
                 idempotency_key="device-retry-0001")
    session.commit()
    assert problems(session) == []
    behind_the_apps_back(engine, "UPDATE custody_event SET request_key = "
                                 "'0000000000000000000000000000000000000000000000000000000000000000' "
                                 f"WHERE case_id = {case.id} AND kind = 'scan_refused'")
    assert [p.split(": ", 1)[1] for p in problems(session)] == [
        "edited: its content does not match its hash"]


def test_an_edited_refusal_reason_is_found(engine, session, world, clock, case):
    from coi.core.workflow import Entry
    from coi.services import custody

    custody.scan(session=session, now=clock.now(), actor=world.actor("staff"),
                 entries=[Entry(coi_of(case).text)], step_name="pack")  # before collection
    session.commit()
    behind_the_apps_back(engine, "UPDATE custody_event SET body = replace(body, 'out_of_order', "
                                 f"'ok') WHERE case_id = {case.id} AND kind = 'scan_refused'")
    assert any("edited" in p for p in problems(session))
