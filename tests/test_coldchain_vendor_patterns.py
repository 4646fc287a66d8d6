"""Patterns real vendor exports have that the readers once got wrong or refused without
saying why (issue 16), each on a small file written here: a comma as both delimiter and
decimal mark, a zone in the time column's header, day periods of 12-hour clocks in other
languages, units and legacy 8-bit encodings, and files that hold no readings."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from coldchain import read
from coldchain.cli import Refused, inspect_file
from coldchain.model import Reading, ReadOptions, Source, Unreadable

LONDON = ZoneInfo("Europe/London")


def read_all(data: bytes, **options: Any) -> tuple[Source, list[Reading]]:
    source = read(io.BytesIO(data), name="export.csv", options=ReadOptions(**options))
    return source, list(source.readings)


def refusal(data: bytes, **options: Any) -> str:
    with pytest.raises(Unreadable) as caught:
        read_all(data, **options)
    return str(caught.value)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# ------------------------------------------------------------------ cell counts and decimal commas

def test_decimal_commas_in_a_comma_separated_file_are_joined_back_when_every_row_agrees() -> None:
    data = (b"Time,Temp (C),RH (%)\n"
            b"2026-11-22 09:00,17,97,45,5\n"
            b"2026-11-22 09:10,-1,05,46,0\n"
            b"2026-11-22 09:20,4,50,47,25\n")
    source, readings = read_all(data, zone=UTC, logger_id="L1")
    assert [(r.at, r.celsius) for r in readings] == [
        (utc(2026, 11, 22, 9, 0), 17.97), (utc(2026, 11, 22, 9, 10), -1.05), (utc(2026, 11, 22, 9, 20), 4.5)]
    assert source.meta["decimal"] == "comma" and source.problems == []


def test_a_split_number_before_the_time_column_moves_the_time_column_with_it() -> None:
    data = b"Battery (V),Time,Temp (C)\n3,6,2026-11-22 09:00,5,25\n3,5,2026-11-22 09:10,6,75\n"
    _, readings = read_all(data, zone=UTC, logger_id="L1")
    assert [(r.at, r.celsius) for r in readings] == [(utc(2026, 11, 22, 9, 0), 5.25),
                                                     (utc(2026, 11, 22, 9, 10), 6.75)]


def test_decimal_commas_that_could_split_two_ways_are_refused_naming_the_line() -> None:
    # Under 'Time,Temp,RH' the row '09:00,17,97,45' is 17.97 | 45 or 17 | 97.45: no row tells.
    why = refusal(b"Time,Temp (C),RH (%)\n2026-11-22 09:00,17,97,45\n2026-11-22 09:10,18,02,46\n",
                  zone=UTC, logger_id="L1")
    assert why.startswith("line 2: the row has 4 cells for the header's 3 columns")
    assert "'2026-11-22 09:00 | 17,97 | 45'" in why and "'2026-11-22 09:00 | 17 | 97,45'" in why


def test_a_later_row_can_settle_which_cells_a_decimal_comma_split() -> None:
    # '17,97,45' alone could be 17.97 | 45 or 17 | 97.45; '18,5,-3' can only be 18.5 | -3.
    data = (b"Time,Temp (C),Offset (C)\n2026-11-22 09:00,17,97,45\n2026-11-22 09:10,18,5,-3\n")
    _, readings = read_all(data, zone=UTC, logger_id="L1")
    assert [r.celsius for r in readings] == [17.97, 18.5]


def test_rows_that_split_differently_are_refused_not_read_as_17() -> None:
    # '18' has no decimals, so that row has one cell fewer: which column it lost cannot be told.
    why = refusal(b"Time,Temp (C)\n2026-11-22 09:00,17,97\n2026-11-22 09:10,18\n", zone=UTC, logger_id="L1")
    assert why.startswith("line 3: the row has 2 cells where the rows above have 3")
    assert "delimiter" in why


def test_extra_cells_that_are_no_decimal_commas_are_refused_not_shifted() -> None:
    why = refusal(b"Time;Temp (C)\n2026-11-22 09:00;5;7\n", zone=UTC, logger_id="L1")
    assert why.startswith("line 2: the row has 3 cells but the header names 2 columns")


def test_a_long_row_after_the_first_64_kb_is_a_problem_of_its_own_line() -> None:
    rows = b"".join(b"2026-11-%02d %02d:%02d,5,5\n" % (1 + i // 1440, i // 60 % 24, i % 60)
                    for i in range(4000))  # about 88 KB: the last row is beyond the 64 KB looked at first
    source, readings = read_all(b"Time,Temp (C)\n" + rows + b"2026-11-29 00:00,5,5,1\n", zone=UTC,
                                logger_id="L1")
    assert len(readings) == 4000 and readings[0].celsius == 5.5
    [problem] = source.problems
    assert problem.line == 4002 and "does not split its decimal-comma numbers like the others" in problem.why


# ------------------------------------------------------------------ zones in headers

@pytest.mark.parametrize(("header", "where"), [
    (b"Date-Time (CEST);Temp (\xc2\xb0C)", "header 'Date-Time (CEST)'"),
    (b'"Time, GMT+02:00";Temp (\xc2\xb0C)', "header 'Time, GMT+02:00'"),
])
def test_a_zone_in_the_time_header_is_used_and_meta_says_where_it_came_from(header: bytes,
                                                                             where: str) -> None:
    source, readings = read_all(header + b"\n2026-06-22 09:00;5,1\n", logger_id="L1")
    assert readings[0].at == utc(2026, 6, 22, 7, 0)
    assert source.meta["zone_source"] == where and "zone_conflict" not in source.meta


def test_a_configured_zone_that_disagrees_with_the_header_is_noted_and_the_file_wins() -> None:
    source, readings = read_all(b"Date-Time (CEST);Temp (\xc2\xb0C)\n2026-06-22 09:00;5,1\n",
                                zone=LONDON, logger_id="L1")
    assert readings[0].at == utc(2026, 6, 22, 7, 0)
    conflict = source.meta["zone_conflict"]
    assert "UTC+02:00" in conflict and "Europe/London was UTC+01:00" in conflict and "CEST" in conflict


def test_a_configured_zone_that_agrees_is_no_conflict() -> None:
    source, _ = read_all(b"Time (BST),Temp (C)\n2026-06-22 09:00,5\n", zone=LONDON, logger_id="L1")
    assert source.meta["zone_source"] == "header 'Time (BST)'" and "zone_conflict" not in source.meta


def test_an_ambiguous_abbreviation_in_the_header_is_not_trusted() -> None:
    # CST is Chicago (-6), Havana (-5) and Shanghai (+8).
    why = refusal(b"Time (CST),Temp (C)\n2026-06-22 09:00,5\n", logger_id="L1")
    assert "'CST'" in why and "configure the logger's zone" in why
    source, readings = read_all(b"Time (CST),Temp (C)\n2026-06-22 09:00,5\n", zone=LONDON, logger_id="L1")
    assert readings[0].at == utc(2026, 6, 22, 8, 0) and source.meta["zone_source"] == "configured"


@pytest.mark.parametrize(("data", "where"), [
    (b"Time zone: EDT\nTime,Temp (C)\n2026-06-22 09:00,5\n", "preamble"),
    (b"Time,Temp (C)\n2026-06-22T09:00:00-04:00,5\n", "per-row offsets"),
])
def test_meta_says_where_other_stated_zones_came_from(data: bytes, where: str) -> None:
    source, readings = read_all(data, logger_id="L1")
    assert readings[0].at == utc(2026, 6, 22, 13, 0) and source.meta["zone_source"] == where


# ------------------------------------------------------------------ localized 12-hour clocks

@pytest.mark.parametrize("data", [
    "Datum;Teplota [°C]\n22.11.2026 9:05 dop.;5,1\n22.11.2026 3:05 odp.;5,2\n22.11.2026 12:30 odp.;5,3\n",
    "Datum;Zeit;Temperatur [°C]\n22.11.2026;9:05 vorm.;5,1\n22.11.2026;3:05 nachm.;5,2\n"
    "22.11.2026;12:30 nachm.;5,3\n",
    "Fecha;Temperatura (°C)\n22/11/2026 9:05 a. m.;5,1\n22/11/2026 3:05 p. m.;5,2\n"
    "22/11/2026 12:30 p. m.;5,3\n",
])
def test_day_periods_in_other_languages_give_24_hour_times(data: str) -> None:
    _, readings = read_all(data.encode(), zone=UTC, logger_id="L1")
    assert [r.at for r in readings] == [utc(2026, 11, 22, 9, 5), utc(2026, 11, 22, 15, 5),
                                        utc(2026, 11, 22, 12, 30)]


def test_a_day_period_that_means_am_in_one_language_and_pm_in_another_is_refused_by_name() -> None:
    why = refusal(b"Time,Temp (C)\n2026-11-22 9:05 a,5\n2026-11-22 9:15 a,5\n", zone=UTC, logger_id="L1")
    assert why.startswith("line 2: the day period 'a' in '2026-11-22 9:05 a'")
    assert "before noon in some languages and after noon in others" in why


def test_a_word_that_is_no_day_period_does_not_make_a_time() -> None:
    why = refusal(b"Time,Temp (C)\n2026-11-22 9:05 approx,5\n", zone=UTC, logger_id="L1")
    assert "no row with a date and time" in why


# ------------------------------------------------------------------ units and encodings

@pytest.mark.parametrize(("header", "celsius"), [
    ("Temp [oC]", 5.0), ("Temp deg C", 5.0), ("Temp °C", 5.0), ("Temp ºC", 5.0), ("Temp ℃", 5.0),
    ("Temp (C)", 5.0), ("Temp [°F]", -15.0), ("Temp ℉", -15.0),
])
def test_units_as_vendors_write_them(header: str, celsius: float) -> None:
    _, readings = read_all(f"Time;{header}\n2026-11-22 09:00;5\n".encode(), zone=UTC, logger_id="L1")
    assert readings[0].celsius == pytest.approx(celsius)


@pytest.mark.parametrize("header", ["Temp (°)", "Temperature of probe", "Temp oC/oF"])
def test_a_unit_that_could_be_c_or_f_is_refused_naming_the_column(header: str) -> None:
    why = refusal(f"Time;{header}\n2026-11-22 09:00;5\n".encode(), zone=UTC, logger_id="L1")
    assert f"'{header}'" in why and "°C" in why and "°F" in why


def test_a_windows_1252_export_is_decoded() -> None:
    data = ("Datum;Zeit;Temperatur [°C];Bemerkung\n22.11.2026;09:00;5,1;Kühlschrank geöffnet\n"
            "22.11.2026;09:10;-0,5;Tür zu\n").encode("cp1252")
    source, readings = read_all(data, zone=UTC, logger_id="L1")
    assert [r.celsius for r in readings] == [5.1, -0.5]
    assert source.meta["unit"] == "C" and source.meta["encoding"].startswith(("Windows-125", "Latin-1"))


def test_a_windows_1252_masculine_ordinal_is_a_degree_sign() -> None:
    source, readings = read_all("Fecha;Temperatura (ºC)\n22/11/2026 09:00;5,1\n".encode("cp1252"),
                                zone=UTC, logger_id="L1")
    assert readings[0].celsius == 5.1 and source.meta["unit"] == "C"


def test_a_legacy_file_whose_code_pages_differ_only_in_letters_is_read_with_a_note() -> None:
    # 0xE8 is 'è' in Windows-1252 and 'č' in Windows-1250: a letter of a word either way, so
    # nothing read from the file depends on it; the note says which were possible.
    source, readings = read_all("Time;Temp °C;Site\n2026-11-22 09:00;5;Genève\n".encode("cp1252"),
                                zone=UTC, logger_id="L1")
    assert [r.celsius for r in readings] == [5.0]
    note = source.meta["encoding_note"]
    assert "only letters of words would differ" in note and "'è'" in note and "'č'" in note


def test_a_legacy_byte_that_encodings_read_as_a_sign_or_a_letter_is_refused_naming_them() -> None:
    # 0xA5 is '¥' in Windows-1252 and 'Ą' in Windows-1250: a sign in one, a letter in the other.
    why = refusal("Time;Temp °C;Site\n2026-11-22 09:00;5;Genève ¥\n".encode("cp1252"), zone=UTC,
                  logger_id="L1")
    assert why.startswith("line 2: byte 0xA5 is not UTF-8")
    assert "'¥' in Windows-1252" in why and "'Ą' in Windows-1250" in why and "save the export as UTF-8" in why


# ------------------------------------------------------------------ files with no readings

def test_a_file_whose_every_row_fails_names_the_first_failure() -> None:
    source, readings = read_all(b"Time,Temp (C)\n2026-11-22 09:00,warm\n2026-11-22 09:10,hot\n",
                                zone=UTC, logger_id="L1")
    assert readings == []
    why = source.meta["no_readings"]
    assert why.startswith("the file holds no readings: every row failed to read (2)")
    assert "line 2, column Temp (C): 'warm' is not a temperature" in why


def test_a_file_whose_rows_hold_no_temperature_says_so() -> None:
    source, _ = read_all(b"Time;Temp (C);Event\n2026-11-22 09:00;;Logged\n", zone=UTC, logger_id="L1")
    assert source.meta["no_readings"].startswith("the file holds no readings: none of its 1 row(s) holds a "
                                                 "temperature")
    assert "event Event: Logged" in source.meta["no_readings"]


def test_inspect_refuses_a_file_whose_rows_all_fail_with_the_first_failure(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b"Time,Temp (C)\n2026-11-22 09:00,warm\n")
    with pytest.raises(Refused) as caught:
        inspect_file(path, zone=UTC, logger_id="L1")
    assert str(caught.value) == ("the file holds no readings: every row failed to read (1); the first: "
                                 "line 2, column Temp (C): 'warm' is not a temperature (a number like 5.1 "
                                 "was expected)")


def _epcis(*events: dict[str, Any]) -> bytes:
    return json.dumps({"type": "EPCISDocument", "epcisBody": {"eventList": list(events)}}).encode()


def _event(*reports: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ObjectEvent", "eventTime": "2026-11-22T10:00:00+01:00",
            "sensorElementList": [{"sensorMetadata": {"deviceID": "urn:epc:id:giai:1.1"},
                                   "sensorReport": list(reports)}]}


def test_an_epcis_document_without_temperature_reports_says_so() -> None:
    humidity = {"type": "AbsoluteHumidity", "value": 12, "uom": "A93"}
    source, readings = read_all(_epcis(_event(humidity), _event(humidity)), logger_id="L1")
    assert readings == []
    assert source.meta["no_readings"] == ("the document holds no readings: its 2 sensor report(s) are about "
                                          "other quantities than temperature")
    empty, _ = read_all(_epcis({"type": "ObjectEvent", "eventTime": "2026-11-22T10:00:00+01:00"}),
                        logger_id="L1")
    assert empty.meta["no_readings"] == "the document holds no readings: it has no sensor reports"


def test_epcis_problems_name_the_event_and_the_sensor_report() -> None:
    good = {"type": "Temperature", "value": 5, "uom": "CEL"}
    bad = {"type": "Temperature", "value": 5, "uom": "XYZ"}
    source, readings = read_all(_epcis(_event(good), _event(good, good), _event(good, bad)))
    assert len(readings) == 4 and source.meta["zone_source"] == "per-row offsets"
    [problem] = source.problems
    assert str(problem) == "event 3, sensor report 2, column uom: the unit 'XYZ' is not CEL, FAH or KEL"


def test_a_24_hour_clock_that_names_its_hours_is_no_day_period() -> None:
    # '09:00 h' and '14:30 Uhr' are 24-hour times with the word for o'clock, not 'a.m.'/'p.m.'.
    for text in ("Time;Temp °C\n22.11.2026 09:00 h;5\n22.11.2026 14:30 h;6\n",
                 "Zeit;Temp °C\n22.11.2026 09:00 Uhr;5\n22.11.2026 14:30 Uhr;6\n"):
        _source, readings = read_all(text.encode(), zone=UTC, logger_id="L1")
        assert [(r.at.hour, r.at.minute, r.celsius) for r in readings] == [(9, 0, 5.0), (14, 30, 6.0)]
