"""The logger a file names is checked: a file that states a logger serial is taken only for a
shipment that carries that logger (and, when the uploader names a logger too, only if the two
agree); otherwise it is refused whole, the refusal says both serials and is kept in the audit
trail. Serials are compared ignoring case, spaces, hyphens and underscores. A file that states
no serial is taken as the logger the uploader names, or the shipment's only logger.

Every real export in ../shared/realdata that states a serial is taken for a shipment with that
logger and refused for one with another; the refusal is checked through each way in: the web
preview and commit, the API's file and readings, and `flask coi import-logger`."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from coi.core.errors import InvalidInput
from coi.models import (
    AuditEntry,
    LoggerDaySummary,
    LoggerFile,
    LoggerFileResult,
    LoggerReading,
    Shipment,
    ShipmentLogger,
    coi_of,
)
from coi.services.loggers import intake
from coldchain import ReadOptions, Unreadable, logger_key, read, stated_logger
from tests.helpers import BERLIN, CSRF, api_token, bearer, csv_file, login, make_case, open_for, store

JSON = {"Accept": "application/json"}
ZURICH = "Europe/Zurich"
STRANGER = "FT2L-999999999"  # the serial of the file that was once previewed as the shipment's own
LONG_AGO = datetime(2010, 1, 1, tzinfo=UTC)  # before every real file's first reading


def count(session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def refused_files(session) -> list[tuple[str | None, str]]:
    """(file name, reason) of each refused upload the audit trail keeps, oldest first."""
    session.rollback()  # a new transaction: it sees what the requests committed
    return [(entry.new_value, entry.reason) for entry in session.exec(
        select(AuditEntry).where(AuditEntry.entity == "logger_file", AuditEntry.action == "refuse",
                                 AuditEntry.field == "filename").order_by(col(AuditEntry.id)))]


def nothing_stored(session) -> bool:
    session.rollback()  # a new transaction: it sees what the requests committed
    return all(count(session, model) == 0 for model in (LoggerFile, LoggerReading, LoggerFileResult))


def shipment_with(app, session, world, clock, *serials: str, zone: str | None = BERLIN,
                  since: datetime | None = None) -> Shipment:
    """A shipment carrying loggers `serials`; `since` backdates its opening so that a real
    file's readings (years old) fall in its window."""
    shipment = open_for(session, world, clock, make_case(app, session, world, clock), serials=serials,
                        zone=zone)
    if since is not None:
        shipment.opened_at = since
        session.add(shipment)
        session.commit()
    return shipment


def headed(serial: str, start: datetime, values: tuple[float, ...] = (5.0, 5.1, 5.2)) -> bytes:
    """A generic export whose preamble states its logger, as the one the issue saw."""
    return f"Logger serial: {serial}\r\n".encode() + csv_file(list(values), start=start)


# ------------------------------------------------------------------ the rule, in the library


@pytest.mark.parametrize(("one", "other"), [
    ("0434 EF00 4B29 0A", "0434-EF00-4B29-0A"),
    ("0434 EF00 4B29 0A", "0434_ef00_4b29_0a"),
    ("ft2l-123", "FT2L123"),
    ("LOG-1", " log 1 "),
])
def test_serials_written_with_other_case_spaces_hyphens_or_underscores_are_the_same_logger(one, other):
    assert logger_key(one) == logger_key(other)


@pytest.mark.parametrize(("one", "other"), [
    ("LOG-1", "LOG-2"),
    ("urn:epc:id:giai:4000001.111", "urn:epc:id:giai:40000011.11"),  # dots and colons count
    ("A1", "A1O"),
])
def test_serials_that_differ_in_a_letter_digit_or_dot_are_other_loggers(one, other):
    assert logger_key(one) != logger_key(other)


def test_a_generic_export_reports_the_serial_its_preamble_states():
    data = headed(STRANGER, datetime(2026, 11, 22, 9, tzinfo=UTC))
    source = read(io.BytesIO(data), name="log.csv", options=ReadOptions(zone=UTC, logger_id="LOG-1"))
    assert source.logger_id == STRANGER
    assert "LOG-1" in source.meta["logger_note"]
    assert stated_logger(io.BytesIO(data), name="log.csv") == STRANGER


@pytest.mark.parametrize("line", ["Serial Number,A-17,,", "S/N: A-17", "Device ID = A-17",
                                  '"Logger ID";"A-17"', "SN\tA-17"])
def test_the_usual_ways_of_writing_a_serial_in_a_preamble_are_read(line):
    data = f"{line}\nTime,Temperature (C)\n2026-11-22 09:00,5.0\n".encode()
    assert stated_logger(io.BytesIO(data)) == "A-17"


def test_a_preamble_naming_two_loggers_is_refused():
    data = b"Serial: A-1\nLogger serial: B-2\nTime,Temperature (C)\n2026-11-22 09:00,5.0\n"
    with pytest.raises(Unreadable, match="several loggers"):
        read(io.BytesIO(data), options=ReadOptions(zone=UTC))


def test_a_line_that_is_not_about_a_serial_names_no_logger():
    data = b"ID: 5\nName: fridge 3\nTime,Temperature (C)\n2026-11-22 09:00,5.0\n"
    stream = io.BytesIO(data)
    assert stated_logger(stream) is None
    assert stream.tell() == 0  # put back: the file is read again after


def test_a_column_header_beginning_with_serial_is_not_taken_for_the_files_logger():
    data = b"Serial,Time,Temperature (C)\nABC,2026-11-22 09:00,5.0\n"
    assert stated_logger(io.BytesIO(data)) is None


# ------------------------------------------------------------------ every real file


@dataclass(frozen=True)
class RealFile:
    path: str
    serial: str  # as the file writes it
    zone: str | None  # the zone the shipment configures for the logger (for files stating none)
    readings: int | None  # stored when taken; None: refused for another reason than its logger
    on_shipment: str | None = None  # the serial as the shipment spells it, if not as the file does
    refused: str = "no readings"  # why a file that is not taken is refused
    days: int = 0  # a daily-summary report's days, stored instead of readings

    @property
    def shipment_serial(self) -> str:
        return self.on_shipment or self.serial


# The serials are those test_coldchain_realdata.py pins (found with grep in each file); the counts
# are the readings that reader test pins, all stored (none of these files repeats a time).
REAL_FILES = [
    RealFile("loggers/berlinger-msupply/130500109088_202206081014.txt", "130500109088", ZURICH, 10653),
    RealFile("loggers/berlinger-msupply/100800001215_202304201410.txt", "100800001215", ZURICH, 835),
    RealFile("loggers/berlinger-msupply/RCPJ00010_03_202304201359.txt", "RCPJ00010", ZURICH, 424),
    # A Fridge-tag 2 keeps daily summaries, not readings: its four days are stored and judged.
    RealFile("loggers/berlinger-msupply/130400191544_202304201514.txt", "130400191544", ZURICH, 0, days=4),
    RealFile("loggers/hobo-myClim/20024354.txt", "20024354", "UTC", 49),
    RealFile("loggers/hobo-myClim/20024354_fahrenheit.csv", "20024354", None, 49),
    RealFile("loggers/hobo-myClim/20024354_semicolon.txt", "20024354", None, 48),
    RealFile("loggers/hobo-myClim/20024370.txt", "20024370", "UTC", 101),
    RealFile("loggers/hobo-myClim/20847126_empty.txt", "20847126", "UTC", None),
    RealFile("loggers/hobo-hoboreader/sample_hobo_pendant_data.csv", "10469238", None, 1993),
    RealFile("loggers/ibutton-ibuttonr/10a.csv", "590000002E1BCC21", "UTC", 1577),
    # EnvLogger prints its serial with spaces; a shipment cannot carry a space, so it is typed
    # with hyphens there, and is the same logger.
    RealFile("loggers/envlogger/issuemh04a_0434_EF00_4B29_0A-20240116_132500.csv", "0434 EF00 4B29 0A", None,
             397, on_shipment="0434-EF00-4B29-0A"),
    RealFile("loggers/tinytag-dataloggergraphs/TinyTag_2.csv", "000000", "UTC", 10),
    RealFile("loggers/rotronic-dataloggergraphs/Rotronic_1.csv", "A00000000", "UTC", 10),
    RealFile("epcis/gs1-EPCIS/SensorDataExample1.jsonld", "urn:epc:id:giai:4000001.111", None, 3),
    RealFile("epcis/gs1-EPCIS/SensorDataExample2.jsonld", "urn:epc:id:giai:4000001.111", None, None),
    RealFile("epcis/gs1-EPCIS/SensorDataExample5.jsonld", "urn:epc:id:giai:4000001.111", None, 6),
    # Its examples give 26.1 and 26.3 °C for the same time (reports 5 and 26): refused for that.
    RealFile("epcis/gs1-EPCIS/SensorDataExamples.xml", "urn:epc:id:giai:4000001.111", None, None,
             refused="two values for the same time"),
]
# Files that state no serial (or cannot be read at all): taken as the logger the uploader names.
NO_SERIAL = ["loggers/hobo-hoboreader/sample_hobo_u12_data.csv",
             "epcis/gs1-EPCIS/SensorDataExample13.jsonld",
             "epcis/gs1-EPCIS/SensorDataExample9.jsonld",  # its one temperature report is an exception
             "loggers/biovoice-bvfile/2622930045_202006091730.bv",  # binary: refused by every reader
             "loggers/berlinger-msupply/130400191544_202304201514.pdf"]
NAME = lambda real: Path(real.path).name  # noqa: E731 - the test ids


def test_every_real_file_is_sorted_into_states_a_serial_or_states_none(realdata: Path):
    present = {str(path.relative_to(realdata)) for folder in ("loggers", "epcis")
               for path in (realdata / folder).rglob("*") if path.is_file() and path.name != "README.md"}
    assert present == {real.path for real in REAL_FILES} | set(NO_SERIAL)


@pytest.mark.parametrize("real", REAL_FILES, ids=NAME)
def test_a_real_file_states_its_serial(realdata: Path, real: RealFile):
    with (realdata / real.path).open("rb") as stream:
        assert stated_logger(stream, name=Path(real.path).name) == real.serial


@pytest.mark.parametrize("path", NO_SERIAL, ids=lambda path: Path(path).name)
def test_a_real_file_without_a_serial_states_none(realdata: Path, path: str):
    with (realdata / path).open("rb") as stream:
        assert stated_logger(stream, name=Path(path).name) is None


@pytest.mark.parametrize("real", REAL_FILES, ids=NAME)
def test_a_real_file_is_taken_for_a_shipment_with_its_logger(app, session, world, clock, realdata, real):
    shipment = shipment_with(app, session, world, clock, real.shipment_serial, zone=real.zone, since=LONG_AGO)
    data = (realdata / real.path).read_bytes()
    if real.readings is None:  # its serial is right; it is refused for another reason
        with pytest.raises(intake.LoggerFileRefused, match=real.refused):
            store(session, world, clock, shipment, data, name=Path(real.path).name)
        session.rollback()
        assert nothing_stored(session)
        return
    stored = store(session, world, clock, shipment, data, name=Path(real.path).name)
    assert stored.created and stored.result.reading_count == real.readings
    assert stored.file.logger_serial == real.shipment_serial
    if real.days:
        stored_days = session.exec(select(LoggerDaySummary.logger)).all()
        assert stored_days == [real.shipment_serial] * real.days
        return
    loggers = session.exec(select(LoggerReading.logger).distinct()).all()
    assert loggers == [real.shipment_serial]  # stored under the shipment's spelling, where it is looked up


@pytest.mark.parametrize("real", REAL_FILES, ids=NAME)
def test_a_real_file_is_refused_for_a_shipment_with_another_logger(app, session, world, clock, realdata,
                                                                   real):
    shipment = shipment_with(app, session, world, clock, "FT2L-123", "LOG-2", zone=real.zone or "UTC",
                             since=LONG_AGO)
    data = (realdata / real.path).read_bytes()
    for named in (None, "FT2L-123"):
        with pytest.raises(intake.LoggerFileRefused) as refused:
            store(session, world, clock, shipment, data, name=Path(real.path).name, logger_serial=named)
        session.rollback()
        assert f"This file is from logger {real.serial}; this shipment's loggers are FT2L-123, LOG-2" in \
            refused.value.message
        assert nothing_stored(session)


def test_a_real_file_without_a_serial_is_taken_as_the_logger_the_uploader_names(app, session, world, clock,
                                                                                realdata):
    # (EPCIS example 13 states none either, but gives two temperatures for one time: refused.)
    path = "loggers/hobo-hoboreader/sample_hobo_u12_data.csv"
    data = (realdata / path).read_bytes()
    several = shipment_with(app, session, world, clock, "LOG-1", "LOG-2", zone="UTC", since=LONG_AGO)
    with pytest.raises(InvalidInput, match="Say which logger"):
        store(session, world, clock, several, data, name=Path(path).name)
    session.rollback()
    stored = store(session, world, clock, several, data, name=Path(path).name, logger_serial="log-2")
    assert stored.created and stored.file.logger_serial == "LOG-2"


# ------------------------------------------------------------------ which logger, on one shipment


def test_a_file_stating_one_of_the_shipments_loggers_is_stored_as_that_logger_unasked(app, session, world,
                                                                                      clock):
    shipment = shipment_with(app, session, world, clock, "LOG-1", "LOG-2")
    clock.advance(hours=1)
    stored = store(session, world, clock, shipment, headed("log 2", shipment.opened_at))
    assert stored.file.logger_serial == "LOG-2"
    assert set(session.exec(select(LoggerReading.logger)).all()) == {"LOG-2"}


def test_a_file_stating_another_of_the_shipments_loggers_than_the_one_named_is_refused(app, session, world,
                                                                                       clock):
    shipment = shipment_with(app, session, world, clock, "LOG-1", "LOG-2")
    clock.advance(hours=1)
    with pytest.raises(intake.LoggerFileRefused,
                       match="This file is from logger LOG-2, but it was uploaded as logger LOG-1's"):
        store(session, world, clock, shipment, headed("LOG-2", shipment.opened_at), logger_serial="LOG-1")
    session.rollback()
    assert nothing_stored(session)


def test_a_logger_named_that_is_not_on_the_shipment_is_refused_with_its_loggers(app, session, world, clock):
    shipment = shipment_with(app, session, world, clock, "LOG-1", "LOG-2")
    clock.advance(hours=1)
    with pytest.raises(intake.LoggerFileRefused, match=r"Logger LOG-3 is not assigned .* LOG-1, LOG-2"):
        store(session, world, clock, shipment, csv_file([5.0], start=shipment.opened_at),
              logger_serial="LOG-3")
    session.rollback()
    assert nothing_stored(session)


def test_a_file_stating_no_serial_keeps_the_logger_the_uploader_names(app, session, world, clock):
    shipment = shipment_with(app, session, world, clock, "LOG-1", "LOG-2")
    clock.advance(hours=1)
    stored = store(session, world, clock, shipment, csv_file([5.0, 5.1], start=shipment.opened_at),
                   logger_serial="LOG-1")
    assert stored.file.logger_serial == "LOG-1"


# ------------------------------------------------------------------ each way in


@pytest.fixture
def one_logger(app, session, world, clock) -> Shipment:
    shipment = shipment_with(app, session, world, clock, "FT2L-123")
    clock.advance(hours=1)
    return shipment


def _refused_and_kept(session, answer, filename: str) -> None:
    assert answer.status_code == 422, answer.get_data(as_text=True)
    problem = answer.get_json()
    assert problem["type"].endswith("logger_file_refused")
    assert f"This file is from logger {STRANGER}; this shipment's loggers are FT2L-123" in problem["detail"]
    assert nothing_stored(session)
    name, reason = refused_files(session)[-1]
    assert name == filename and STRANGER in reason and "FT2L-123" in reason


def test_the_web_preview_refuses_a_file_from_another_logger_and_keeps_the_refusal(client, session, world,
                                                                                  one_logger):
    login(client, "courier")
    token = CSRF.search(client.get(f"/shipments/{one_logger.id}").get_data(as_text=True)).group(1)
    data = headed(STRANGER, one_logger.opened_at)
    answer = client.post(f"/shipments/{one_logger.id}/logger-files/preview", headers=JSON,
                         data={"csrf_token": token, "file": (io.BytesIO(data), "stranger.csv")})
    _refused_and_kept(session, answer, "stranger.csv")
    answer = client.post(f"/shipments/{one_logger.id}/logger-files", headers=JSON,
                         data={"csrf_token": token, "file": (io.BytesIO(data), "stranger2.csv")})
    _refused_and_kept(session, answer, "stranger2.csv")
    # The shipment's own logger, written as another vendor would, is previewed as the shipment's.
    own_file = headed("ft2l 123", one_logger.opened_at)
    own = client.post(f"/shipments/{one_logger.id}/logger-files/preview", headers=JSON,
                      data={"csrf_token": token, "file": (io.BytesIO(own_file), "own.csv")})
    assert own.status_code == 200 and own.get_json()["logger"] == "FT2L-123"


def test_the_api_refuses_a_file_or_readings_from_another_logger_and_keeps_the_refusal(client, session, world,
                                                                                      clock, one_logger):
    token = api_token(session, clock, world, "courier")
    data = headed(STRANGER, one_logger.opened_at)
    answer = client.post(f"/api/v1/shipments/{one_logger.id}/logger-files?filename=a.csv", data=data,
                         headers=bearer(token))
    _refused_and_kept(session, answer, "a.csv")
    answer = client.post(f"/api/v1/shipments/{one_logger.id}/logger-files?filename=b.csv&logger=FT2L-123",
                         data=data, headers=bearer(token))
    _refused_and_kept(session, answer, "b.csv")
    body = {"logger": STRANGER, "readings": [
        {"at": (one_logger.opened_at + timedelta(minutes=m)).isoformat(), "celsius": 5.0} for m in (10, 15)]}
    answer = client.post(f"/api/v1/shipments/{one_logger.id}/readings", json=body, headers=bearer(token))
    _refused_and_kept(session, answer, "readings.json")
    body["logger"] = "ft2l_123"
    answer = client.post(f"/api/v1/shipments/{one_logger.id}/readings", json=body, headers=bearer(token))
    assert answer.status_code == 201 and answer.get_json()["file"]["logger"] == "FT2L-123"


def test_the_cli_refuses_a_file_from_another_logger_and_keeps_the_refusal(app, session, world, one_logger,
                                                                          tmp_path):
    path = tmp_path / "stranger.csv"
    path.write_bytes(headed(STRANGER, one_logger.opened_at))
    result = app.test_cli_runner().invoke(args=["coi", "import-logger", str(one_logger.id), str(path),
                                                "--user", "courier"])
    assert result.exit_code != 0
    assert f"This file is from logger {STRANGER}; this shipment's loggers are FT2L-123" in result.output
    assert nothing_stored(session)
    name, reason = refused_files(session)[-1]
    assert name == "stranger.csv" and STRANGER in reason and "FT2L-123" in reason


def test_the_upload_form_lets_the_file_name_its_logger_on_a_shipment_with_several(app, client, session, world,
                                                                                   clock):
    shipment = shipment_with(app, session, world, clock, "LOG-1", "LOG-2")
    clock.advance(hours=1)
    login(client, "courier")
    page = client.get(f"/shipments/{shipment.id}").get_data(as_text=True)
    assert '<select name="logger" id="logger-input"><option value="" data-zone="">the one the ' \
        'file names</option>' in page
    assert 'name="zone" id="zone-input" value=""' in page  # the named logger's own zone
    answer = client.post(f"/shipments/{shipment.id}/logger-files/preview", headers=JSON,
                         data={"csrf_token": CSRF.search(page).group(1), "logger": "",
                               "file": (io.BytesIO(headed("LOG-2", shipment.opened_at)), "log.csv")})
    assert answer.status_code == 200 and answer.get_json()["logger"] == "LOG-2"
    unnamed = client.post(f"/shipments/{shipment.id}/logger-files/preview", headers=JSON,
                          data={"csrf_token": CSRF.search(page).group(1), "logger": "",
                                "file": (io.BytesIO(csv_file([5.0], start=shipment.opened_at)), "log.csv")})
    assert unnamed.status_code == 422 and "Say which logger" in unnamed.get_json()["detail"]


# ------------------------------------------------------------------ serials as vendors print them


def test_a_serial_with_spaces_is_entered_as_typed_and_matched_to_a_file_that_writes_it_otherwise(
        app, client, session, world, clock):
    """EnvLogger prints '0434 EF00 4B29 0A' on the logger; its files write it with hyphens
    or underscores. The shipment keeps it as typed, and both files are taken as its own."""
    case = make_case(app, session, world, clock)
    login(client, "staff")
    coi = coi_of(case).text
    token = CSRF.search(client.get(f"/cases/{coi}").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    answer = client.post(f"/cases/{coi}/shipments", data={
        "csrf_token": token, "leg": "outbound", "loggers": "  0434 EF00  4B29 0A , LOG-2",
        "zone": BERLIN}, follow_redirects=True)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    shipment = session.exec(select(Shipment)).one()
    serials = session.exec(select(ShipmentLogger.serial).order_by(col(ShipmentLogger.id))).all()
    assert serials == ["0434 EF00  4B29 0A", "LOG-2"]  # trimmed; the inner spaces as typed
    clock.advance(hours=1)
    hyphens = store(session, world, clock, shipment, headed("0434-EF00-4B29-0A", shipment.opened_at))
    underscores = store(session, world, clock, shipment,
                        headed("0434_ef00_4b29_0a", shipment.opened_at + timedelta(minutes=30)),
                        name="0434_EF00_4B29_0A.csv")
    assert hyphens.file.logger_serial == underscores.file.logger_serial == "0434 EF00  4B29 0A"
    assert set(session.exec(select(LoggerReading.logger)).all()) == {"0434 EF00  4B29 0A"}
    # Named by the uploader with hyphens, it is the same logger too.
    named = store(session, world, clock, shipment,
                  csv_file([5.0], start=shipment.opened_at + timedelta(minutes=50)),
                  name="third.csv", logger_serial="0434-EF00-4B29-0A")
    assert named.file.logger_serial == "0434 EF00  4B29 0A"


def test_a_serial_typed_twice_in_other_spellings_is_refused_as_named_twice(app, session, world, clock):
    with pytest.raises(InvalidInput, match="named twice"):
        shipment_with(app, session, world, clock, "0434 EF00 4B29 0A", "0434_ef00_4b29_0a")
    session.rollback()
    assert count(session, Shipment) == 0

