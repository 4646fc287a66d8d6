"""One file, two legs: a logger that travelled two shipments brings the same file to both.
The file is stored once (its bytes and its readings), linked to each shipment, and each
shipment is judged on it in its own window; the same file again for a shipment it is linked
to changes nothing. Files stored before links existed keep their shipment through the
migration."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text
from sqlmodel import col, func, select

from coi import migrate
from coi.db import for_writing
from coi.models import (
    AuditEntry,
    LoggerFile,
    LoggerFileChunk,
    LoggerFileLink,
    LoggerReading,
    Shipment,
)
from coi.services import shipments
from coi.services.loggers import evaluation, intake
from tests.helpers import (
    CSRF,
    api_token,
    assert_as_documented,
    bearer,
    csv_file,
    login,
    make_case,
    open_for,
    store,
)

JSON = {"Accept": "application/json"}


def other_case(app, session, world, clock, number: int):
    return make_case(app, session, world, clock, name=f"Patient {number}", mrn=f"M-{number}")


def count(session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def legs(app, session, world, clock) -> tuple[Shipment, Shipment, bytes]:
    """Two shipments carrying one logger, the second opened two hours after the first (its
    serial written another way), and the logger's file over both: a 40-minute excursion in
    the first hour, only in the first shipment's window."""
    first = open_for(session, world, clock, make_case(app, session, world, clock), serials=("0434 EF00",))
    clock.advance(hours=2)
    second = open_for(session, world, clock, other_case(app, session, world, clock, 2),
                      serials=("0434-ef00",))
    clock.advance(hours=2)
    values = [5.0] * 3 + [9.5] * 8 + [5.0] * 37  # every 5 minutes for four hours
    return first, second, csv_file(values, start=first.opened_at)


def judged(session, world, clock, shipment):
    view = shipments.visible_shipment(session=session, actor=world.actor("courier"), shipment_id=shipment.id)
    return evaluation.evaluate(session=session, now=clock.now(), view=view).series[0].evaluation


def test_one_file_for_two_legs_is_stored_once_and_judged_in_each_window(session, world, clock, legs):
    first, second, data = legs
    stored = store(session, world, clock, first, data)
    attached = store(session, world, clock, second, data, name="again.csv")
    assert stored.created and not attached.created and attached.link is not None
    assert attached.file.id == stored.file.id
    assert (count(session, LoggerFile), count(session, LoggerReading)) == (1, 48)
    assert count(session, LoggerFileChunk) == 1
    links = session.exec(select(LoggerFileLink.shipment_id, LoggerFileLink.logger_serial)
                         .order_by(col(LoggerFileLink.id))).all()
    assert links == [(first.id, "0434 EF00"), (second.id, "0434-ef00")]
    # The first leg saw the excursion; the second was opened after it and is judged from then.
    assert [a.code for a in stored.alarms if a.code == "excursion_single"] == ["excursion_single"]
    assert [a.code for a in attached.alarms] == []
    one, two = judged(session, world, clock, first), judged(session, world, clock, second)
    assert one.excursions and not two.excursions
    assert one.before_window.count == 0 and two.before_window.count == 24  # the first two hours
    assert two.count == 24 and two.min_celsius == two.max_celsius == 5.0
    assert attached.link.outside_window == 24
    entry = session.exec(select(AuditEntry).where(AuditEntry.entity == "logger_file",
                                                  AuditEntry.action == "link")).first()
    assert entry is not None and f"attached to shipment {second.id}" in entry.reason


def test_the_same_file_again_for_a_linked_shipment_changes_nothing(session, world, clock, legs):
    first, second, data = legs
    store(session, world, clock, first, data)
    store(session, world, clock, second, data)
    for shipment in (first, second):
        again = store(session, world, clock, shipment, data)
        assert not again.changed
    assert (count(session, LoggerFileLink), count(session, LoggerReading)) == (2, 48)


def test_a_file_is_attached_only_to_a_shipment_that_carried_its_logger(app, session, world, clock, legs):
    first, _second, data = legs
    store(session, world, clock, first, data)
    other = open_for(session, world, clock, other_case(app, session, world, clock, 3),
                     serials=("LOG-9",))
    with pytest.raises(intake.LoggerFileRefused, match="This file is from logger 0434 EF00"):
        store(session, world, clock, other, data)
    session.rollback()
    assert count(session, LoggerFileLink) == 1


def test_a_file_whose_readings_all_precede_a_later_leg_is_not_attached_to_it(app, session, world, clock,
                                                                             legs):
    first, _second, _data = legs
    early = csv_file([5.0] * 4, start=first.opened_at)
    store(session, world, clock, first, early)
    clock.advance(hours=1)
    later = open_for(session, world, clock, other_case(app, session, world, clock, 4),
                     serials=("0434EF00",))
    with pytest.raises(intake.LoggerFileRefused, match="readings are for another period"):
        store(session, world, clock, later, early)
    session.rollback()
    assert count(session, LoggerFileLink) == 1


def test_the_api_and_the_shipment_page_attach_a_file_of_another_leg(app, client, session, world, clock, legs):
    first, second, data = legs
    token = api_token(session, clock, world, "courier")
    document = client.get("/api/v1/openapi.json").get_json()
    answer = client.post(f"/api/v1/shipments/{first.id}/logger-files?filename=leg1.csv", data=data,
                         headers=bearer(token))
    assert answer.status_code == 201
    login(client, "courier")
    page = client.get(f"/shipments/{second.id}")
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    shown = client.post(f"/shipments/{second.id}/logger-files/preview", headers=JSON,
                        data={"csrf_token": csrf, "file": (io.BytesIO(data), "leg2.csv")}).get_json()
    assert shown["already"]["shipment"] == first.id and shown["already"]["linked_here"] is False
    assert (shown["count"], shown["before_window"], shown["logger"]) == (48, 24, "0434-ef00")
    attached = client.post(f"/api/v1/shipments/{second.id}/logger-files?filename=leg2.csv", data=data,
                           headers=bearer(token))
    assert attached.status_code == 201, attached.get_data(as_text=True)
    body = attached.get_json()
    assert body["linked"] is True and body["created"] is False
    assert f"attached to shipment {second.id}" in body["message"]
    assert_as_documented(document, "/shipments/{shipment_id}/logger-files", "post", attached)
    again = client.post(f"/api/v1/shipments/{second.id}/logger-files", data=data, headers=bearer(token))
    assert again.status_code == 200 and "nothing changed" in again.get_json()["message"]
    assert_as_documented(document, "/shipments/{shipment_id}/logger-files", "post", again)
    page = client.get(f"/shipments/{second.id}").get_data(as_text=True)
    assert "leg1.csv" in page and f"first stored for shipment {first.id}" in page
    with client.get(f"/logger-files/{body['file']['id']}/raw") as raw:
        assert raw.data == data


def test_the_migration_links_every_file_stored_before_to_its_shipment(engine, session, world, clock, legs):
    first, _second, data = legs
    stored = store(session, world, clock, first, data)
    file_id, uploaded_at = stored.file.id, stored.file.uploaded_at
    session.close()
    from alembic import command

    config = migrate.alembic_config()
    with for_writing(engine).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")
    with engine.connect() as connection:
        assert "logger_file_link" not in {row[0] for row in connection.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'" if engine.dialect.name == "sqlite"
            else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))}
    migrate.upgrade(engine)
    link = session.exec(select(LoggerFileLink)).one()
    assert (link.file_id, link.shipment_id, link.logger_serial) == (file_id, first.id, "0434 EF00")
    assert (link.linked_at, link.linked_by_id) == (uploaded_at, world.actor("courier").user_id)
    assert judged(session, world, clock, first).excursions  # still judged on its file
