"""`python -m coldchain inspect FILE`: what the library reads from a logger file, so QA can
check a file away from the app.

The file takes the app's path: `read` (format detection, the file's own zone and logger
first, `--zone` and `--logger` only where the file states none), then `normalise` with the
clock offset the file states. A clock check made at a handoff lives in the app's database
and is not applied here, so for a logger corrected that way the app's times differ by it.

Promises, for people and for scripts:
- times are UTC in ISO 8601 with a `Z`: `2021-04-08T21:00:00Z` (fractions of a second only
  when the file has them); temperatures are degrees Celsius (°F files are converted);
- exit status 0: the file was read; 2: it was refused (with `--json`, stdout holds exactly
  `{"refused": "<why>"}`; without, stderr holds one sentence). argparse's usage errors keep
  argparse's status (also 2). Bad input never ends in a stack trace;
- `--json` prints one object with exactly the keys in `JSON_KEYS`; `skipped` and `problems`
  are lists of `{"line", "column", "why"}`, at most the first 100 of each (the library keeps
  no more; the text form gives the full counts);
- a daily-summary report (one row per day, no readings) is read too: `count` is 0, `first`
  and `last` are null, `min_c` / `max_c` are the days' extremes, and the object has one key
  more, `days` (`DAY_JSON_KEYS`): a list of `{"day", "min_c", "max_c", "minutes_above",
  "minutes_below", "minutes_in_alarm", "low_limit_c", "high_limit_c", "line"}` in file order,
  dates as the file gives them (the logger's local dates), null where the file says nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from coldchain.layout import BadMapping, layout_of, read_mapping
from coldchain.model import ColumnMapping, DaySummary, Problem, ReadOptions, Unreadable
from coldchain.normalise import normalise
from coldchain.readers import read
from coldchain.readers.common import zone_name

EXIT_READ = 0
EXIT_REFUSED = 2
ABSOLUTE_ZERO_C = -273.15  # as in the app: a reading at or below it is not a temperature
JSON_KEYS = ("format", "logger", "count", "first", "last", "min_c", "max_c", "skipped", "problems")
DAY_JSON_KEYS = ("days",)  # added for daily-summary reports only
SHOWN_ROWS = 20  # skipped rows and problems the text form lists; the rest are counted

# The library's refusals end with what to do in the app's words; on the command line the
# same fix is an option. Matched on the ending so a reworded refusal loses only the hint.
_NO_ZONE = "configure the logger's zone"
_NO_LOGGER = "say which logger it is from"


class Refused(Exception):
    """The file cannot be inspected; `why` says so in one lower-case phrase."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class Inspection:
    """What the library read from one file: readings after `normalise`, in time order."""

    format: str
    loggers: set[str]
    zone: str | None
    zone_given: bool  # the times were read in the zone given with --zone
    clock_offset: timedelta | None  # logger clock minus true time, as the file states it
    count: int
    first: datetime | None  # None only for a daily-summary report (no readings, `days`)
    last: datetime | None
    min_c: float | None
    max_c: float | None
    skipped: list[Problem] = field(default_factory=list)
    skipped_count: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    notes: list[str] = field(default_factory=list)  # what the readers chose and why
    days: list[DaySummary] | None = None  # a daily-summary report's days; None for readings

    @property
    def logger(self) -> str:
        return ", ".join(sorted(self.loggers))


def inspect_file(path: Path, *, zone: tzinfo | None = None, logger_id: str | None = None,
                 mapping: ColumnMapping | None = None) -> Inspection:
    """Read and normalise the file at `path` as the app would (with `mapping`, as a file read
    through a column mapping). Raises `Refused` for a file that cannot be opened, that the
    library refuses, that holds no readings, or that holds a reading that is not a temperature
    (not finite, or at or below absolute zero)."""
    options = ReadOptions(zone=zone, logger_id=logger_id, mapping=mapping)
    notes: list[Problem] = []  # what normalise put right, appended when the readings run out
    count, first, last, low, high, loggers = 0, None, None, math.inf, -math.inf, set()
    try:
        with path.open("rb") as stream:
            source = read(stream, options=options)
            for reading in normalise(source.readings, clock_offset=source.clock_offset or timedelta(0),
                                     problems=notes):
                if not math.isfinite(reading.celsius) or reading.celsius <= ABSOLUTE_ZERO_C:
                    raise Refused(_not_a_temperature(reading.line, reading.celsius))
                count += 1
                first = first or reading.at  # normalise yields in time order
                last = reading.at
                low, high = min(low, reading.celsius), max(high, reading.celsius)
                loggers.add(reading.logger_id)
    except Unreadable as error:
        raise Refused(_refusal(error.problems, options)) from None
    except FileNotFoundError:
        raise Refused("there is no such file") from None
    except IsADirectoryError:
        raise Refused("it is a folder, not a file") from None
    except OSError as error:
        raise Refused(f"it cannot be read ({error.strerror or error})") from None
    skipped_count = int(source.meta.get("skipped_count", len(source.skipped)))
    if source.days is not None:
        return _summary(source.format, source.logger_id, source.days, dict(source.meta), source.skipped,
                        skipped_count)
    if first is None or last is None:
        # A reader that knows why (a model that keeps daily summaries only) says so in meta;
        # otherwise the library's reason names the first row that failed, or what there was.
        problem_count = int(source.meta.get("problem_count", len(source.problems)))
        detail = source.meta.get("content") or (f"{skipped_count:,} row(s) were not readings"
                                                if skipped_count and not problem_count else None)
        if detail or "no_readings" not in source.meta:
            raise Refused("the file holds no readings" + (f" ({detail})" if detail else ""))
        raise Refused(source.meta["no_readings"])
    meta = dict(source.meta)
    if source.clock_offset:
        # The reader's note says the times are as the logger kept them; normalise has since
        # corrected them, which the text form says on its own line.
        meta.pop("clock_note", None)
    return Inspection(
        format=source.format, loggers=loggers, zone=source.zone,
        zone_given=zone is not None and source.zone == zone_name(zone) and "zone_note" not in meta,
        clock_offset=source.clock_offset, count=count, first=first, last=last, min_c=low, max_c=high,
        skipped=list(source.skipped), skipped_count=skipped_count, problems=source.problems + notes,
        problem_count=int(meta.get("problem_count", len(source.problems))) + len(notes),
        notes=[value for key, value in sorted(meta.items()) if key.endswith("_note")],
    )


def _summary(format: str, logger: str | None, days: list[DaySummary], meta: dict[str, str],
             skipped: list[Problem], skipped_count: int) -> Inspection:
    lows = [day.min_c for day in days if day.min_c is not None]
    highs = [day.max_c for day in days if day.max_c is not None]
    return Inspection(
        format=format, loggers={logger} if logger else set(), zone=None, zone_given=False, clock_offset=None,
        count=0, first=None, last=None, min_c=min(lows, default=None), max_c=max(highs, default=None),
        skipped=list(skipped), skipped_count=skipped_count,
        notes=[value for key, value in sorted(meta.items()) if key.endswith("_note")], days=days)


def _refusal(problems: list[Problem], options: ReadOptions) -> str:
    first = str(problems[0]) if problems else "the file cannot be read"
    if options.zone is None and first.endswith(_NO_ZONE):
        first = first.removesuffix(_NO_ZONE) + "give the logger's zone with --zone (an IANA name such as " \
                                               "Europe/Zurich)"
    if options.logger_id is None and first.endswith(_NO_LOGGER):
        first += " with --logger SERIAL"
    return first + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def _not_a_temperature(line: int, celsius: float) -> str:
    why = "not a finite number" if not math.isfinite(celsius) else "at or below absolute zero, -273.15 °C"
    return f"line {line}: {celsius:g} °C is not a temperature ({why})"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(f"--zone '{name}' is not a time zone this machine knows (give an IANA name such as "
                      "Europe/Zurich or America/New_York)") from None


# ------------------------------------------------------------------ output

def utc_text(at: datetime) -> str:
    """ISO 8601 in UTC with a `Z`: '2021-04-08T21:00:00Z'."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_json(inspection: Inspection) -> dict[str, object]:
    """The `--json` object: exactly the keys in JSON_KEYS."""
    def rows(problems: list[Problem]) -> list[dict[str, object]]:
        return [{"line": p.line, "column": p.column, "why": p.why} for p in problems]

    document: dict[str, object] = {
        "format": inspection.format, "logger": inspection.logger, "count": inspection.count,
        "first": utc_text(inspection.first) if inspection.first else None,
        "last": utc_text(inspection.last) if inspection.last else None,
        "min_c": inspection.min_c, "max_c": inspection.max_c,
        "skipped": rows(inspection.skipped), "problems": rows(inspection.problems)}
    if inspection.days is not None:
        document["days"] = [{"day": day.day.isoformat(), "min_c": day.min_c, "max_c": day.max_c,
                             "minutes_above": day.minutes_above, "minutes_below": day.minutes_below,
                             "minutes_in_alarm": day.minutes_in_alarm, "low_limit_c": day.low_limit,
                             "high_limit_c": day.high_limit, "line": day.line} for day in inspection.days]
    return document


def as_text(inspection: Inspection, path: Path) -> str:
    """The text form: one fact a line, labels aligned, for a person."""
    zone = inspection.zone or ("none (dates only, in the logger's local time)" if inspection.days is not None
                               else "none stated (times carry their own offsets)")
    lines = [("file", str(path)), ("format", inspection.format), ("logger", inspection.logger),
             ("zone", zone + (" (given with --zone)" if inspection.zone_given else ""))]
    if inspection.clock_offset:
        seconds = inspection.clock_offset.total_seconds()
        lines.append(("clock", f"the file says the logger ran {abs(seconds):g} s "
                               f"{'fast' if seconds > 0 else 'slow'}; times are corrected"))
    if inspection.days is not None:
        lines += [("content", "daily summaries, not readings (one row per day; dates are the logger's)"),
                  ("days", f"{len(inspection.days):,}")]
    else:
        assert inspection.first is not None and inspection.last is not None
        lines += [("readings", f"{inspection.count:,}"), ("first", utc_text(inspection.first)),
                  ("last", utc_text(inspection.last))]
    lines += [("min", _celsius(inspection.min_c)), ("max", _celsius(inspection.max_c))]
    lines += [("note", note) for note in inspection.notes]
    text = [f"{label:<10}{value}" for label, value in lines]
    if inspection.days is not None:
        text += _day_table(inspection.days)
    text += _listed("skipped", inspection.skipped, inspection.skipped_count, "row(s) that are not readings")
    text += _listed("problems", inspection.problems, inspection.problem_count,
                    "row(s) that could not be read or were put right")
    return "\n".join(text) + "\n"


def _listed(label: str, problems: list[Problem], count: int, what: str) -> list[str]:
    lines = [f"{label:<10}{count:,} {what}" if count else f"{label:<10}none"]
    lines += [f"  {problem}" for problem in problems[:SHOWN_ROWS]]
    if count > min(len(problems), SHOWN_ROWS):
        lines.append(f"  ... and {count - min(len(problems), SHOWN_ROWS):,} more")
    return lines


def _celsius(value: float | None) -> str:
    # Three decimals hold every logger's resolution and a °F value converted; no trailing zeros.
    return "–" if value is None else f"{value:.3f}".rstrip("0").rstrip(".") + " °C"


def _day_table(days: list[DaySummary]) -> list[str]:
    """One line per day: date, min, max, minutes above / below / in alarm ('–': not stated)."""
    def minutes(value: float | None) -> str:
        return "–" if value is None else f"{value:g}"

    lines = [f"  {'day':<12}{'min':>10}{'max':>10}{'above':>8}{'below':>8}{'alarm':>8}  line"]
    lines += [f"  {day.day.isoformat():<12}{_celsius(day.min_c):>10}{_celsius(day.max_c):>10}"
              f"{minutes(day.minutes_above):>8}{minutes(day.minutes_below):>8}{minutes(day.minutes_in_alarm):>8}"
              f"  {day.line}" for day in days]
    return lines


# ------------------------------------------------------------------ command line

DESCRIPTION = "Check a temperature logger file with the cold-chain library, away from the app."
INSPECT_HELP = """\
Read FILE as the app reads an upload (format detected; clock offset the file states applied;
rows repeated verbatim dropped; rows slightly out of order put in time order) and say what it
holds: format, logger, number of readings, first and last time, lowest and highest °C, rows
skipped (not readings) and problems (rows that could not be read), each with its line and why.
A daily-summary report (one row per day: min, max, time in alarm) is listed day by day
(--json: a "days" key).

Times are UTC, ISO 8601 with Z (2021-04-08T21:00:00Z); temperatures are °C (°F is converted).
A file is refused when the library refuses it (binary, PDF, empty, unknown layout, no time zone
and no --zone, ...), when it holds no readings, or when a reading is not a temperature (NaN,
at or below absolute zero).

exit status: 0 read, 2 refused (or a usage error).

examples:
  python -m coldchain inspect export.csv
  python -m coldchain inspect fridgetag.txt --zone Europe/Zurich
  python -m coldchain inspect export.csv --json | jq .count
  python -m coldchain inspect odd.csv --mapping show
  python -m coldchain inspect odd.csv --mapping '{"time": 1, "value": 3, "unit": "C", "order": "DMY"}'
"""


def _mapping(text: str) -> ColumnMapping:
    """--mapping: JSON, or the path of a JSON file."""
    try:
        return read_mapping(text)
    except BadMapping as error:
        raise Refused(f"the mapping cannot be used: {error}") from None


def _show_layout(path: Path, as_json: bool, out: TextIO) -> int:
    """--mapping show: the columns a mapping can name, and the fingerprint of the layout."""
    try:
        with path.open("rb") as stream:
            layout = layout_of(stream, name=path.name)
    except OSError as error:
        raise Refused(f"it cannot be read ({error.strerror or error})") from None
    if layout is None:
        raise Refused("it is not delimited text with columns, so there is nothing to map")
    if as_json:
        out.write(json.dumps(layout.document()) + "\n")
        return EXIT_READ
    delimiter = {"\t": "tab", ",": "comma", ";": "semicolon"}[layout.delimiter]
    lines = [f"delimiter   {delimiter}",
             f"header      line {layout.header_line}" if layout.header_line else "header      none",
             f"data from   line {layout.first_data_line}", "columns"]
    lines += [f"  {number:>3}  {name}" for number, name in enumerate(layout.columns, 1)]
    lines += ["first rows"] + [f"  {' | '.join(row)}" for row in layout.sample]
    lines.append(f"fingerprint {layout.fingerprint}")
    out.write("\n".join(lines) + "\n")
    return EXIT_READ


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m coldchain", description=DESCRIPTION,
                                     epilog="python -m coldchain inspect --help says more.")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    inspect = commands.add_parser("inspect", help="say what a logger file holds, or why it is refused",
                                  description=INSPECT_HELP,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    inspect.add_argument("file", metavar="FILE", type=Path, help="the logger export (CSV, TXT, EPCIS JSON-LD "
                         "or XML, readings JSON)")
    inspect.add_argument("--zone", metavar="ZONE", help="IANA time zone of a file that states none, e.g. "
                         "Europe/Zurich (a zone the file states wins)")
    inspect.add_argument("--logger", metavar="SERIAL", help="logger serial for a file that names none "
                         "(a serial the file names wins)")
    inspect.add_argument("--mapping", metavar="MAPPING", help="a column mapping, as JSON or a JSON file: "
                         '{"time": "Date Time", "value": "Temp", "unit": "C", "order": "DMY"} (columns '
                         "by header name or number from 1; also date, time_format, delimiter, decimal, "
                         "first_data_line); --mapping show prints the file's columns instead")
    inspect.add_argument("--json", action="store_true", help="print one JSON object (keys: "
                         + ", ".join(JSON_KEYS) + ', and "days" for a daily summary); a refusal prints '
                         '{"refused": "<why>"}')
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits by itself on a usage
    error, with its own status)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        zone = _zone(args.zone) if args.zone is not None else None
        if args.mapping == "show":
            return _show_layout(args.file, args.json, out)
        mapping = _mapping(args.mapping) if args.mapping is not None else None
        inspection = inspect_file(args.file, zone=zone, logger_id=args.logger or None, mapping=mapping)
    except Refused as refused:
        if args.json:
            out.write(json.dumps({"refused": refused.why}) + "\n")
        else:
            err.write(f"Refused {args.file}: {refused.why.rstrip('.')}.\n")
        return EXIT_REFUSED
    out.write(json.dumps(as_json(inspection)) + "\n" if args.json else as_text(inspection, args.file))
    return EXIT_READ
