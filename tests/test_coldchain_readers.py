"""The logger-file readers on small inline files: one test per rule (delimiters, units, zones,
day/month order, mappings, encodings, refusals, JSON and EPCIS), and a memory bound on a
generated stream."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from coldchain import read
from coldchain.model import ColumnMapping, Reading, ReadOptions, Source, Unreadable
from coldchain.readers import read_json_readings
from coldchain.readers.common import UTC_KEYS, Localiser

ZURICH = ZoneInfo("Europe/Zurich")


def source_of(data: bytes, **options: Any) -> Source:
    return read(io.BytesIO(data), name="test.csv", options=ReadOptions(**options))


def read_all(data: bytes, **options: Any) -> tuple[Source, list[Reading]]:
    source = source_of(data, **options)
    return source, list(source.readings)


def refusal(data: bytes, **options: Any) -> str:
    with pytest.raises(Unreadable) as caught:
        read_all(data, **options)
    return str(caught.value)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# ------------------------------------------------------------------ delimiters, decimals, units

def test_comma_file_with_the_zone_in_the_header() -> None:
    source, readings = read_all(b'"Date Time, GMT+01:00","Temp, \xc2\xb0C"\n'
                                b"2026-11-22 09:00:00,5.1\n2026-11-22 09:15:00,5.3\n", logger_id="L1")
    assert [(r.at, r.celsius, r.logger_id, r.line) for r in readings] == [
        (utc(2026, 11, 22, 8, 0), 5.1, "L1", 2), (utc(2026, 11, 22, 8, 15), 5.3, "L1", 3)]
    assert (source.format, source.zone) == ("generic-csv", "UTC+01:00")
    assert source.interval == timedelta(minutes=15)
    assert source.meta["reading_count"] == "2"


def test_semicolons_with_a_decimal_comma() -> None:
    source, readings = read_all("Zeit;Temperatur (°C);Feuchte (%)\n22.11.2026 09:00;5,1;80,5\n"
                                "22.11.2026 09:05;-0,5;81,0\n".encode(), zone=UTC, logger_id="L1")
    assert [r.celsius for r in readings] == [5.1, -0.5]
    assert source.meta["decimal"] == "comma"


def test_tab_separated_with_an_offset_on_each_row() -> None:
    source, readings = read_all(b"time\ttemp (C)\n2026-11-22T09:00:00+01:00\t4.0\n"
                                b"2026-11-22T08:10:00Z\t4.5\n", logger_id="L1")
    assert [r.at for r in readings] == [utc(2026, 11, 22, 8, 0), utc(2026, 11, 22, 8, 10)]
    assert source.zone == "the UTC offset on each row"


@pytest.mark.parametrize("header", ["Temp, °F", "Temp F", "Temperature (degF)", "Temp [Fahrenheit]"])
def test_fahrenheit_is_converted(header: str) -> None:
    data = f'Time,"{header}"\n2026-11-22 09:00,41\n2026-11-22 09:10,32\n'.encode()
    source, readings = read_all(data, zone=UTC, logger_id="L1")
    assert [r.celsius for r in readings] == [5.0, 0.0]
    assert source.meta["unit"] == "F"


def test_an_unknown_unit_is_refused_unless_the_mapping_gives_it() -> None:
    data = b"Time,Temp\n2026-11-22 09:00,41\n"
    assert "°C or °F" in refusal(data, zone=UTC, logger_id="L1")
    _, readings = read_all(data, zone=UTC, logger_id="L1", mapping=ColumnMapping(time=0, value=1, unit="F"))
    assert readings[0].celsius == 5.0


def test_a_unit_column_gives_the_unit_of_each_row() -> None:
    source, readings = read_all(b"Date/Time,Unit,Value\n2026-11-22 09:00,C,5\n2026-11-22 10:00,F,41\n"
                           b"2026-11-22 11:00,K,5\n", zone=UTC, logger_id="L1",
                           mapping=ColumnMapping(time="Date/Time", value="Value"))
    assert [r.celsius for r in readings] == [5.0, 5.0]
    assert (source.problems[0].line, source.problems[0].column) == (4, "Unit")


def test_summary_lines_before_the_data_and_separate_date_and_time_columns() -> None:
    source, readings = read_all(b"Trip report\nSerial: ignored here\nMax: 8.1\n\nDate,Time,Humidity,"
                                b"Temperature (\xc2\xb0C)\n24/01/2020,13:37:22,37.9,20\n25/01/2020,01:37:22,"
                                b"36.9,20.5\n", zone=UTC, logger_id="L1")
    assert [(r.at, r.celsius, r.line) for r in readings] == [
        (utc(2020, 1, 24, 13, 37, 22), 20.0, 6), (utc(2020, 1, 25, 1, 37, 22), 20.5, 7)]
    assert source.interval == timedelta(hours=12)


def test_the_temperature_column_is_preferred_over_humidity_and_dew_point() -> None:
    _, readings = read_all('"#","Date Time","RH, %","Temp, °F","DewPt, °F"\n1,2026-11-22 09:00,50,41,30\n'
                           .encode(), zone=UTC, logger_id="L1")
    assert readings[0].celsius == 5.0


def test_several_temperature_columns_are_refused_naming_them() -> None:
    why = refusal(b"Time,Temp inside (C),Temp outside (C)\n2026-11-22 09:00,5,12\n", zone=UTC, logger_id="L1")
    assert "'Temp inside (C)'" in why and "'Temp outside (C)'" in why


def test_twelve_hour_clocks() -> None:
    _, readings = read_all(b"Time,Temp C\n11/22/26 12:00:00 AM,5\n11/22/26 12:30:00 PM,5\n"
                           b"11/22/26 1:05:00 PM,5\n", zone=UTC, logger_id="L1")
    assert [r.at for r in readings] == [utc(2026, 11, 22, 0, 0), utc(2026, 11, 22, 12, 30),
                                        utc(2026, 11, 22, 13, 5)]


# ------------------------------------------------------------------ time zones

def test_a_file_without_a_zone_is_refused_saying_so() -> None:
    why = refusal(b"Time,Temp C\n2026-11-22 09:00,5\n", logger_id="L1")
    assert "states no time zone" in why and "configure the logger's zone" in why


def test_a_configured_zone_converts_local_times_and_a_dst_gap_is_a_problem() -> None:
    source, readings = read_all(b"Time,Temp C\n2021-03-28 01:30,5\n2021-03-28 02:30,5.5\n"
                                b"2021-03-28 03:30,6\n", zone=ZURICH, logger_id="L1")
    assert [r.at for r in readings] == [utc(2021, 3, 28, 0, 30), utc(2021, 3, 28, 1, 30)]
    assert source.zone == "Europe/Zurich"
    [problem] = source.problems
    assert (problem.line, problem.column) == (3, "Time") and "does not exist" in problem.why


def test_a_time_that_happened_twice_is_a_problem() -> None:
    source, readings = read_all(b"Time,Temp C\n2021-10-31 01:30,5\n2021-10-31 02:30,5\n", zone=ZURICH,
                                logger_id="L1")
    assert len(readings) == 1
    assert "happened twice" in source.problems[0].why and source.meta["problem_count"] == "1"


def test_the_zone_the_file_states_wins_over_the_configured_one() -> None:
    source, readings = read_all(b'"Date Time, GMT+02:00","Temp, C"\n2026-06-01 12:00:00,5\n', zone=UTC,
                                logger_id="L1")
    assert readings[0].at == utc(2026, 6, 1, 10, 0)
    assert "UTC+02:00" in source.meta["zone_note"]


def test_a_time_zone_line_in_the_preamble_is_used() -> None:
    _, readings = read_all(b"Time zone: UTC-05:00\n\nTime,Temp (C)\n2026-01-10 07:00,5\n", logger_id="L1")
    assert readings[0].at == utc(2026, 1, 10, 12, 0)


# ------------------------------------------------------------------ day and month order

@pytest.mark.parametrize(("rows", "first"), [
    (b"13/01/2026 10:00,5\n14/01/2026 10:00,5\n", utc(2026, 1, 13, 10, 0)),  # a day over 12
    (b"01/13/2026 10:00,5\n01/14/2026 10:00,5\n", utc(2026, 1, 13, 10, 0)),
    (b"11/10/12 11:00 PM,5\n12/10/12 12:00 AM,5\n", utc(2012, 10, 11, 23, 0)),  # 11/10 -> 12/10 is a day
    (b"10/31/26 23:00,5\n11/01/26 00:00,5\n", utc(2026, 10, 31, 23, 0)),
    (b"21.04.08 23:45,5\n21.04.09 00:00,5\n", utc(2021, 4, 8, 23, 45)),  # year first, as HOBOware writes
])
def test_the_day_month_order_is_read_from_the_data(rows: bytes, first: datetime) -> None:
    _, readings = read_all(b"Time,Temp C\n" + rows, zone=UTC, logger_id="L1")
    assert readings[0].at == first
    assert readings[1].at - readings[0].at <= timedelta(days=1)


def test_dates_the_data_cannot_settle_are_refused_naming_the_readings() -> None:
    why = refusal(b"Time,Temp C\n05/06/2026 10:00,5\n05/06/2026 10:15,5\n", zone=UTC, logger_id="L1")
    assert "day first (05 Jun 2026)" in why and "month first (06 May 2026)" in why
    assert "'%d/%m/%Y %H:%M'" in why


def test_a_mapping_is_used_as_given() -> None:
    data = b"Time,Value\n05/06/2026 10:00,5\n05/06/2026 10:15,6\n"
    mapping = ColumnMapping(time="Time", value="Value", unit="C", time_format="%d/%m/%Y %H:%M")
    _, readings = read_all(data, zone=UTC, logger_id="L1", mapping=mapping)
    assert [(r.at, r.celsius) for r in readings] == [(utc(2026, 6, 5, 10, 0), 5.0),
                                                     (utc(2026, 6, 5, 10, 15), 6.0)]
    unknown = ColumnMapping(time="When", value="Value", unit="C")
    assert "not in the file's header" in refusal(data, zone=UTC, logger_id="L1", mapping=unknown)


def test_a_mapping_names_the_delimiter_and_the_first_data_line() -> None:
    data = b"Exported 2026-11-22 10:00|by app\n2026-11-22 09:00|5,5\n2026-11-22 09:30|6,0\n"
    _, readings = read_all(data, zone=UTC, logger_id="L1", mapping=ColumnMapping(
        time=0, value=1, unit="C", delimiter="|", decimal=",", first_data_line=2))
    assert [r.celsius for r in readings] == [5.5, 6.0]


# ------------------------------------------------------------------ rows that are not readings

def test_a_bad_number_is_a_problem_with_its_line_and_column() -> None:
    source, readings = read_all("Time,Temp (°C)\n2026-11-22 09:00,5\n2026-11-22 09:05,abc\n"
                                "2026-11-22 09:10,6\n2026-11-22 09:15,1e3\n".encode(), zone=UTC,
                                logger_id="L1")
    assert [r.celsius for r in readings] == [5.0, 6.0]
    assert [(p.line, p.column) for p in source.problems] == [(3, "Temp (°C)"), (5, "Temp (°C)")]
    assert "'abc' is not a temperature" in source.problems[0].why


def test_a_bad_time_is_a_problem() -> None:
    source, readings = read_all(b"Time,Temp C\n2026-11-22 09:00,5\n2026-11-22 25:00,5\n", zone=UTC,
                                logger_id="L1")
    assert len(readings) == 1
    assert (source.problems[0].line, source.problems[0].column) == (3, "Time")


def test_event_rows_and_blank_values_are_skipped_with_the_reason() -> None:
    source, readings = read_all(b"Date Time;Temp (C);Host Connected\n13.04.2021 21:00:00;18.7;Logged\n"
                                b"13.04.2021 21:07:34;;Logged\n13.04.2021 21:15:00;;\n;;\n", zone=UTC,
                                logger_id="L1")
    assert [r.celsius for r in readings] == [18.7]
    assert [(s.line, s.why) for s in source.skipped] == [
        (3, "no temperature on this row (event Host Connected: Logged)"), (4, "no temperature on this row")]


def test_the_skipped_list_is_bounded_and_counted() -> None:
    rows = b"".join(b"2026-11-22 %02d:%02d,\n" % divmod(minute, 60) for minute in range(150))
    source, readings = read_all(b"Time,Temp C\n2026-11-21 23:59,5\n" + rows, zone=UTC, logger_id="L1")
    assert len(readings) == 1
    assert len(source.skipped) == 100 and source.meta["skipped_count"] == "150"


def test_a_header_without_readings_yields_none() -> None:
    source, readings = read_all(b"Date Time;Temp (\xc2\xb0C);End Of File\n19.03.2025 15:20:57;;Logged\n",
                                zone=UTC, logger_id="L1")
    assert readings == []
    assert "no readings" in source.meta["no_readings"] and source.meta["reading_count"] == "0"


def test_a_file_naming_no_logger_needs_one() -> None:
    assert "names no logger" in refusal(b"Time,Temp C\n2026-11-22 09:00,5\n", zone=UTC)


# ------------------------------------------------------------------ encodings and refusals

def test_a_latin1_degree_sign_is_accepted() -> None:
    source, _ = read_all(b"Time,Temp \xb0C\n2026-11-22 09:00,5\n", zone=UTC, logger_id="L1")
    assert source.meta["unit"] == "C"


def test_the_wrong_encoding_is_refused_naming_byte_and_line() -> None:
    # 0xA5: '¥' in Windows-1252, 'Ą' in Windows-1250 (a sign or a letter: the file does not say).
    why = refusal(b"Time,Temp C,Site\n2026-11-22 09:00,5,Gen\xe8ve \xa5\n", zone=UTC, logger_id="L1")
    assert why.startswith("line 2: byte 0xA5 is not UTF-8") and "save the export as UTF-8" in why


def test_a_wrong_byte_after_the_head_is_refused_while_reading() -> None:
    rows = b"".join(b"2026-11-%02d %02d:%02d,5\n" % (1 + i // 1440, i // 60 % 24, i % 60)
                    for i in range(10_000))
    source = source_of(b"Time,Temp C\n" + rows + b"2026-11-29 00:00,5 \x80\n", zone=UTC, logger_id="L1")
    with pytest.raises(Unreadable, match=r"line 10002: byte 0x80 is not UTF-8"):
        list(source.readings)


def test_utf16_with_a_byte_order_mark_is_decoded() -> None:
    data = "Time,Temp °C\r\n2026-11-22 09:00,5\r\n".encode("utf-16")
    _, readings = read_all(data, zone=UTC, logger_id="L1")
    assert readings[0].celsius == 5.0


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xff\xfe\x00", "truncated data"),  # the byte-order mark, then half a character
    ("Time,Temp °C\r\n".encode("utf-16") + b"\x00\xd8\x41\x00", "illegal UTF-16 surrogate"),
])
def test_damaged_utf16_is_refused_not_a_crash(data: bytes, reason: str) -> None:
    why = refusal(data, zone=UTC, logger_id="L1")
    assert why == (f"the file starts as UTF-16 text but is not valid UTF-16 ({reason}): export it "
                   "again, saved as UTF-8")


@pytest.mark.parametrize(("data", "words"), [
    (b"\x0d\x07\x0c\x0b\x00\x00T301\x00GMT +08\x00biovoice", "binary file, not a text export"),
    (b"%PDF-1.3\r\n%\xae\xae\xae\xae", "PDF report, not a text export"),
    (b"PK\x03\x04\x14\x00", "Excel workbook"),
    (b"", "empty"),
    (b"\xef\xbb\xbf\r\n\r\n", "empty"),
])
def test_files_that_are_not_text_exports_are_refused(data: bytes, words: str) -> None:
    assert words in refusal(data, zone=UTC, logger_id="L1")


def test_a_lone_carriage_return_outside_quotes_is_refused_not_a_crash() -> None:
    # Python's csv module will not split such a line; splitting it by hand could shift a value.
    data = b'"Time","Temp \xc2\xb0C"\n"2026-11-22 09:00",5\r"2026-11-22 09:10",6\n'

    why = refusal(data, zone=UTC, logger_id="L1")

    assert why.startswith("a line holds a carriage return outside quotes, so its cells cannot be told apart")


def test_a_file_without_any_time_is_refused() -> None:
    assert "no row with a date and time" in refusal(b"a,b\n1,2\n", zone=UTC, logger_id="L1")


# ------------------------------------------------------------------ readings JSON

def test_readings_json_is_read_from_a_document_and_from_a_body() -> None:
    document = {"logger": "SN1", "readings": [{"at": "2026-11-22T09:00:00+01:00", "celsius": 5.1},
                                              {"at": "2026-11-22T08:10:00Z", "fahrenheit": 41}]}
    source = read_json_readings(document, options=ReadOptions())
    assert [(r.at, r.celsius, r.logger_id, r.line) for r in source.readings] == [
        (utc(2026, 11, 22, 8, 0), 5.1, "SN1", 1), (utc(2026, 11, 22, 8, 10), 5.0, "SN1", 2)]
    assert (source.format, source.zone, source.interval) == ("readings-json", "UTC, UTC+01:00",
                                                             timedelta(minutes=10))
    assert len(list(source_of(json.dumps(document).encode()).readings)) == 2


def test_readings_json_without_offsets_is_refused_listing_the_entries() -> None:
    document = {"logger": "SN1", "readings": [{"at": "2026-11-22T09:00:00+01:00", "celsius": 5.1},
                                              {"at": "2026-11-22T09:10:00", "celsius": 5.2},
                                              {"at": "2026-11-22T09:20:00", "celsius": True}]}
    with pytest.raises(Unreadable) as caught:
        read_json_readings(document, options=ReadOptions())
    assert [(p.line, p.column) for p in caught.value.problems] == [(2, "at"), (3, "at")]
    assert "has no UTC offset" in caught.value.problems[0].why


def test_readings_json_needs_a_logger() -> None:
    with pytest.raises(Unreadable, match="names no logger"):
        read_json_readings({"readings": []}, options=ReadOptions())


# ------------------------------------------------------------------ EPCIS

EPCIS_JSON = {
    "type": "EPCISDocument", "epcisBody": {"eventList": [{
        "type": "ObjectEvent", "eventTime": "2026-11-22T10:00:00+01:00",
        "sensorElementList": [
            {"sensorMetadata": {"deviceID": "urn:epc:id:giai:1.1"}, "sensorReport": [
                {"type": "gs1:Temperature", "value": 41, "uom": "FAH", "time": "2026-11-22T09:00:00+01:00"},
                {"type": "Temperature", "value": 278.15, "uom": "KEL"},
                {"type": "Temperature", "minValue": 2, "maxValue": 8, "uom": "CEL"},
                {"type": "Temperature", "exception": "ERROR_CONDITION"},
                {"type": "AbsoluteHumidity", "value": 12, "uom": "A93"},
                {"type": "Temperature", "value": 5, "uom": "XYZ"}]}]}]}}


def test_epcis_json_temperatures_with_units_times_and_skips() -> None:
    source, readings = read_all(json.dumps(EPCIS_JSON).encode())
    assert source.format == "epcis-jsonld" and source.logger_id == "urn:epc:id:giai:1.1"
    assert [(r.at, round(r.celsius, 9), r.line) for r in readings] == [
        (utc(2026, 11, 22, 8, 0), 5.0, 1), (utc(2026, 11, 22, 9, 0), 5.0, 2)]
    assert [(s.line, s.column) for s in source.skipped] == [(3, None), (4, "exception")]
    assert "aggregate" in source.skipped[0].why
    assert [(p.line, p.column) for p in source.problems] == [(6, "uom")]


def test_epcis_xml_with_a_doctype_is_refused() -> None:
    data = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">]>\n'
            b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2"><EPCISBody/>'
            b"</epcis:EPCISDocument>")
    assert "DOCTYPE" in refusal(data, logger_id="L1")


def test_epcis_xml_reading() -> None:
    data = (b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2">'
            b"<EPCISBody><EventList><ObjectEvent>"
            b"<eventTime>2026-11-22T09:00:00-05:00</eventTime><sensorElementList><sensorElement>"
            b'<sensorMetadata deviceID="urn:epc:id:giai:1.2"/>'
            b'<sensorReport type="gs1:Temperature" value="4.5" uom="CEL"/>'
            b"</sensorElement></sensorElementList></ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>")
    source, readings = read_all(data)
    assert (source.format, source.zone) == ("epcis-xml", "UTC-05:00")
    assert [(r.at, r.celsius, r.logger_id) for r in readings] == [(utc(2026, 11, 22, 14, 0), 4.5,
                                                                   "urn:epc:id:giai:1.2")]


# ------------------------------------------------------------------ streaming

class GeneratedStream(io.RawIOBase):
    """A read-only stream fed by a generator of byte blocks; counts the bytes handed out."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.pending = memoryview(b"")
        self.handed_out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            block = next(self.blocks, None)
            if block is None:
                return 0
            self.pending = memoryview(block)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        self.handed_out += size
        return size


def _days(count: int) -> Iterator[bytes]:
    """A header, then `count` days of readings a minute apart (1,440 lines a day)."""
    day = b"".join(b"DATE %02d:%02d:00,%d.%d\n" % (m // 60, m % 60, m % 9, m % 10) for m in range(1440))
    yield b'"Date Time, GMT+01:00","Temp, \xc2\xb0C"\n'
    for number in range(count):
        yield day.replace(b"DATE", f"{date(2026, 1, 1) + timedelta(days=number):%Y-%m-%d}".encode())


WINDOW = 25_000


def test_readings_are_streamed_in_memory_that_does_not_grow_with_the_file() -> None:
    lines = 139 * 1440  # 200,160 readings
    size = sum(len(block) for block in _days(139))
    stream = GeneratedStream(_days(139))
    source = read(io.BufferedReader(stream), options=ReadOptions(logger_id="L1"))
    assert stream.handed_out <= 256 * 1024  # read() looked at the head only
    readings = iter(source.readings)
    assert sum(1 for _ in islice(readings, lines - WINDOW)) == lines - WINDOW
    assert stream.handed_out < size * 0.9  # the rest of the file is still unread
    # Tracing every allocation is slow, so only the last rows are traced: keeping their readings
    # (or their lines) would take MBs; a streaming reader holds one 64 KB block of lines at a time.
    sample = next(iter(read(io.BytesIO(b'"Date Time, GMT+01:00","Temp, C"\n2026-01-01 00:00:00,5\n'),
                            options=ReadOptions(logger_id="L1")).readings))
    held = WINDOW * (sys.getsizeof(sample) + sys.getsizeof(sample.at) + sys.getsizeof(sample.celsius))
    tracemalloc.start()
    try:
        assert sum(1 for _ in readings) == WINDOW
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held > 3_000_000
    assert peak < 1_500_000, f"peak {peak:,} bytes while reading {WINDOW:,} rows"
    assert source.meta["reading_count"] == str(lines)


@pytest.mark.parametrize("key", sorted(UTC_KEYS))
def test_every_name_of_utc_reads_local_times_as_utc(key):
    """A logger configured as "Etc/UTC" (or any other name of UTC) takes the fast path;
    its times must still come out exactly as the zone database places them."""
    localise = Localiser(ZoneInfo(key))
    for local in (datetime(2026, 3, 29, 2, 30), datetime(2026, 10, 25, 2, 30), datetime(2026, 1, 1)):  # noqa: DTZ001
        assert localise(local) == local.replace(tzinfo=ZoneInfo(key)).astimezone(UTC)
        assert localise(local).tzinfo is UTC
