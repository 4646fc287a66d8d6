"""`python -m coldchain inspect`: what QA sees when checking a logger file away from the app.

Expectations come from outside the library where they can: hand-written files whose every
value is known, and real vendor exports (../shared/realdata, never modified) whose values
were found with awk, as the comment beside each says (line numbers are awk's NR). Times are
UTC."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from coldchain import ReadOptions, normalise, read
from coldchain.cli import main

REPO = Path(__file__).resolve().parent.parent
KEYS = {"format", "logger", "count", "first", "last", "min_c", "max_c", "skipped", "problems"}

# Every value known: 09:05 arrives after 09:10 (put back in order), 09:15 is repeated
# verbatim (dropped), 09:20 has no value (skipped), 09:25 has a word for a value (a problem).
HAND_WRITTEN = """Time,Temp °C
2026-11-22 09:00,5.0
2026-11-22 09:10,7.25
2026-11-22 09:05,2.5
2026-11-22 09:15,8.5
2026-11-22 09:15,8.5
2026-11-22 09:20,
2026-11-22 09:25,warm
"""


def run(*argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the command line, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def inspected(path: Path, *options: str) -> dict[str, object]:
    status, out, err = run("inspect", str(path), "--json", *options)
    assert (status, err) == (0, ""), out
    report = json.loads(out)
    assert set(report) == KEYS
    return report  # type: ignore[no-any-return]


def refusal(path: Path, *options: str) -> str:
    """The reason given with --json; checks the exit status and that nothing else is said."""
    status, out, err = run("inspect", str(path), "--json", *options)
    assert (status, err) == (2, "")
    answer = json.loads(out)
    assert list(answer) == ["refused"] and out.count("\n") == 1
    return answer["refused"]  # type: ignore[no-any-return]


def iso(at: datetime) -> str:
    """The promised form, written out independently of the code under test."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> str:
    return iso(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


def f_to_c(fahrenheit: float) -> float:
    return (fahrenheit - 32) * 5 / 9


@pytest.fixture
def hand_written(tmp_path: Path) -> Path:
    path = tmp_path / "hand.csv"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    return path


# ---------------------------------------------------------------- what a file holds

def test_a_hand_written_file_is_reported_exactly_in_json(hand_written: Path) -> None:
    report = inspected(hand_written, "--zone", "UTC", "--logger", "L1")

    assert report == {
        "format": "generic-csv", "logger": "L1", "count": 4,
        "first": "2026-11-22T09:00:00Z", "last": "2026-11-22T09:15:00Z", "min_c": 2.5, "max_c": 8.5,
        "skipped": [{"line": 7, "column": "Temp °C", "why": "no temperature on this row"}],
        "problems": [
            {"line": 8, "column": "Temp °C",
             "why": "'warm' is not a temperature (a number like 5.1 was expected)"},
            {"line": 6, "column": None, "why": "1 repeated row(s) (same logger, time and value) were "
                                                 "dropped; the first repeats line 5"},
            {"line": 4, "column": None, "why": "1 row(s) came before rows with earlier times and were put "
                                                 "in time order"},
        ],
    }


def test_the_text_form_gives_the_same_facts_one_a_line_with_aligned_labels(hand_written: Path) -> None:
    status, out, err = run("inspect", str(hand_written), "--zone", "UTC", "--logger", "L1")

    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"file      {hand_written}",
        "format    generic-csv",
        "logger    L1",
        "zone      UTC (given with --zone)",
        "readings  4",
        "first     2026-11-22T09:00:00Z",
        "last      2026-11-22T09:15:00Z",
        "min       2.5 °C",
        "max       8.5 °C",
        "skipped   1 row(s) that are not readings",
        "  line 7, column Temp °C: no temperature on this row",
        "problems  3 row(s) that could not be read or were put right",
        "  line 8, column Temp °C: 'warm' is not a temperature (a number like 5.1 was expected)",
        "  line 6: 1 repeated row(s) (same logger, time and value) were dropped; the first repeats line 5",
        "  line 4: 1 row(s) came before rows with earlier times and were put in time order",
    ]


@pytest.mark.parametrize(("zone", "hours_ahead_of_utc"), [
    ("UTC", 0), ("Europe/Zurich", 1), ("America/New_York", -5), ("Asia/Kolkata", 5.5),
])
def test_zone_places_the_times_of_a_file_that_states_none(hand_written: Path, zone: str,
                                                            hours_ahead_of_utc: float) -> None:
    # 22 November: Zurich is on CET, New York on EST; Kolkata keeps +05:30 all year.
    shift = timedelta(hours=hours_ahead_of_utc)

    report = inspected(hand_written, "--zone", zone, "--logger", "L1")

    assert report["first"] == iso(datetime(2026, 11, 22, 9, 0, tzinfo=UTC) - shift)
    assert report["last"] == iso(datetime(2026, 11, 22, 9, 15, tzinfo=UTC) - shift)
    assert (report["count"], report["min_c"], report["max_c"]) == (4, 2.5, 8.5)


def test_zone_shifts_a_real_file_without_zone_by_the_zones_offset_that_day(realdata: Path) -> None:
    # awk -F';' 'NR>1 && $2!=""' on the HOBO export (no zone anywhere): line 2 '08.04.2021
    # 21:00:00', line 50 '09.04.2021 09:00:00'. In April, Zurich is UTC+2 and Tokyo UTC+9.
    path = realdata / "loggers/hobo-myClim/20024354.txt"

    in_utc = inspected(path, "--zone", "UTC")
    in_zurich = inspected(path, "--zone", "Europe/Zurich")
    in_tokyo = inspected(path, "--zone", "Asia/Tokyo")

    assert (in_utc["first"], in_utc["last"]) == (z(2021, 4, 8, 21), z(2021, 4, 9, 9))
    assert (in_zurich["first"], in_zurich["last"]) == (z(2021, 4, 8, 19), z(2021, 4, 9, 7))
    assert (in_tokyo["first"], in_tokyo["last"]) == (z(2021, 4, 8, 12), z(2021, 4, 9, 0))
    assert in_utc["count"] == in_zurich["count"] == in_tokyo["count"] == 49


def test_zone_does_not_override_a_zone_the_file_states(realdata: Path) -> None:
    # 'Date Time, GMT+02:00' in the header: line 3 '21.04.08 23:00:00' is 21:00 UTC whatever --zone says.
    path = realdata / "loggers/hobo-myClim/20024354_semicolon.txt"

    report = inspected(path, "--zone", "America/New_York")
    status, out, _ = run("inspect", str(path), "--zone", "America/New_York")

    assert report["first"] == z(2021, 4, 8, 21)
    assert status == 0
    assert "zone      UTC+02:00\n" in out and "the configured zone America/New_York was not used" in out


REAL_FILES = [
    # (path, options, format, logger, count, first, last, min, max, skipped), from awk as noted.
    # awk -F';' 'NR>1 && $2!=""': 49 readings, line 2 and line 50, min 7.469, max 20.222;
    # rows 51-53 hold only 'Logged' events.
    ("loggers/hobo-myClim/20024354.txt", ["--zone", "UTC"], "hobo-csv", "20024354", 49,
     z(2021, 4, 8, 21), z(2021, 4, 9, 9), 7.469, 20.222, 3),
    # The same readings in °F, 'GMT+00:00' stated: 65.788 F first, 46.346 F last; min 45.444 F
    # (= 7.469 C), max 68.4 F (= 20.222 C).
    ("loggers/hobo-myClim/20024354_fahrenheit.csv", [], "hobo-csv", "20024354", 49,
     z(2021, 4, 8, 21), z(2021, 4, 9, 9), f_to_c(45.444), f_to_c(68.4), 3),
    # Pendant in °F, 'GMT+01:00': awk -F',' 'NR>2 && $3!=""' counts 1993; '10/10/19 11:00:00 AM'
    # to '10/17/19 09:00:00 AM' local; min 62.769 F, max 73.407 F; 6 event-only rows.
    ("loggers/hobo-hoboreader/sample_hobo_pendant_data.csv", [], "hobo-csv", "10469238", 1993,
     z(2019, 10, 10, 10), z(2019, 10, 17, 8), f_to_c(62.769), f_to_c(73.407), 6),
    # Rotronic, no zone: awk -F',' 'NR>23' counts 10; '24/01/2020,13:37:22' to '29/01/2020,01:37:22';
    # Temperature ($4) min 20, max 20.6.
    ("loggers/rotronic-dataloggergraphs/Rotronic_1.csv", ["--zone", "UTC"], "rotronic", "A00000000", 10,
     z(2020, 1, 24, 13, 37, 22), z(2020, 1, 29, 1, 37, 22), 20.0, 20.6, 0),
    # Tinytag, no zone: awk -F',' 'NR>5' counts 10; 08:58 to 13:28 on 2021-09-01; min 19.9, max 20.2.
    ("loggers/tinytag-dataloggergraphs/TinyTag_2.csv", ["--zone", "UTC"], "tinytag-explorer", "000000", 10,
     z(2021, 9, 1, 8, 58), z(2021, 9, 1, 13, 28), 19.9, 20.2, 0),
    # Fridge-tag UL, local times, read in Zurich (CEST, UTC+2): 841 'Data:' rows, 6 of them '--.-';
    # '2023-04-17 16:21' to '2023-04-20 13:51' local; min -17.0, max -9.6.
    ("loggers/berlinger-msupply/100800001215_202304201410.txt", ["--zone", "Europe/Zurich"],
     "berlinger-fridgetag", "100800001215", 835, z(2023, 4, 17, 14, 21), z(2023, 4, 20, 11, 51),
     -17.0, -9.6, 6),
    # Q-tag CLm doc LR, Zurich: 424 'Data:' rows, '2023-04-17 15:23' to '2023-04-20 13:53' local;
    # min 9.7, max 12.7 (the report's own 'Res:' line says the same).
    ("loggers/berlinger-msupply/RCPJ00010_03_202304201359.txt", ["--zone", "Europe/Zurich"],
     "berlinger-qtag", "RCPJ00010", 424, z(2023, 4, 17, 13, 23), z(2023, 4, 20, 11, 53), 9.7, 12.7, 0),
]


@pytest.mark.parametrize(("path", "options", "format", "logger", "count", "first", "last", "low", "high",
                          "skipped"), REAL_FILES, ids=[entry[0].split("/")[-1] for entry in REAL_FILES])
def test_real_vendor_exports_are_reported_as_awk_reads_them(
    realdata: Path, path: str, options: list[str], format: str, logger: str, count: int, first: str,
    last: str, low: float, high: float, skipped: int,
) -> None:
    report = inspected(realdata / path, *options)

    assert (report["format"], report["logger"], report["count"]) == (format, logger, count)
    assert (report["first"], report["last"]) == (first, last)
    assert report["min_c"] == pytest.approx(low, abs=1e-9)
    assert report["max_c"] == pytest.approx(high, abs=1e-9)
    assert isinstance(report["skipped"], list) and len(report["skipped"]) == skipped
    assert all(set(row) == {"line", "column", "why"} and row["why"] for row in report["skipped"])


def test_a_logger_clock_offset_the_file_states_is_corrected_as_the_app_does(realdata: Path) -> None:
    # EnvLogger: 'time diff [logger-smartphone](sec), -3590' (the logger ran 3590 s slow);
    # awk 'NR>23': first row line 24 '2023-11-17 12:00:03', last line 420 '2023-12-04 00:00:03',
    # 'time zone, UTC+0000'. True time is the logger's plus 3590 s.
    path = realdata / "loggers/envlogger/issuemh04a_0434_EF00_4B29_0A-20240116_132500.csv"

    report = inspected(path)
    status, out, _ = run("inspect", str(path))

    assert (report["count"], report["first"], report["last"]) == (397, z(2023, 11, 17, 12, 59, 53),
                                                                  z(2023, 12, 4, 0, 59, 53))
    assert status == 0 and "clock     the file says the logger ran 3590 s slow; times are corrected" in out


def readable_real_files() -> list[tuple[str, tuple[str, ...]]]:
    return [(entry[0], tuple(entry[1])) for entry in REAL_FILES] + [
        ("loggers/envlogger/issuemh04a_0434_EF00_4B29_0A-20240116_132500.csv", ()),
        ("loggers/hobo-myClim/20024370.txt", ("--zone", "UTC")),
        ("loggers/hobo-hoboreader/sample_hobo_u12_data.csv", ("--logger", "U12")),
        ("loggers/ibutton-ibuttonr/10a.csv", ("--zone", "America/Chicago")),
        ("loggers/berlinger-msupply/130500109088_202206081014.txt", ("--zone", "Europe/Zurich")),
        ("epcis/gs1-EPCIS/SensorDataExample1.jsonld", ()),
        ("epcis/gs1-EPCIS/SensorDataExample5.jsonld", ()),
    ]


@pytest.mark.parametrize(("path", "options"), readable_real_files(), ids=lambda value: str(value)[-40:])
def test_the_report_agrees_with_what_the_library_reads(realdata: Path, path: str,
                                                        options: tuple[str, ...]) -> None:
    # The command adds nothing of its own: the same numbers come out of read + normalise.
    given = dict(zip(options[::2], options[1::2], strict=True))
    with (realdata / path).open("rb") as stream:
        source = read(stream, options=ReadOptions(
            zone=ZoneInfo(given["--zone"]) if "--zone" in given else None, logger_id=given.get("--logger")))
        readings = list(normalise(source.readings, clock_offset=source.clock_offset or timedelta(0),
                                  problems=[]))

    report = inspected(realdata / path, *options)

    assert report["count"] == len(readings) > 0
    assert (report["first"], report["last"]) == (iso(readings[0].at), iso(readings[-1].at))
    assert (report["min_c"], report["max_c"]) == (min(r.celsius for r in readings),
                                                  max(r.celsius for r in readings))
    assert report["format"] == source.format


def test_a_file_with_more_skipped_rows_than_kept_says_how_many(tmp_path: Path) -> None:
    # 150 rows without a value: the library keeps the first 100 with line and why, counts all.
    rows = "".join(f"2026-11-22 {9 + i // 60:02d}:{i % 60:02d},\n" for i in range(150))
    path = tmp_path / "gappy.csv"
    path.write_text("Time,Temp °C\n2026-11-22 08:59,5\n" + rows, encoding="utf-8")

    report = inspected(path, "--zone", "UTC", "--logger", "L1")
    status, out, _ = run("inspect", str(path), "--zone", "UTC", "--logger", "L1")

    assert report["count"] == 1
    assert isinstance(report["skipped"], list) and len(report["skipped"]) == 100
    assert report["skipped"][0] == {"line": 3, "column": "Temp °C", "why": "no temperature on this row"}
    assert status == 0
    assert "skipped   150 row(s) that are not readings\n" in out and "  ... and 130 more\n" in out


# ---------------------------------------------------------------- refusals

def test_a_binary_logger_file_is_refused(realdata: Path) -> None:
    why = refusal(realdata / "loggers/biovoice-bvfile/2622930045_202006091730.bv")

    assert why.startswith("this is a binary file, not a text export")


def test_a_pdf_report_is_refused(realdata: Path) -> None:
    assert "PDF report" in refusal(realdata / "loggers/berlinger-msupply/130400191544_202304201514.pdf")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    assert refusal(path) == "the file is empty: upload the logger's export"


def test_a_file_without_zone_is_refused_without_zone_and_told_how_to_give_one(realdata: Path) -> None:
    path = realdata / "loggers/hobo-myClim/20024354.txt"

    why = refusal(path)
    status, out, err = run("inspect", str(path))

    assert why == ("the file states no time zone; give the logger's zone with --zone (an IANA name such "
                   "as Europe/Zurich)")
    assert (status, out) == (2, "")
    assert err == f"Refused {path}: {why}.\n"


def test_a_file_that_names_no_logger_is_refused_until_one_is_given(realdata: Path) -> None:
    path = realdata / "loggers/hobo-hoboreader/sample_hobo_u12_data.csv"

    assert refusal(path) == "the file names no logger; say which logger it is from with --logger SERIAL"
    assert inspected(path, "--logger", "U12")["logger"] == "U12"


def test_an_unknown_zone_is_refused_by_name(hand_written: Path) -> None:
    for name in ("Mars/Olympus_Mons", "europe/zurich", "../../etc/passwd", ""):
        assert refusal(hand_written, "--zone", name, "--logger", "L1") == (
            f"--zone '{name}' is not a time zone this machine knows (give an IANA name such as "
            "Europe/Zurich or America/New_York)")


def test_a_file_with_no_readings_is_refused_saying_what_it_holds_instead(realdata: Path) -> None:
    # The HOBO export of an empty deployment: a header and one 'Logged' event row.
    empty = refusal(realdata / "loggers/hobo-myClim/20847126_empty.txt", "--zone", "UTC")
    assert empty.startswith("the file holds no readings")


def test_a_fridge_tag_2_report_is_listed_day_by_day(realdata: Path) -> None:
    # 'Hist:' daily summaries and no 'Data:' section (grep -c '^Data:' is 0): its days.
    report = realdata / "loggers/berlinger-msupply/130400191544_202304201514.txt"
    status, out, _err = run("inspect", str(report), "--json")
    assert status == 0
    found = json.loads(out)
    assert found["count"] == 0 and [d["day"] for d in found["days"]] == [
        "2023-04-17", "2023-04-18", "2023-04-19", "2023-04-20"]
    assert (found["days"][0]["max_c"], found["days"][0]["minutes_above"]) == (20.8, 8.0)


@pytest.mark.parametrize(("celsius", "why"), [
    ("-400", "line 2: -400 °C is not a temperature (at or below absolute zero, -273.15 °C)"),
    ("-273.15", "line 2: -273.15 °C is not a temperature (at or below absolute zero, -273.15 °C)"),
    ("NaN", "line 2, column celsius: nan is not a temperature (a number was expected)"),
])
def test_a_reading_that_is_not_a_temperature_refuses_the_file(tmp_path: Path, celsius: str, why: str) -> None:
    path = tmp_path / "readings.json"
    path.write_text('{"logger": "L1", "readings": [{"at": "2026-11-22T09:00:00Z", "celsius": 5}, '
                    f'{{"at": "2026-11-22T09:10:00Z", "celsius": {celsius}}}]}}', encoding="utf-8")

    assert refusal(path) == why


def test_a_reading_just_above_absolute_zero_is_a_temperature(tmp_path: Path) -> None:
    path = tmp_path / "readings.json"
    path.write_text('{"logger": "L1", "readings": [{"at": "2026-11-22T09:00:00Z", "celsius": -273.14}]}',
                    encoding="utf-8")

    assert inspected(path)["min_c"] == -273.14


def test_a_missing_file_and_a_folder_are_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path / "nowhere.csv") == "there is no such file"
    assert refusal(tmp_path) == "it is a folder, not a file"


def test_a_refusal_without_json_is_one_sentence_on_stderr_and_nothing_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"

    status, out, err = run("inspect", str(path))

    assert (status, out) == (2, "")
    assert err == f"Refused {path}: there is no such file.\n"


def test_usage_errors_keep_argparse_status(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["inspect"], ["inspect", "a.csv", "--colour"], ["weigh", "a.csv"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        assert "usage: python -m coldchain" in capsys.readouterr().err


def test_help_tells_qa_what_is_reported_and_what_exit_statuses_mean(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["inspect", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width

    assert caught.value.code == 0
    for words in ("--zone ZONE", "--json", "ISO 8601 with Z", "exit status: 0 read, 2 refused",
                  "format, logger, count, first, last, min_c, max_c, skipped, problems"):
        assert words in shown


def test_random_files_end_in_a_report_or_a_refusal_never_an_exception(tmp_path: Path) -> None:
    # Random files built from the pieces logger exports are made of: each is read (0) or
    # refused with a reason (2); an exception would fail the test here.
    pieces = [b"Time,Temp \xb0C\n", b"2026-11-22 09:00,", b"5.1", b"\n", b";", b",", b"\t", b"\x00",
              b"\xff\xfe", b"\xef\xbb\xbf", b"{", b'"readings": [', b"<", b"GMT+01:00", b"-", b"e9", b"\r",
              b"\xe9", b"nan", b'"']
    generator = random.Random(20261122)
    valid_start = b"Time,Temp \xc2\xb0C\n2026-11-22 09:00,5.1\n2026-11-22 09:10,5.3\n"
    statuses = set()
    for index in range(150):
        path = tmp_path / f"random-{index}.csv"
        noise = b"".join(generator.choices(pieces, k=generator.randint(1, 60)))
        path.write_bytes(noise if index % 2 else valid_start + noise)  # half begin as a good export
        for options in ((), ("--zone", "UTC", "--logger", "L1")):
            status, out, _ = run("inspect", str(path), "--json", *options)
            answer = json.loads(out)
            assert (status, set(answer)) in ((0, KEYS), (2, {"refused"}))
            statuses.add(status)
    assert statuses == {0, 2}  # the pieces reach both outcomes, so the check means something


# ---------------------------------------------------------------- as a real process

def test_python_m_coldchain_inspect_runs_as_a_program(realdata: Path) -> None:
    path = realdata / "loggers/hobo-myClim/20024354_fahrenheit.csv"

    done = subprocess.run([sys.executable, "-m", "coldchain", "inspect", str(path), "--json"],
                          capture_output=True, encoding="utf-8", cwd=REPO, check=False)

    assert (done.returncode, done.stderr) == (0, "")
    report = json.loads(done.stdout)
    assert (report["count"], report["first"], report["last"]) == (49, z(2021, 4, 8, 21), z(2021, 4, 9, 9))


def test_a_refused_file_ends_the_program_with_status_2_and_no_stack_trace(realdata: Path) -> None:
    path = realdata / "loggers/biovoice-bvfile/2622930045_202006091730.bv"

    done = subprocess.run([sys.executable, "-m", "coldchain", "inspect", str(path)],
                          capture_output=True, encoding="utf-8", cwd=REPO, check=False)

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"Refused {path}: this is a binary file") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
