"""Refusals and notes say why: a 413 states the limit (page and API problem), `flask coi
import-logger` keeps to the logger upload limit, and the rows a file's readings skipped and
what the normaliser put right (rows reordered, readings stamped before a clock reset) are
told by the CLI and the API as the web preview tells them."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlmodel import func, select

from coi.models import AuditEntry, LoggerFile, LoggerReading, Shipment
from tests.helpers import (
    CSRF,
    api_token,
    assert_as_documented,
    bearer,
    login,
    make_case,
    open_for,
)

JSON = {"Accept": "application/json"}


def count(session, model) -> int:
    session.rollback()  # a new transaction: it sees what the requests and commands committed
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def shipment(app, session, world, clock) -> Shipment:
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    clock.advance(hours=2)
    return shipment


def untidy(shipment: Shipment) -> bytes:
    """Berlin wall-clock times: two rows out of order, a row without a temperature, and a
    reading stamped 1970 (the logger's clock was reset)."""
    local = shipment.opened_at + timedelta(hours=1)
    rows = ["Date Time,Temperature (°C)"] + [
        f"{local + timedelta(minutes=m):%Y-%m-%d %H:%M:%S},{value}"
        for m, value in ((0, "5.0"), (10, "5.2"), (5, "5.1"), (15, ""))]
    rows += ["1970-01-01 01:00:00,4.0", f"{local + timedelta(minutes=20):%Y-%m-%d %H:%M:%S},5.3"]
    return ("\r\n".join(rows) + "\r\n").encode()


# ------------------------------------------------------------------ 413 states the limit


def test_an_upload_over_the_logger_file_limit_is_told_the_limit(app, client, session, world, clock, shipment):
    app.config["LOGGER_UPLOAD_MAX_BYTES"] = 2000
    token = api_token(session, clock, world, "courier")
    document = client.get("/api/v1/openapi.json").get_json()
    answer = client.post(f"/api/v1/shipments/{shipment.id}/logger-files", data=b"x" * 5000,
                         headers=bearer(token))
    assert answer.status_code == 413
    problem = answer.get_json()
    assert (problem["code"], problem["max_bytes"]) == ("too_large", 2000)
    assert "The limit here is 2,000 bytes (1.953 KB)" in problem["detail"]
    assert_as_documented(document, "/shipments/{shipment_id}/logger-files", "post", answer)
    login(client, "courier")
    csrf = CSRF.search(client.get(f"/shipments/{shipment.id}").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    page = client.post(f"/shipments/{shipment.id}/logger-files",
                       data={"csrf_token": csrf, "file": (io.BytesIO(b"x" * 5000), "big.csv")})
    assert page.status_code == 413 and page.mimetype == "text/html"
    assert "The limit here is 2,000 bytes" in page.get_data(as_text=True)
    assert count(session, LoggerFile) == 0


# ------------------------------------------------------------------ the CLI keeps to the limit


def test_the_cli_refuses_a_file_over_the_upload_limit_and_writes_nothing(app, session, world, clock, shipment,
                                                                         tmp_path):
    app.config["LOGGER_UPLOAD_MAX_BYTES"] = 3 * 1024 * 1024
    path = tmp_path / "huge.csv"
    path.write_bytes(b"Date Time,Temperature (\xc2\xb0C)\r\n" + b"2026-11-22 10:00:00,5.0\r\n" * 140_000)
    before = count(session, AuditEntry)
    result = app.test_cli_runner().invoke(
        args=["coi", "import-logger", str(shipment.id), str(path), "--user", "courier"])
    assert result.exit_code != 0
    assert (f"huge.csv is {path.stat().st_size:,} bytes; the logger file limit (LOGGER_UPLOAD_MAX_BYTES) "
            "is 3,145,728 bytes (3 MB). Nothing was stored.") in result.output
    assert (count(session, LoggerFile), count(session, LoggerReading)) == (0, 0)
    assert count(session, AuditEntry) == before


# ------------------------------------------------------------------ skipped rows and notes


def test_the_cli_tells_the_rows_skipped_and_what_was_put_right(app, session, world, clock, shipment,
                                                               tmp_path):
    path = tmp_path / "untidy.csv"
    path.write_bytes(untidy(shipment))
    result = app.test_cli_runner().invoke(
        args=["coi", "import-logger", str(shipment.id), str(path), "--user", "courier"])
    assert result.exit_code == 0, result.output
    assert "Stored 5 readings" in result.output
    assert "Skipped 1 row(s) that are not readings:\n  line 5, column Temperature (°C): no temperature" \
        in result.output
    assert "Note: line 4: 2 row(s) came before rows with earlier times and were put in time order" \
        in result.output
    assert "Note: line 6: 1 row(s) are stamped before 2000 (the first 1970-01-01 00:00:00 UTC): the " \
        "logger's clock was reset" in result.output


def test_the_api_and_the_preview_tell_the_rows_skipped_and_what_was_put_right(app, client, session, world,
                                                                               clock, shipment):
    data = untidy(shipment)
    login(client, "courier")
    csrf = CSRF.search(client.get(f"/shipments/{shipment.id}").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    shown = client.post(f"/shipments/{shipment.id}/logger-files/preview", headers=JSON,
                        data={"csrf_token": csrf, "file": (io.BytesIO(data), "untidy.csv")}).get_json()
    token = api_token(session, clock, world, "courier")
    answer = client.post(f"/api/v1/shipments/{shipment.id}/logger-files?filename=untidy.csv", data=data,
                         headers=bearer(token))
    assert answer.status_code == 201
    assert_as_documented(client.get("/api/v1/openapi.json").get_json(),
                         "/shipments/{shipment_id}/logger-files", "post", answer)
    stored = answer.get_json()
    assert stored["skipped_count"] == shown["skipped_count"] == 1
    assert stored["skipped"] == shown["skipped"] == [
        {"line": 5, "column": "Temperature (°C)", "why": "no temperature on this row",
         "where": "line 5, column Temperature (°C): no temperature on this row"}]
    assert stored["notes"] == shown["notes"]
    assert [(note["line"], note["why"].split(" (")[0].split(" row(s) ")[1]) for note in stored["notes"]] == [
        (4, "came before rows with earlier times and were put in time order"),
        (6, "are stamped before 2000")]
    # Told again when the same file comes again (nothing changed).
    again = client.post(f"/api/v1/shipments/{shipment.id}/logger-files", data=data, headers=bearer(token))
    assert again.status_code == 200 and again.get_json()["notes"] == stored["notes"]
