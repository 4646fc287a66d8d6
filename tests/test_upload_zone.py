"""The logger's zone at upload: whoever uploads a file confirms or sets the zone its logger's
clock runs in (used for files that state none), on the shipment page, in the API and with
`flask coi import-logger`. A new zone is kept for the shipment's logger and audited (who,
when, old and new, why); a name that is not an IANA zone is refused with nothing changed."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from sqlmodel import func, select

from coi.models import AuditEntry, LoggerFile, LoggerReading, Shipment, ShipmentLogger
from tests.helpers import (
    BERLIN,
    CSRF,
    api_token,
    assert_as_documented,
    bearer,
    csv_file,
    login,
    make_case,
    open_for,
)

JSON = {"Accept": "application/json"}


def count(session, model) -> int:
    session.rollback()
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def zoneless(app, session, world, clock) -> Shipment:
    """A shipment whose logger was given no zone when it was opened."""
    shipment = open_for(session, world, clock, make_case(app, session, world, clock), zone=None)
    clock.advance(hours=10)
    return shipment


def logger_zone(session) -> str | None:
    session.rollback()  # a new transaction: it sees what the requests committed
    return session.exec(select(ShipmentLogger.zone)).one()


def zone_changes(session) -> list[tuple[str | None, str | None, str, str]]:
    session.rollback()  # a new transaction: it sees what the requests committed
    return [(e.old_value, e.new_value, e.reason, e.actor_name) for e in session.exec(
        select(AuditEntry).where(AuditEntry.entity == "shipment_logger", AuditEntry.field == "zone"))]


def upload_page(client, shipment) -> str:
    login(client, "courier")
    page = client.get(f"/shipments/{shipment.id}").get_data(as_text=True)
    return CSRF.search(page).group(1)  # type: ignore[union-attr]


def test_the_upload_form_sets_the_loggers_zone_and_the_preview_reads_the_file_in_it(
        client, session, world, clock, zoneless):
    data = csv_file([5.0, 5.1, 5.2], start=zoneless.opened_at)  # Berlin wall-clock times, no zone
    csrf = upload_page(client, zoneless)
    assert 'name="zone"' in client.get(f"/shipments/{zoneless.id}").get_data(as_text=True)

    def preview(zone: str):
        return client.post(f"/shipments/{zoneless.id}/logger-files/preview", headers=JSON,
                           data={"csrf_token": csrf, "zone": zone, "file": (io.BytesIO(data), "log.csv")})

    without = preview("")
    assert without.status_code == 422 and "zone" in without.get_json()["detail"]
    berlin, new_york = preview(BERLIN).get_json(), preview("America/New_York").get_json()
    assert (berlin["zone"], berlin["logger_zone"], berlin["zone_was"], berlin["zone_changes"]) == \
        (BERLIN, BERLIN, None, True)
    # Read again in the zone chosen: the same wall-clock times, six hours apart.
    assert datetime.fromisoformat(new_york["first"]["at"]) - datetime.fromisoformat(berlin["first"]["at"]) \
        == timedelta(hours=6)
    assert datetime.fromisoformat(berlin["first"]["at"]) == zoneless.opened_at
    assert logger_zone(session) is None and zone_changes(session) == []  # a preview keeps nothing
    done = client.post(f"/shipments/{zoneless.id}/logger-files", headers=JSON,
                       data={"csrf_token": csrf, "zone": BERLIN, "sha256": berlin["sha256"],
                             "file": (io.BytesIO(data), "log.csv")})
    assert done.status_code == 201, done.get_data(as_text=True)
    assert logger_zone(session) == BERLIN
    assert zone_changes(session) == [(None, BERLIN, "Zone confirmed at upload of log.csv",
                                      "Courier Person (courier)")]
    confirmed = preview(BERLIN).get_json()
    assert (confirmed["logger_zone"], confirmed["zone_changes"]) == (BERLIN, False)
    page = client.get(f"/shipments/{zoneless.id}").get_data(as_text=True)
    assert f'value="{BERLIN}"' in page  # the form now proposes the logger's zone


def test_the_api_sets_the_loggers_zone_and_refuses_one_that_is_not_a_zone(app, client, session, world,
                                                                          clock):
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    clock.advance(hours=10)
    token = api_token(session, clock, world, "courier")
    document = client.get("/api/v1/openapi.json").get_json()
    # Tokyo wall-clock times: the logger was set up in Tokyo, not Berlin as the shipment says.
    data = csv_file([5.0, 5.1], start=shipment.opened_at + timedelta(hours=1), zone_offset_h=9)
    for bad in ("Mars/Olympus", "../../etc/passwd", "Europe/" + "x" * 80):
        refused = client.post(f"/api/v1/shipments/{shipment.id}/logger-files?zone={bad}", data=data,
                              headers=bearer(token))
        assert refused.status_code == 422
        assert "is not a time zone name" in refused.get_json()["detail"]
        assert refused.get_json()["errors"][0]["field"] == "zone"
        assert_as_documented(document, "/shipments/{shipment_id}/logger-files", "post", refused)
    assert (count(session, LoggerFile), logger_zone(session), zone_changes(session)) == (0, BERLIN, [])
    stored = client.post(f"/api/v1/shipments/{shipment.id}/logger-files?zone=Asia/Tokyo", data=data,
                         headers=bearer(token))
    assert stored.status_code == 201
    assert_as_documented(document, "/shipments/{shipment_id}/logger-files", "post", stored)
    assert logger_zone(session) == "Asia/Tokyo"
    assert [(old, new) for old, new, _why, _who in zone_changes(session)] == [(BERLIN, "Asia/Tokyo")]
    # The same file again changes nothing, the zone neither.
    again = client.post(f"/api/v1/shipments/{shipment.id}/logger-files?zone=Europe/Paris", data=data,
                        headers=bearer(token))
    assert again.status_code == 200 and logger_zone(session) == "Asia/Tokyo"


def test_the_cli_sets_the_loggers_zone_and_refuses_one_that_is_not_a_zone(app, session, world, clock,
                                                                          zoneless, tmp_path):
    path = tmp_path / "backload.csv"
    path.write_bytes(csv_file([5.0] * 4, start=zoneless.opened_at))
    runner = app.test_cli_runner()
    args = ["coi", "import-logger", str(zoneless.id), str(path), "--user", "courier"]
    bad = runner.invoke(args=[*args, "--zone", "Berlin"])
    assert bad.exit_code != 0 and "'Berlin' is not a time zone name" in bad.output
    assert (count(session, LoggerReading), logger_zone(session)) == (0, None)
    good = runner.invoke(args=[*args, "--zone", BERLIN])
    assert good.exit_code == 0, good.output
    assert "Stored 4 readings" in good.output
    assert logger_zone(session) == BERLIN
    assert [(old, new, why) for old, new, why, _who in zone_changes(session)] == [
        (None, BERLIN, "Zone confirmed at upload of backload.csv")]
