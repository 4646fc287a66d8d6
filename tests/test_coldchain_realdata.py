"""The readers on every real logger export and EPCIS example in ../shared/realdata (never copied
into the repo: their licences differ). Each expected value was found by reading the file with
other tools (awk, grep, wc, a calculator), as the comment beside it says; line numbers are the
file's own (awk NR). Times in the expectations are UTC. Files that state no zone are read with
a configured one (UTC unless said otherwise) and are also checked to be refused without it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from coldchain import read
from coldchain.model import ReadOptions, Source, Unreadable

ZURICH = ZoneInfo("Europe/Zurich")


def f_to_c(fahrenheit: float) -> float:
    return (fahrenheit - 32) * 5 / 9


@dataclass(frozen=True)
class Expected:
    path: str
    format: str
    count: int
    first: tuple[datetime, float, int]  # UTC time, °C, line
    last: tuple[datetime, float, int]
    low: float
    high: float
    logger: str
    options: ReadOptions = ReadOptions()
    refused_without: str | None = None  # what reading it without the options is refused for
    skipped: int = 0


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


FILES = [
    # awk -F';' 'NR>1 && $2!=""': 49 rows with a temperature; the other 3 of the 52 data rows hold
    # only 'Logged' events. First is line 2 '08.04.2021 21:00:00;18.771', last line 50
    # '09.04.2021 09:00:00;7.970'; min/max of $2 by awk. No zone in the file: read in UTC.
    Expected("loggers/hobo-myClim/20024354.txt", "hobo-csv", 49, (at(2021, 4, 8, 21), 18.771, 2),
             (at(2021, 4, 9, 9), 7.970, 50), 7.469, 20.222, "20024354",
             ReadOptions(zone=UTC), "zone", skipped=3),
    # Same readings in °F with 'Date Time, GMT+00:00': awk count 49, first '04.08.21 21:00:00'
    # 65.788 F (month first: 04.08 -> 04.09 is a day), last line 50 46.346 F; min 45.444 F,
    # max 68.4 F by awk; converted with (f - 32) * 5 / 9, equal to the °C file.
    Expected("loggers/hobo-myClim/20024354_fahrenheit.csv", "hobo-csv", 49,
             (at(2021, 4, 8, 21), f_to_c(65.788), 2), (at(2021, 4, 9, 9), f_to_c(46.346), 50),
             f_to_c(45.444), f_to_c(68.4), "20024354", skipped=3),
    # 'Date Time, GMT+02:00', year first: awk count 48 (the 09:00 GMT reading is not in this
    # export); line 3 '21.04.08 23:00:00' 18.771 is 21:00 UTC, line 50 '21.04.09 10:45:00' 8.668.
    Expected("loggers/hobo-myClim/20024354_semicolon.txt", "hobo-csv", 48, (at(2021, 4, 8, 21), 18.771, 3),
             (at(2021, 4, 9, 8, 45), 8.668, 50), 7.469, 20.222, "20024354", skipped=3),
    # Decimal comma: awk with gsub(",", ".") on $2: 101 readings, line 2 '09.10.2023 05:00:00;7,870',
    # line 102 '11.10.2023 07:00:00;12,896'; min 7.87, max 16.82. 2 event-only rows at the end.
    Expected("loggers/hobo-myClim/20024370.txt", "hobo-csv", 101, (at(2023, 10, 9, 5), 7.870, 2),
             (at(2023, 10, 11, 7), 12.896, 102), 7.87, 16.82, "20024370",
             ReadOptions(zone=UTC), "zone", skipped=2),
    # U12, 'Time, GMT+01:00', 0xB0 degree byte, no logger serial in the file: awk -F',' 'NR>2 &&
    # $3!=""' counts 2998; line 3 '10/02/13 06:00:00 AM' 19.865 (month first: the 30-min rows run
    # from 10/02 to 12/03, a 62-day mission), line 3000 '12/03/13 04:30:00 PM' 20.936;
    # min 14.098, max 23.304; 3 event rows at the end.
    Expected("loggers/hobo-hoboreader/sample_hobo_u12_data.csv", "hobo-csv", 2998,
             (at(2013, 10, 2, 5), 19.865, 3), (at(2013, 12, 3, 15, 30), 20.936, 3000), 14.098, 23.304,
             "U12-FROM-CALLER", ReadOptions(logger_id="U12-FROM-CALLER"), "logger", skipped=3),
    # Pendant in °F, GMT+01:00: awk count 1993 (6 rows with a blank temperature hold events);
    # line 3 '10/10/19 11:00:00 AM' 72.199 F, line 1998 '10/17/19 09:00:00 AM' 70.824 F;
    # min 62.769 F, max 73.407 F by awk.
    Expected("loggers/hobo-hoboreader/sample_hobo_pendant_data.csv", "hobo-csv", 1993,
             (at(2019, 10, 10, 10), f_to_c(72.199), 3), (at(2019, 10, 17, 8), f_to_c(70.824), 1998),
             f_to_c(62.769), f_to_c(73.407), "10469238", skipped=6),
    # iButton: awk -F',' 'NR>15' counts 1577 rows, all unit C, as 'Number of Mission Samples:
    # 1577' says; line 16 '11/10/12 12:11:00 PM,C,22.5' is 11 Oct 2012 (Mission Start 'Thu Oct 11
    # 12:11:00 CST 2012'), line 1592 '16/12/12 4:11:00 AM,C,24'; min 16, max 24.5 by awk.
    Expected("loggers/ibutton-ibuttonr/10a.csv", "ibutton-onewireviewer", 1577,
             (at(2012, 10, 11, 12, 11), 22.5, 16), (at(2012, 12, 16, 4, 11), 24.0, 1592), 16.0, 24.5,
             "590000002E1BCC21", ReadOptions(zone=UTC), "CST"),
    # EnvLogger, 'time zone, UTC+0000': awk 'NR>23' counts 397 rows (the preamble's 'samples, 1441'
    # is the logger's count, not the file's); line 24 '2023-11-17 12:00:03,17.5', line 420
    # '2023-12-04 00:00:03,13.7'; min 11.6, max 18.6.
    Expected("loggers/envlogger/issuemh04a_0434_EF00_4B29_0A-20240116_132500.csv", "envlogger", 397,
             (at(2023, 11, 17, 12, 0, 3), 17.5, 24), (at(2023, 12, 4, 0, 0, 3), 13.7, 420), 11.6, 18.6,
             "0434 EF00 4B29 0A"),
    # Tinytag: awk -F',' 'NR>5' counts 10 rows; line 6 '1,2021-09-01 08:58:00,20.2,47.6', line 15
    # '10,2021-09-01 13:28:00,20.2,47.2'; min 19.9, max 20.2; S/N row '000000' (anonymised).
    Expected("loggers/tinytag-dataloggergraphs/TinyTag_2.csv", "tinytag-explorer", 10,
             (at(2021, 9, 1, 8, 58), 20.2, 6), (at(2021, 9, 1, 13, 28), 20.2, 15), 19.9, 20.2, "000000",
             ReadOptions(zone=UTC), "zone"),
    # Rotronic: awk -F',' 'NR>23' counts 10 rows; line 24 '24/01/2020,13:37:22,37.9,20', line 33
    # '29/01/2020,01:37:22,37.7,20.3'; Temperature is $4: min 20, max 20.6; 'Serial Number = A00000000'.
    Expected("loggers/rotronic-dataloggergraphs/Rotronic_1.csv", "rotronic", 10,
             (at(2020, 1, 24, 13, 37, 22), 20.0, 24), (at(2020, 1, 29, 1, 37, 22), 20.3, 33), 20.0, 20.6,
             "A00000000", ReadOptions(zone=UTC), "zone"),
    # Fridge-tag 2 L, times local in Zurich (CEST, UTC+2): awk over the 'Data:' section (TAB rows
    # up to 'Cert:') counts 10653 readings after the 'yyyy-MM-dd hh:mm' header; line 532
    # '2022-05-02 04:44 26.3', line 11184 '2022-06-08 10:11 5.7'; min -8.4, max 30.2 (the daily
    # history's +30.3 peak fell between two 5-minute readings).
    Expected("loggers/berlinger-msupply/130500109088_202206081014.txt", "berlinger-fridgetag", 10653,
             (at(2022, 5, 2, 2, 44), 26.3, 532), (at(2022, 6, 8, 8, 11), 5.7, 11184), -8.4, 30.2,
             "130500109088", ReadOptions(zone=ZURICH), "zone"),
    # Fridge-tag UL: same awk: 841 data rows, 6 of them '--.-' (lines 99-101 and 937-939), so 835
    # readings; line 102 '2023-04-17 16:21 -9.6', line 936 '2023-04-20 13:51 -16.6'; min -17.0, max -9.6.
    Expected("loggers/berlinger-msupply/100800001215_202304201410.txt", "berlinger-fridgetag", 835,
             (at(2023, 4, 17, 14, 21), -9.6, 102), (at(2023, 4, 20, 11, 51), -16.6, 936), -17.0, -9.6,
             "100800001215", ReadOptions(zone=ZURICH), "zone", skipped=6),
    # Q-tag CLm doc LR: awk counts 424 Data rows; line 68 '2023-04-17 15:23 12.7 x', line 491
    # '2023-04-20 13:53 10.6 x'; min 9.7, max 12.7, as the report's own 'Res: Min T: 9.7, Max T: 12.7'.
    Expected("loggers/berlinger-msupply/RCPJ00010_03_202304201359.txt", "berlinger-qtag", 424,
             (at(2023, 4, 17, 13, 23), 12.7, 68), (at(2023, 4, 20, 11, 53), 10.6, 491), 9.7, 12.7,
             "RCPJ00010", ReadOptions(zone=ZURICH), "zone"),
    # EPCIS JSON-LD, example 1: grep finds 3 'Temperature' reports (CEL), at sensorMetadata times
    # 14:05, 14:35, 14:55 +01:00, values 26.0, 26.1, 26.2; they are sensorReports 1, 5 and 9 of 12.
    Expected("epcis/gs1-EPCIS/SensorDataExample1.jsonld", "epcis-jsonld", 3, (at(2019, 4, 2, 13, 5), 26.0, 1),
             (at(2019, 4, 2, 13, 55), 26.2, 9), 26.0, 26.2, "urn:epc:id:giai:4000001.111"),
    # Example 5: 6 'Temperature' reports each with its own time, 14:05 to 14:55 +01:00, 26.0 to 26.5.
    Expected("epcis/gs1-EPCIS/SensorDataExample5.jsonld", "epcis-jsonld", 6, (at(2019, 4, 2, 13, 5), 26.0, 1),
             (at(2019, 4, 2, 13, 55), 26.5, 6), 26.0, 26.5, "urn:epc:id:giai:4000001.111"),
    # Example 13: 2 'Temperature' reports with no time and no deviceID: the event's eventTime
    # 2021-04-27T15:00:00+01:00, values 20.9 (ambiance) and 20.7 (outer package).
    Expected("epcis/gs1-EPCIS/SensorDataExample13.jsonld", "epcis-jsonld", 2,
             (at(2021, 4, 27, 14), 20.9, 1), (at(2021, 4, 27, 14), 20.7, 2), 20.7, 20.9, "SHIPPER-7",
             ReadOptions(logger_id="SHIPPER-7"), "logger"),
    # XML: grep -o '<sensorReport [^>]*>' | nl: gs1:Temperature with value= at positions 1, 5, 9
    # (case 1), 19 (case 4), 23-28 (case 5) and 31 (case 7, 2019-07-19T14:00+01:00): 11 readings,
    # 26.0 to 26.5. Skipped: aggregates at 13, 17, 29, 40, 50, a value-less report at 42, and the
    # two exceptions at 44 and 45.
    Expected("epcis/gs1-EPCIS/SensorDataExamples.xml", "epcis-xml", 11, (at(2019, 4, 2, 13, 5), 26.0, 1),
             (at(2019, 7, 19, 13), 26.0, 31), 26.0, 26.5, "urn:epc:id:giai:4000001.111", skipped=8),
]


def _read(root: Path, path: str, options: ReadOptions | None = None) -> Source:
    with (root / path).open("rb") as stream:
        source = read(stream, name=Path(path).name, options=options or ReadOptions())
        source.readings = iter(list(source.readings))
    return source


@pytest.mark.parametrize("expected", FILES, ids=lambda expected: Path(expected.path).name)
def test_real_file(realdata: Path, expected: Expected) -> None:
    source = _read(realdata, expected.path, expected.options)
    readings = list(source.readings)
    assert source.format == expected.format
    assert len(readings) == expected.count == int(source.meta["reading_count"])
    first, last = readings[0], readings[-1]
    assert (first.at, first.line) == (expected.first[0], expected.first[2])
    assert first.celsius == pytest.approx(expected.first[1])
    assert (last.at, last.line) == (expected.last[0], expected.last[2])
    assert last.celsius == pytest.approx(expected.last[1])
    assert min(r.celsius for r in readings) == pytest.approx(expected.low)
    assert max(r.celsius for r in readings) == pytest.approx(expected.high)
    assert {r.logger_id for r in readings} == {expected.logger} == {source.logger_id}
    assert all(r.at.utcoffset() == timedelta(0) for r in readings)
    assert int(source.meta["skipped_count"]) == expected.skipped
    assert source.problems == []
    if expected.refused_without:
        with pytest.raises(Unreadable, match=expected.refused_without):
            _read(realdata, expected.path)


def test_every_real_file_is_checked(realdata: Path) -> None:
    checked = {expected.path for expected in FILES} | set(SPECIAL)
    present = {str(path.relative_to(realdata)) for folder in ("loggers", "epcis")
               for path in (realdata / folder).rglob("*") if path.is_file() and path.name != "README.md"}
    assert present == checked


SPECIAL = {
    "loggers/hobo-myClim/20847126_empty.txt",
    "loggers/berlinger-msupply/130400191544_202304201514.txt",
    "loggers/berlinger-msupply/130400191544_202304201514.pdf",
    "loggers/biovoice-bvfile/2622930045_202006091730.bv",
    "epcis/gs1-EPCIS/SensorDataExample2.jsonld",
    "epcis/gs1-EPCIS/SensorDataExample9.jsonld",
}


def test_units_and_zones_as_the_files_state_them(realdata: Path) -> None:
    fahrenheit = _read(realdata, "loggers/hobo-myClim/20024354_fahrenheit.csv")
    assert (fahrenheit.meta["unit"], fahrenheit.zone) == ("F", "UTC")  # header 'Temp, °F', 'GMT+00:00'
    # 'GMT+02:00' agrees with Zurich in April (CEST) and wins over a zone that disagrees.
    assert "zone_note" not in _read(realdata, "loggers/hobo-myClim/20024354_semicolon.txt",
                                    ReadOptions(zone=ZURICH)).meta
    semicolon = _read(realdata, "loggers/hobo-myClim/20024354_semicolon.txt",
                      ReadOptions(zone=ZoneInfo("America/New_York")))
    assert semicolon.zone == "UTC+02:00" and "America/New_York was not used" in semicolon.meta["zone_note"]
    comma = _read(realdata, "loggers/hobo-myClim/20024370.txt", ReadOptions(zone=UTC))
    assert comma.meta["decimal"] == "comma"  # '7,870;100,000'

    assert _read(realdata, "loggers/hobo-hoboreader/sample_hobo_u12_data.csv",
                 ReadOptions(logger_id="U12")).meta["plot_title"] == "01_10_13"


def test_ibutton_cst_is_not_trusted(realdata: Path) -> None:
    source = _read(realdata, "loggers/ibutton-ibuttonr/10a.csv", ReadOptions(zone=UTC))
    assert "'CST'" in source.meta["zone_note"]
    assert source.interval == timedelta(minutes=60)  # 'Sample Rate:  Every 60 minute(s)'
    assert source.meta["unit"] == "per row"  # the 'Unit' column


def test_envlogger_clock_offset_is_reported_not_applied(realdata: Path) -> None:
    # 'time diff [logger-smartphone](sec), -3590': the logger was 3590 s behind the phone.
    source = _read(realdata, "loggers/envlogger/issuemh04a_0434_EF00_4B29_0A-20240116_132500.csv")
    assert source.clock_offset == timedelta(seconds=-3590)
    assert "-3590 s" in source.meta["clock_note"]
    assert next(source.readings).at == at(2023, 11, 17, 12, 0, 3)  # as written in the file
    assert source.interval == timedelta(hours=1)


def test_stated_intervals(realdata: Path) -> None:
    rotronic = _read(realdata, "loggers/rotronic-dataloggergraphs/Rotronic_1.csv", ReadOptions(zone=UTC))
    assert rotronic.interval == timedelta(minutes=30)  # 'Log Interval = 00:30:00' ...
    assert "12:00:00 apart" in rotronic.meta["interval_note"]  # ... though the rows are 12 h apart
    qtag = _read(realdata, "loggers/berlinger-msupply/RCPJ00010_03_202304201359.txt",
                 ReadOptions(zone=ZURICH))
    assert qtag.interval == timedelta(minutes=10)  # 'Logging Interval: 10'
    assert (qtag.meta["mkt"], qtag.meta["serial"]) == ("10.4", "RCPJ00010")  # 'Res: ... MKT: 10.4'


def test_hobo_export_with_a_header_and_no_readings(realdata: Path) -> None:
    # Two lines: the header and '19.03.2025 15:20:57;;;Logged' (End Of File event, no temperature).
    source = _read(realdata, "loggers/hobo-myClim/20847126_empty.txt", ReadOptions(zone=UTC))
    assert list(source.readings) == []
    assert source.logger_id == "20847126" and "no readings" in source.meta["no_readings"]
    assert [(s.line, "End Of File" in s.why) for s in source.skipped] == [(2, True)]


def test_fridge_tag_2_holds_daily_summaries_only(realdata: Path) -> None:
    # No 'Data:' section (grep -c '^Data:' is 0); 'Hist:' has 4 days, the highest 'Max T: +20.8,
    # TS Max T: 19:41' on 2023-04-17. No readings are made up from the summaries: they are
    # days, each with its extremes and the minutes each alarm accumulated ('t Acc'; alarm 0 is
    # the low limit -0.5, alarm 1 the high one +8.0).
    source = _read(realdata, "loggers/berlinger-msupply/130400191544_202304201514.txt")
    assert list(source.readings) == []
    assert source.format == "berlinger-fridgetag" and source.logger_id == "130400191544"
    assert "daily summaries only" in source.meta["content"]
    assert [(d.day.isoformat(), d.min_c, d.max_c, d.minutes_above, d.minutes_below, d.line)
            for d in source.days or []] == [
        ("2023-04-17", 2.3, 20.8, 8.0, 0.0, 82), ("2023-04-18", 1.9, 8.5, 2.0, 0.0, 67),
        ("2023-04-19", 1.5, 7.1, 0.0, 0.0, 52), ("2023-04-20", 2.0, 8.0, 0.0, 0.0, 35)]
    assert {(d.low_limit, d.high_limit) for d in source.days or []} == {(-0.5, 8.0)}
    assert source.meta["history_days"] == "4"
    assert source.meta["history_max"] == "+20.8 at 2023-04-17 19:41 (local time)"
    assert source.meta["alarm_limits"] == "-0.5 for 60 min; +8.0 for 600 min"



def test_a_fridge_tag_history_missing_a_day_number_is_read_not_a_crash(realdata: Path) -> None:
    # The ' 1:' line over the first day's 'Date: 2023-04-20' lost (found by mutating the file):
    # that date now hangs under 'Hist:' itself; the three numbered days are still summarised.
    text = (realdata / "loggers/berlinger-msupply/130400191544_202304201514.txt").read_bytes()
    damaged = text.replace(b" 1:\r\n  Date: 2023-04-20", b"  Date: 2023-04-20", 1)
    assert damaged != text

    source = read(io.BytesIO(damaged))

    assert list(source.readings) == []
    assert source.meta["history_days"] == "3"
    assert source.meta["history_max"] == "+20.8 at 2023-04-17 19:41 (local time)"


@pytest.mark.parametrize(("path", "words"), [
    ("loggers/berlinger-msupply/130400191544_202304201514.pdf", "PDF report, not a text export"),
    ("loggers/biovoice-bvfile/2622930045_202006091730.bv", "binary file, not a text export"),
])
def test_files_that_are_not_text_exports_are_refused(realdata: Path, path: str, words: str) -> None:
    with pytest.raises(Unreadable, match=words):
        _read(realdata, path, ReadOptions(zone=UTC, logger_id="X"))


def test_epcis_aggregates_and_exceptions_are_skipped(realdata: Path) -> None:
    # Example 2: one Temperature report with minValue/maxValue/meanValue and no value.
    aggregate = _read(realdata, "epcis/gs1-EPCIS/SensorDataExample2.jsonld")
    assert list(aggregate.readings) == [] and aggregate.logger_id == "urn:epc:id:giai:4000001.111"
    assert [(s.line, "aggregate" in s.why) for s in aggregate.skipped] == [(1, True)]
    # Example 9: ERROR_CONDITION (Temperature) and ALARM_CONDITION (AbsoluteHumidity); no deviceID.
    with pytest.raises(Unreadable, match="names no logger"):
        _read(realdata, "epcis/gs1-EPCIS/SensorDataExample9.jsonld")
    exceptions = _read(realdata, "epcis/gs1-EPCIS/SensorDataExample9.jsonld", ReadOptions(logger_id="X"))
    assert list(exceptions.readings) == []
    assert [(s.line, s.column) for s in exceptions.skipped] == [(1, "exception"), (2, "exception")]
    assert "ERROR_CONDITION" in exceptions.skipped[0].why
