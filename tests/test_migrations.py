"""The schema comes from migrations only, and it is exactly what the models say."""

from __future__ import annotations

import io
import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel, select

from coi import migrate
from coi.db import for_writing
from coi.models import (
    APPEND_ONLY_TABLES,
    AlarmDeviation,
    AlarmEvent,
    LoggerClockCheck,
    LoggerDaySummary,
    LoginAttempt,
    Notification,
    NotificationAttempt,
    coi_of,
)
from coi.services import alarms, audit, enrolment, labels, ledger, shipments, signatures
from coi.services.loggers import intake
from tests.helpers import PASSWORD, make_case


def test_migrated_schema_equals_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_database_is_at_the_migration_head(engine):
    assert migrate.current_revision(engine) == migrate.head_revision() is not None


def test_app_start_does_not_create_tables(app_config, tmp_path):
    from coi.app import create_app

    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    app = create_app(app_config | {"DATABASE_URL": empty})
    engine = app.extensions["coi.engine"]
    with engine.connect() as connection:
        tables = connection.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'")).scalars().all()
    engine.dispose()
    assert tables == []


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"])
def test_evidence_tables_refuse_update_and_delete(app, engine, session, world, clock, table,
                                                  statement):
    # Row triggers fire per row: put a row in every evidence table first.
    audit.record(session=session, now=clock.now(), actor=None, entity="site", entity_id="X",
                 action="update", changes={"name": ("a", "b")}, reason="test",
                 sites=[world.sites["BOS"].id])
    signatures.sign(session=session, now=clock.now(), signer=world.actor("qa"), password=PASSWORD,
                    meaning="approved", subject_type="site", subject_id="X", content={"a": 1})
    session.add(LoginAttempt(username="qa", at=clock.now(), succeeded=True))
    coi = coi_of(make_case(app, session, world, clock)).text
    enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                            coi_text=coi, kind="sample")
    job = labels.print_set(session=session, now=clock.now(), actor=world.actor("staff"),
                           signer=app.extensions["coi.signer"], coi_text=coi, output="png",
                           size="2x1", include_wristband=True, reason=None)
    labels.revoke(session=session, now=clock.now(), actor=world.actor("staff"),
                  label_id=job.rows[0].id, category="other", reason="test")
    ledger.checkpoint(session=session, now=clock.now(), signer=app.extensions["coi.signer"])
    shipment = shipments.open_shipment(
        session=session, now=clock.now(), actor=world.actor("staff"),
        profiles=app.extensions["coi.profiles"], coi_text=coi, leg="outbound",
        loggers=[shipments.LoggerSpec("LOG-1")], shipper_id=None, profile_name=None, eta=None)
    document = {"logger": "LOG-1", "readings": [{"at": clock.now().isoformat(), "celsius": 5.0}]}
    stored = intake.store(session=session, now=clock.now(), actor=world.actor("staff"),
                          shipment_id=shipment.id, stream=io.BytesIO(json.dumps(document).encode()),  # type: ignore[arg-type]
                          filename="r.json", via="api")
    session.add(LoggerDaySummary(shipment_id=shipment.id, file_id=stored.file.id, logger="LOG-1",
                                 day=clock.now().date(), min_c=4.0, max_c=6.0, line=2))
    session.add(LoggerClockCheck(shipment_id=shipment.id, serial="LOG-1", handoff="dispatch",
                                 scan_at=clock.now(), shown="2026-11-22 09:00:00", zone="UTC", offset_s=0.0,
                                 recorded_at=clock.now(), recorded_by_id=world.actor("staff").user_id))
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="custody", code="test",
                               severity="minor", summary="test", rule={"rule": "test"})
    assert alarm is not None
    raised = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id)).one()
    session.add(AlarmDeviation(alarm_id=alarm.id, event_id=raised.id, reference="DEV-1"))
    notification = Notification(alarm_id=alarm.id, channel="webhook", target="x", created_at=clock.now())
    session.add(notification)
    session.flush()
    session.add(NotificationAttempt(notification_id=notification.id, at=clock.now(), ok=False,
                                    detail="test", duration_ms=1))
    session.commit()
    column = {"logger_file_chunk": "seq", "logger_file_result": "file_id",
              "audit_entry_site": "site_id", "record_seal": "seq"}.get(table, "id")
    with for_writing(engine).connect() as connection:
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement.format(table=table, column=column)))
            connection.commit()


def test_downgrade_and_upgrade_again_round_trip(engine):
    config = migrate.alembic_config()
    from alembic import command

    with for_writing(engine).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
