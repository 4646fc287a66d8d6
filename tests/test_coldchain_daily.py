"""Daily-summary reports in the cold-chain library: one row per day (the day's lowest and
highest temperature and its time in alarm) read into `Source.days`, judged day by day
against a profile, and listed by `python -m coldchain inspect`."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, timedelta
from pathlib import Path

import pytest

import coldchain
from coldchain import DaySummary, ReadOptions, Unreadable, judge_days, load_profiles, read
from coldchain.cli import JSON_KEYS, main

PROFILE = load_profiles()["2-8C"]  # 2-8 °C; 30 min per excursion, 60 min per shipment, 120 per case


def summary(text: str, *, logger: str | None = "DS-1") -> coldchain.Source:
    return read(io.BytesIO(text.encode()), name="days.csv", options=ReadOptions(logger_id=logger))


def refusal(text: str) -> str:
    with pytest.raises(Unreadable) as caught:
        summary(text)
    return str(caught.value)


HOT_DAY = """Logger serial: DS-1001
High limit: 8.0 °C
Low limit: 2.0 °C
Date,Min (°C),Max (°C),Time above (min),Time below (min)
2024-03-04,3.1,7.9,0,0
2024-03-05,8.4,12.4,1440,0
2024-03-06,2.5,7.6,0,0
Total,,,1440,0
"""


# ------------------------------------------------------------------ reading


def test_a_daily_summary_is_read_as_days_not_refused_as_holding_no_readings():
    source = summary(HOT_DAY)

    assert (source.format, source.logger_id, source.zone) == ("daily-summary", "DS-1001", None)
    assert list(source.readings) == []
    assert source.days == [
        DaySummary(date(2024, 3, 4), 3.1, 7.9, 0, 0, None, 5, low_limit=2.0, high_limit=8.0),
        DaySummary(date(2024, 3, 5), 8.4, 12.4, 1440, 0, None, 6, low_limit=2.0, high_limit=8.0),
        DaySummary(date(2024, 3, 6), 2.5, 7.6, 0, 0, None, 7, low_limit=2.0, high_limit=8.0),
    ]
    assert "daily summaries" in source.meta["content"]
    assert [(p.line, p.why) for p in source.skipped] == [(8, "not a day's row (no date)")]


def test_a_file_of_readings_has_no_days():
    source = read(io.BytesIO(b"Date Time,Temperature (\xc2\xb0C)\n2024-03-05 10:00:00,5.0\n"), name="r.csv",
                  options=ReadOptions(zone=UTC, logger_id="L"))

    assert source.days is None and source.format == "generic-csv"


def test_readings_with_a_min_and_max_column_per_reading_stay_readings():
    # Some loggers write min and max per logging interval: a time-of-day column says readings.
    data = "Date,Time,Temperature (°C),Min (°C),Max (°C)\n2024-03-05,10:00:00,5.0,4.9,5.1\n" \
           "2024-03-05,10:05:00,5.1,5.0,5.2\n"
    source = read(io.BytesIO(data.encode()), name="r.csv", options=ReadOptions(
        zone=UTC, logger_id="L"))

    assert source.days is None
    assert [r.celsius for r in source.readings] == [5.0, 5.1]


@pytest.mark.parametrize(("header", "cell", "minutes"), [
    ("Time above (min)", "90", 90),
    ("Minutes above 8 °C", "90", 90),
    ("Time above (h)", "1.5", 90),
    ("Time above (s)", "5400", 90),
    ("Time above", "01:30", 90),
    ("Time above (hh:mm)", "1:30", 90),
    ("Time above", "1:30:00", 90),
    ("Time above", "1 h 30 min", 90),
    ("Time above", "1h30min", 90),
    ("Time above", "90 min", 90),
    ("Time above", "2 h", 120),
    ("Over limit", "24:00", 1440),
    ("Time above", "1 day", 1440),
])
def test_durations_are_read_in_the_spellings_exports_use(header, cell, minutes):
    source = summary(f"Date;Min °C;Max °C;{header}\n2024-03-05;3,0;9,0;{cell}\n")

    assert source.days is not None
    assert source.days[0].minutes_above == pytest.approx(minutes)


@pytest.mark.parametrize(("header", "field"), [
    ("Time above limit", "minutes_above"), ("Duration over high alarm", "minutes_above"),
    ("Time below limit", "minutes_below"), ("Under low alarm", "minutes_below"),
    ("Time in alarm", "minutes_in_alarm"), ("Out of range", "minutes_in_alarm"),
    ("Excursion time", "minutes_in_alarm"),
])
def test_a_duration_header_says_which_side_it_counts(header, field):
    source = summary(f"Date,Min (°C),Max (°C),{header} (min)\n2024-03-05,1.0,9.0,30\n")

    assert source.days is not None
    assert getattr(source.days[0], field) == 30


def test_a_fahrenheit_summary_is_converted_to_celsius_and_dates_day_first_are_settled_by_the_days():
    source = summary("Day;Tmin [°F];Tmax [°F];Out of range (hh:mm)\n05.03.2024;35,6;46,4;00:00\n"
                     "06.03.2024;35,6;53,6;1 h 20 min\n07.03.2024;35,6;46,4;24:00\n")

    assert source.days is not None
    assert [d.day for d in source.days] == [date(2024, 3, 5), date(2024, 3, 6), date(2024, 3, 7)]
    assert [(round(d.min_c or 0, 3), round(d.max_c or 0, 3)) for d in source.days] == [
        (2.0, 8.0), (2.0, 12.0), (2.0, 8.0)]
    assert [d.minutes_in_alarm for d in source.days] == [0, 80, 1440]
    assert source.meta["unit"] == "F"


@pytest.mark.parametrize(("text", "expected"), [
    # A single-character degree sign, max before min, an alarm count (not used), h:mm:ss.
    ("Device S/N: EL-77\nDate,Max Temp(\u2103),Min Temp(\u2103),Average(\u2103),Alarm Count,"
     "Over-temp duration\n2024/03/05,9.5,3.0,5.0,2,00:35:00\n", (3.0, 9.5, 35, None, None)),
    # 'Low' and 'High' for the extremes; the unit only above the table; day first.
    ("Temperature unit: °C\nDate;Low;High;Average;Time out of range\n05/03/2024;2,1;8,4;5,0;0 h 35 min\n"
     "06/03/2024;2,2;7,4;5,0;0 min\n", (2.1, 8.4, None, None, 35)),
    # When the extremes were reached ('TS Min T') is not a second minimum; limits in the header.
    ("Date,Min T (°C),TS Min T,Max T (°C),TS Max T,Time above upper alarm limit,"
     "Time below lower alarm limit\n2024-03-05,+2.0,13:30,+8.5,14:33,0h 35m,0h 0m\n",
     (2.0, 8.5, 35, 0, None)),
])
def test_summaries_of_other_layouts_are_read_alike(text, expected):
    source = summary(text)

    assert source.days is not None
    first = source.days[0]
    assert (first.day, first.min_c, first.max_c, first.minutes_above, first.minutes_below,
            first.minutes_in_alarm) == (date(2024, 3, 5), *expected)


def test_the_limit_a_duration_header_names_is_the_files_own_limit():
    source = summary("Date,Min (°F),Max (°F),Time above 46.4 °F (min)\n2024-03-05,36.0,50.0,30\n")

    assert source.days is not None and source.days[0].high_limit == pytest.approx(8.0)


@pytest.mark.parametrize(("text", "why"), [
    ("Date,Min (°C),Min (°F),Max (°C)\n2024-03-05,3,37,7\n",
     "line 1: the header names two minimum temperature columns ('Min (°C)' and 'Min (°F)')"),
    ("Date,Min (°C),Max (°C)\n03/04/2024,3,7\n",
     "line 2, column Date: the dates (such as '03/04/2024') read both day first and month first"),
    ("Date,Min (°C),Max (°C)\n2024-03-05,3,7\n2024-03-06,3,7\n2024-03-05,4,6\n",
     "line 4: 2024-03-05 is given twice (also on line 2)"),
    ("Date,Min (°C),Max (°C),Time above\n2024-03-05,3,9,30\n",
     "line 2, column Time above: '30' is a duration without a unit"),
    ("Date,Min (°C),Max (°C),Time above (h)\n2024-03-05,3,9,25\n",
     "line 2, column Time above (h): '25' is more than a day (1500 min)"),
    ("Date,Min (°C),Max (°C)\n2024-03-05,9,3\n", "line 2: the day's minimum 9 °C is above its maximum 3 °C"),
    ("Date,Min,Max\n2024-03-05,3,7\n", "line 1: the daily summary does not say whether its temperatures"),
    ("Date,Min (°C),Max (°F)\n2024-03-05,3,45\n",
     "line 1: the minimum and maximum headers name both °C and °F"),
    ("Date,Min (°C),Max (°C)\n2024-03-05,3,warm\n", "line 2, column Max (°C): 'warm' is not a temperature"),
    ("Date,Min (°C),Max (°C)\n2024-03-05,3,7\n2024-03-06 10:00,3,7\n",
     "line 3, column Date: '2024-03-06 10:00' is not a date alone"),
    ("Date,Min (°C),Max (°C),Time above\n2024-03-05,3,9,1:75\n", "'1:75' is not a duration like hh:mm"),
])
def test_an_ambiguous_or_impossible_summary_is_refused_with_its_line(text, why):
    assert why in refusal(text)


def test_a_summary_that_names_no_logger_needs_one():
    with pytest.raises(Unreadable, match="names no logger"):
        summary("Date,Min (°C),Max (°C)\n2024-03-05,3,7\n", logger=None)


# ------------------------------------------------------------------ judging


def days(*rows: tuple[str, float, float, float | None]) -> list[DaySummary]:
    return [DaySummary(date.fromisoformat(day), low, high, above, None, None, line)
            for line, (day, low, high, above) in enumerate(rows, 2)]


def test_a_day_of_24_hours_above_the_limit_is_a_critical_excursion_naming_the_day():
    source = summary(HOT_DAY)
    assert source.days is not None

    judged = judge_days(source.days, PROFILE, logger_id="DS-1001")

    single = [b for b in judged.breaches if b.code == "excursion_single"]
    assert [(b.severity, b.key) for b in single] == [("critical", "excursion_single:DS-1001:2024-03-05")]
    assert single[0].message.startswith("2024-03-05: 1440 min above 8.0 °C, up to 12.4 °C (line 6)")
    assert "cannot tell one long excursion from several short ones" in single[0].message
    assert single[0].rule["day"] == "2024-03-05" and single[0].rule["minutes"] == 1440
    assert judged.time_out_of_range == timedelta(hours=24)
    assert [b.code for b in judged.breaches] == ["excursion_single", "excursion_cumulative"]


def test_a_clean_summary_raises_nothing():
    judged = judge_days(days(("2024-03-04", 3.0, 7.0, 0), ("2024-03-05", 2.5, 7.9, 0)), PROFILE,
                        logger_id="L")

    assert judged.breaches == [] and judged.alarm_days == []
    assert judged.time_out_of_range == timedelta(0)
    assert (judged.min_celsius, judged.max_celsius) == (2.5, 7.9)


def test_a_short_day_in_alarm_is_minor_but_counts_toward_the_cumulative_time():
    judged = judge_days(days(("2024-03-04", 3.0, 8.5, 20), ("2024-03-06", 3.0, 8.5, 20),
                             ("2024-03-08", 3.0, 8.5, 25)), PROFILE, logger_id="L")

    assert [(b.code, b.severity) for b in judged.breaches] == [
        ("excursion_single", "minor"), ("excursion_single", "minor"), ("excursion_single", "minor"),
        ("excursion_cumulative", "major")]
    assert "within the 30 min one excursion may last" in judged.breaches[0].message
    assert judged.time_out_of_range == timedelta(minutes=65)


def test_alarm_days_back_to_back_may_be_one_excursion_over_midnight():
    judged = judge_days(days(("2024-03-04", 3.0, 8.5, 20), ("2024-03-05", 3.0, 8.5, 20)), PROFILE,
                        logger_id="L")

    assert [b.severity for b in judged.breaches] == ["critical", "critical"]
    assert "may go on over midnight" in judged.breaches[0].message


def test_a_day_beyond_the_limits_without_stated_minutes_is_critical():
    judged = judge_days(days(("2024-03-05", 1.2, 7.0, None)), PROFILE, logger_id="L")

    assert [(b.severity, b.key) for b in judged.breaches] == [("critical", "excursion_single:L:2024-03-05")]
    assert judged.breaches[0].message.startswith(
        "2024-03-05: below 2.0 °C, down to 1.2 °C, for a time the file does not state")


def test_days_outside_the_window_are_listed_not_judged():
    judged = judge_days(days(("2024-03-03", 3.0, 30.0, 600), ("2024-03-04", 3.0, 7.0, 0),
                             ("2024-03-07", 3.0, 30.0, 600)), PROFILE, logger_id="L",
                        first_day=date(2024, 3, 4), last_day=date(2024, 3, 6))

    assert [d.day.isoformat() for d in judged.before_window] == ["2024-03-03"]
    assert [d.day.isoformat() for d in judged.after_window] == ["2024-03-07"]
    assert judged.breaches == []


def test_the_same_days_judged_again_give_the_same_keys():
    first = judge_days(days(("2024-03-05", 3.0, 12.0, 100)), PROFILE, logger_id="L")
    again = judge_days(days(("2024-03-04", 3.0, 7.0, 0), ("2024-03-05", 3.0, 12.0, 100)), PROFILE,
                       logger_id="L")

    assert {b.key for b in first.breaches} == {b.key for b in again.breaches}


# ------------------------------------------------------------------ inspect


@pytest.fixture
def hot_file(tmp_path: Path) -> Path:
    path = tmp_path / "days.csv"
    path.write_text(HOT_DAY, encoding="utf-8")
    return path


def test_inspect_lists_a_summarys_days(hot_file, capsys):
    assert main(["inspect", str(hot_file)]) == 0
    out = capsys.readouterr().out

    assert "format    daily-summary" in out
    assert "content   daily summaries, not readings" in out
    assert "days      3" in out
    assert "  2024-03-05      8.4 °C   12.4 °C    1440       0       –  6" in out
    assert "readings" not in out.split("\n")[5]


def test_inspect_json_adds_days_for_a_summary_only(hot_file, capsys):
    assert main(["inspect", str(hot_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert set(report) == set(JSON_KEYS) | {"days"}
    assert (report["count"], report["first"], report["last"]) == (0, None, None)
    assert (report["min_c"], report["max_c"]) == (2.5, 12.4)
    assert report["days"][1] == {"day": "2024-03-05", "min_c": 8.4, "max_c": 12.4, "minutes_above": 1440,
                                 "minutes_below": 0, "minutes_in_alarm": None, "low_limit_c": 2.0,
                                 "high_limit_c": 8.0, "line": 6}


def test_inspect_refuses_an_ambiguous_summary_with_its_line(tmp_path, capsys):
    path = tmp_path / "days.csv"
    path.write_text("Date,Min (°C),Max (°C)\n2024-03-05,3,7\n2024-03-05,3,7\n", encoding="utf-8")

    assert main(["inspect", str(path), "--logger", "L", "--json"]) == 2
    assert json.loads(capsys.readouterr().out) == {
        "refused": "line 3: 2024-03-05 is given twice (also on line 2); a daily summary has one row per day"}
