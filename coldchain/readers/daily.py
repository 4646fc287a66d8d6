"""Daily-summary tables: exports that keep one row per day (the day's lowest and highest
temperature and the time spent in alarm) instead of single readings.

Detection wants a header row with a date column, one minimum and one maximum temperature
column, and no time-of-day column; below it, rows whose date cells are dates only, one row
per date. Durations are read from columns whose header speaks of alarm, above / over / high,
below / under / low, out of range or excursion, in any of the spellings exports use: bare
minutes (the header must then say minutes or hours), 'hh:mm' ('24:00' is a whole day),
'h:mm:ss', '1 h 20 min', '45 min'. The file's own limits are taken from limit columns, from
a duration header ('Time above 8 °C'), or from 'High limit: 8 °C' lines above the table.

Nothing is guessed: a header with two minimum columns, dates that read both day first and
month first, a date given twice, durations without a unit, more than a day of alarm in one
day, a minimum above the maximum: each refuses the file with its line.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from coldchain.model import DaySummary, Reading, ReadOptions, Source
from coldchain.readers.common import Notes, choose_logger, make_source, refuse, to_celsius, units_in
from coldchain.readers.text import Text

FORMAT = "daily-summary"
DELIMITERS = (",", ";", "\t")
MINUTES_PER_DAY = 1440
HEADER_LINES = 200  # a summary's header is near the top; detection looks no further

_DATE_NAME = re.compile(r"\b(?:date|day|datum|tag|jour)\b", re.IGNORECASE)
_TIME_NAME = re.compile(r"^\W*(?:time|hour|uhrzeit|zeit|heure|timestamp|date\s*/?\s*time)\b", re.IGNORECASE)
_MIN_NAME = re.compile(r"\bmin(?:imum|\.)?(?![a-z])|\bt\s*min\b|\blow(?:est)?\b", re.IGNORECASE)
_MAX_NAME = re.compile(r"\bmax(?:imum|\.)?(?![a-z])|\bt\s*max\b|\bhigh(?:est)?\b", re.IGNORECASE)
# 'TS Min T', 'Time of max', 'Max at': when the extreme was reached, not its value.
_WHEN_NAME = re.compile(r"^\W*ts\b|\btime\s+of\b|\bat\b|\bwhen\b|\bstamp\b", re.IGNORECASE)
# Single-character degree signs (U+2103, U+2109) some exports write: spelled out for units_in.
_DEGREE_SIGNS = str.maketrans({"\u2103": "°C", "\u2109": "°F"})
_NOT_TEMPERATURE = re.compile(r"%|\brh\b|humid|dew|pressure|battery|volt", re.IGNORECASE)
_ALARM_WORDS = re.compile(r"alarm|\babove\b|\bover\b|\bbelow\b|\bunder\b|out\s*of\s*(?:range|limits?|spec)"
                          r"|excursion|exceed|[<>]", re.IGNORECASE)
_HIGH_SIDE = re.compile(r"\babove\b|\bover\b|\bhigh\b|\bupper\b|\bmax\b|exceed|>", re.IGNORECASE)
_LOW_SIDE = re.compile(r"\bbelow\b|\bunder\b|\blow\b|\blower\b|\bmin\b|<", re.IGNORECASE)
_LIMIT_NAME = re.compile(r"limit|threshold|set\s*-?\s*point", re.IGNORECASE)
# 'Time above limit', 'Over limit (min)': durations that name the limit, not a limit.
_DURATION_WORDS = re.compile(r"\btime\b|duration|minutes|\(min\)|\(h\)|hh:mm|\babove\b|\bover\b|\bbelow\b"
                             r"|\bunder\b|out\s*of", re.IGNORECASE)
_COUNT_NAME = re.compile(r"\bcount\b|\bevents?\b|\bnumber\b|#|\bno\.", re.IGNORECASE)
_LIMIT_IN_NAME = re.compile(r"(?:above|over|below|under|[<>])\s*([+-]?\d+(?:[.,]\d+)?)"
                            r"\s*(?:°|º|deg)?\s*([CF])?\b", re.IGNORECASE)
_HEADER_UNIT = (
    (re.compile(r"hh?\s*:\s*mm", re.IGNORECASE), "clock"),
    (re.compile(r"\bmin(?:s|utes?)?\b", re.IGNORECASE), "min"),
    (re.compile(r"\b(?:h|hrs?|hours?)\b", re.IGNORECASE), "h"),
    (re.compile(r"\b(?:s|secs?|seconds?)\b", re.IGNORECASE), "s"),
)
_DATE = re.compile(r"^(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})$")
_NUMBER = re.compile(r"^([+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+))\s*(?:(?:°|º|deg)\s*([CF]))?$", re.IGNORECASE)
_CLOCK_SPAN = re.compile(r"^(\d{1,3}):(\d{2})(?::(\d{2}))?$")
_WORDS_SPAN = re.compile(r"^(?:(\d+(?:[.,]\d+)?)\s*(?:d|days?)\s*)?"
                         r"(?:(\d+(?:[.,]\d+)?)\s*(?:h|hrs?|hours?)\s*)?"
                         r"(?:(\d+(?:[.,]\d+)?)\s*(?:m|mins?|minutes?)\s*)?(?:(\d+)\s*(?:s|secs?|seconds?))?$",
                         re.IGNORECASE)
_PREAMBLE_LIMIT = re.compile(r"(limit|threshold|alarm)[^:=;,\t]*[:=;,\t]\s*\"?\s*([+-]?\d+(?:[.,]\d+)?)",
                             re.IGNORECASE)
_NOT_A_LIMIT = re.compile(r"delay|duration|\btime\b|minutes|count|events?|%", re.IGNORECASE)
_SERIAL_LINE = re.compile(r'^[\ufeff"\s]*(?:(?:data\s*)?logger|device|sensor)?\s*'
                          r'(?:serial(?:\s*(?:number|no\.?|#))?|s/?n|id)["\s]*[:=,;\t]["\s]*'
                          r'([^",;\t]*[^",;\t\s])', re.IGNORECASE)


@dataclass
class _Layout:
    """Which column holds what, as the header row says."""

    line: int  # the header's line (1-based)
    delimiter: str
    header: list[str]
    date: int
    min: int
    max: int
    above: int | None = None
    below: int | None = None
    in_alarm: int | None = None
    low_limit: int | None = None
    high_limit: int | None = None
    ignored: list[str] = field(default_factory=list)  # alarm counts and the like: noted, not used


def detect(text: Text) -> bool:
    """A header with date, minimum and maximum columns and, under it, a date-only row."""
    head = text.head[:HEADER_LINES + 1]
    for index, line in enumerate(head[:HEADER_LINES]):
        layout = _layout_of(line, index + 1, strict=False)
        if layout is None:
            continue
        below = next((row for row in head[index + 1:] if row.strip()), None)
        if below is None:
            return False
        cells = _cells(below, layout.delimiter, strict=False)
        return layout.date < len(cells) and _DATE.match(cells[layout.date].strip()) is not None
    return False


def read(text: Text, options: ReadOptions) -> Source:
    lines = text.lines()
    preamble: list[str] = []
    layout = None
    for number, line in lines:
        layout = _layout_of(line, number)
        if layout is not None:
            break
        preamble.append(line)
        if number >= HEADER_LINES:
            break
    if layout is None:
        raise refuse("no header row with a date, a minimum and a maximum temperature column was found")
    meta = {"content": "daily summaries (the lowest and highest temperature and the time in alarm per "
                       "day), not individual readings"}
    logger_id = choose_logger(_serial(preamble), options, meta)
    unit = _unit(layout, preamble, options)
    meta["unit"] = unit
    meta["columns"] = "; ".join(f"{role}: '{layout.header[index]}'" for role, index in _roles(layout))
    if layout.ignored:
        meta["ignored_columns"] = ", ".join(f"'{name}'" for name in layout.ignored)
    limits = _preamble_limits(preamble, unit, layout)
    for key, value in (("low_limit", limits[0]), ("high_limit", limits[1])):
        if value is not None:
            meta[key] = f"{value:g} °C"
    source = make_source(format=FORMAT, logger_id=logger_id, zone=None, interval=timedelta(days=1),
                         meta=meta, rows=_no_readings)
    rows = _rows(lines, layout, Notes(source))
    source.days = _days(rows, layout, unit, limits)
    if not source.days:
        raise refuse("the daily summary holds no days")
    meta["day_count"] = str(len(source.days))
    return source


def _no_readings(notes: Notes) -> Iterator[Reading]:
    yield from ()


# ------------------------------------------------------------------ the header

def _cells(line: str, delimiter: str, *, strict: bool = True) -> list[str]:
    """The line's cells, stripped. A line the csv module cannot split (a carriage return
    outside quotes) refuses the file, or, in detection (`strict` False), has no cells: the
    reader the file goes to says why."""
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        if not strict:
            return []
        raise refuse(f"a line cannot be split into cells (it begins {line[:40]!r})") from None
    return [cell.translate(_DEGREE_SIGNS).strip().lstrip("\ufeff").strip() for cell in cells]


def _layout_of(line: str, number: int, *, strict: bool = True) -> _Layout | None:
    """The layout if `line` is a daily-summary header, else None. Raises Unreadable for a
    header that is one but names a role twice."""
    for delimiter in DELIMITERS:
        if delimiter not in line:
            continue
        cells = _cells(line, delimiter, strict=strict)
        layout = _classify(cells, number, delimiter)
        if layout is not None:
            return layout
    return None


def _classify(cells: list[str], number: int, delimiter: str) -> _Layout | None:
    roles: dict[str, list[int]] = {}
    ignored = []
    for index, name in enumerate(cells):
        role = _role(name)
        if role == "time":
            return None  # a time-of-day column: readings, not days
        if role == "ignored":
            ignored.append(name)
        elif role:
            roles.setdefault(role, []).append(index)
    if not all(roles.get(role) for role in ("date", "min", "max")):
        return None
    for role, found in roles.items():
        if len(found) > 1:
            names = " and ".join(f"'{cells[i]}'" for i in found)
            raise refuse(f"the header names two {_ROLE_WORDS[role]} columns ({names}); the file cannot "
                         "say which one holds the day's values", line=number)

    def one(role: str) -> int | None:
        return roles[role][0] if role in roles else None

    return _Layout(number, delimiter, cells, roles["date"][0], roles["min"][0], roles["max"][0],
                   above=one("above"), below=one("below"), in_alarm=one("in_alarm"),
                   low_limit=one("low_limit"), high_limit=one("high_limit"), ignored=ignored)


_ROLE_WORDS = {"date": "date", "min": "minimum temperature", "max": "maximum temperature",
               "above": "time above the limit", "below": "time below the limit",
               "in_alarm": "time in alarm", "low_limit": "low limit", "high_limit": "high limit"}


def _role(name: str) -> str | None:
    """What a header cell names: a limit, an alarm count (ignored), a duration above / below /
    in alarm, the day's minimum or maximum, the date, a time of day; None for anything else."""
    if not name:
        return None
    high, low = _HIGH_SIDE.search(name) is not None, _LOW_SIDE.search(name) is not None
    if _LIMIT_NAME.search(name) and not _COUNT_NAME.search(name) and not _DURATION_WORDS.search(name):
        if high != low:
            return "high_limit" if high else "low_limit"
        return "ignored"
    if _ALARM_WORDS.search(name):
        if _COUNT_NAME.search(name):
            return "ignored"
        # 'Time above 8 °C' speaks of a side; 'Time in alarm' or 'out of range' of both.
        above = re.search(r"\babove\b|\bover\b|\bhigh\b|\bupper\b|exceed|>", name, re.IGNORECASE)
        below = re.search(r"\bbelow\b|\bunder\b|\blow\b|\blower\b|<", name, re.IGNORECASE)
        if bool(above) != bool(below):
            return "above" if above else "below"
        return "in_alarm"
    if _NOT_TEMPERATURE.search(name):
        return None
    if _WHEN_NAME.search(name) and (_MIN_NAME.search(name) or _MAX_NAME.search(name)):
        return "ignored"
    if _TIME_NAME.search(name):
        return "time"
    if _MIN_NAME.search(name) and not _MAX_NAME.search(name):
        return "min"
    if _MAX_NAME.search(name) and not _MIN_NAME.search(name):
        return "max"
    if _DATE_NAME.search(name):
        return "date"
    return None


def _roles(layout: _Layout) -> list[tuple[str, int]]:
    return [(role, index) for role in _ROLE_WORDS if (index := getattr(layout, role)) is not None]


def _unit(layout: _Layout, preamble: list[str], options: ReadOptions) -> str:
    """The temperature unit of the min and max columns: their headers', else the other
    temperature headers', else the preamble's, else the one the caller gives."""
    temperature_headers = [layout.header[layout.min], layout.header[layout.max]]
    candidates = [
        ("the minimum and maximum headers", units_in(" / ".join(temperature_headers))),
        ("the header", set().union(*(units_in(layout.header[i]) for role, i in _roles(layout)
                                     if role != "date"))),
        ("the lines above the table", units_in("\n".join(preamble).translate(_DEGREE_SIGNS))),
    ]
    for where, units in candidates:
        if len(units) > 1:
            raise refuse(f"{where} name both °C and °F; the file cannot say which unit the day's "
                         "temperatures are in", line=layout.line)
        if units:
            return units.pop()
    if options.mapping and options.mapping.unit:
        return options.mapping.unit.upper()
    raise refuse("the daily summary does not say whether its temperatures are °C or °F", line=layout.line)


def _serial(preamble: list[str]) -> str | None:
    found = {m.group(1) for line in preamble if (m := _SERIAL_LINE.match(line))}
    if len(found) > 1:
        raise refuse(f"the file names several loggers ({', '.join(sorted(found))}); one file, one logger")
    return found.pop() if found else None


def _preamble_limits(preamble: list[str], unit: str, layout: _Layout) -> tuple[float | None, float | None]:
    """The file's own alarm limits (°C): 'High limit: 8.0 °C' lines above the table, else the
    number in a duration header ('Time above 8 °C (min)')."""
    low: float | None = None
    high: float | None = None
    for line in preamble:
        match = _PREAMBLE_LIMIT.search(line)
        if not match or _NOT_A_LIMIT.search(line) or not (units_in(line) or _LIMIT_NAME.search(line)):
            continue
        is_high, is_low = _HIGH_SIDE.search(line) is not None, _LOW_SIDE.search(line) is not None
        if is_high == is_low:
            continue
        units = units_in(line)
        value = to_celsius(float(match.group(2).replace(",", ".")), units.pop() if len(units) == 1 else unit)
        if is_high:
            high = value
        else:
            low = value
    for role, index in (("above", layout.above), ("below", layout.below)):
        if index is None:
            continue
        match = _LIMIT_IN_NAME.search(layout.header[index])
        if match:
            value = to_celsius(float(match.group(1).replace(",", ".")), (match.group(2) or unit).upper())
            if role == "above" and high is None:
                high = value
            elif role == "below" and low is None:
                low = value
    return low, high


# ------------------------------------------------------------------ the rows

def _rows(lines: Iterator[tuple[int, str]], layout: _Layout, notes: Notes) -> list[tuple[int, list[str]]]:
    rows = []
    for number, line in lines:
        if not line.strip():
            continue
        cells = _cells(line, layout.delimiter)
        stamp = cells[layout.date] if layout.date < len(cells) else ""
        if not stamp or not _DATE.match(stamp):
            if stamp and re.search(r"\d{1,4}[./-]\d{1,2}[./-]\d", stamp):
                raise refuse(f"'{stamp}' is not a date alone (a daily summary has one date per row and no "
                             "time of day)", line=number, column=layout.header[layout.date])
            notes.skip(number, None, "not a day's row (no date)")
            continue
        rows.append((number, cells))
    return rows


def _days(rows: list[tuple[int, list[str]]], layout: _Layout, unit: str,
          limits: tuple[float | None, float | None]) -> list[DaySummary]:
    dates = _dates(rows, layout)
    seen: dict[date, int] = {}
    days = []
    for (number, cells), day in zip(rows, dates, strict=True):
        if day in seen:
            raise refuse(f"{day.isoformat()} is given twice (also on line {seen[day]}); a daily summary has "
                         "one row per day", line=number)
        seen[day] = number

        def cell(index: int | None, cells: list[str] = cells) -> str:
            return cells[index] if index is not None and index < len(cells) else ""

        def temperature(index: int | None, number: int = number) -> float | None:
            return _temperature(cell(index), unit, number, layout, index)

        def minutes(index: int | None, number: int = number) -> float | None:
            return _minutes(cell(index), number, layout, index)

        summary = DaySummary(
            day=day, min_c=temperature(layout.min), max_c=temperature(layout.max),
            minutes_above=minutes(layout.above), minutes_below=minutes(layout.below),
            minutes_in_alarm=minutes(layout.in_alarm), line=number,
            low_limit=_first(temperature(layout.low_limit), limits[0]),
            high_limit=_first(temperature(layout.high_limit), limits[1]),
        )
        _check(summary, layout)
        days.append(summary)
    return days


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _check(day: DaySummary, layout: _Layout) -> None:
    if day.min_c is not None and day.max_c is not None and day.min_c > day.max_c:
        raise refuse(f"the day's minimum {day.min_c:g} °C is above its maximum {day.max_c:g} °C",
                     line=day.line)
    if (day.minutes_above or 0) + (day.minutes_below or 0) > MINUTES_PER_DAY:
        raise refuse("the time above and below the limits adds up to more than a day", line=day.line)


def _temperature(text: str, unit: str, line: int, layout: _Layout, index: int | None) -> float | None:
    if not text or text in ("-", "--", "--.-", "n/a", "N/A"):
        return None
    column = layout.header[index] if index is not None else None
    match = _NUMBER.match(text)
    if not match:
        raise refuse(f"'{text}' is not a temperature (a number like 5.1 was expected)", line=line,
                     column=column)
    number, stated = match.groups()
    if stated and stated.upper() != unit:
        raise refuse(f"'{text}' is in °{stated.upper()}, but the column is read in °{unit}", line=line,
                     column=column)
    if "," in number and layout.delimiter == ",":
        raise refuse(f"'{text}' is not a temperature", line=line, column=column)
    celsius = to_celsius(float(number.replace(",", ".")), unit)
    if not math.isfinite(celsius) or celsius <= -273.15:
        raise refuse(f"'{text}' is not a temperature (at or below absolute zero)", line=line, column=column)
    return celsius


def _minutes(text: str, line: int, layout: _Layout, index: int | None) -> float | None:
    """A duration cell in minutes: '90' (the header says the unit), '01:30', '24:00',
    '1:30:00', '1 h 20 min', '45 min', '2 h'."""
    if index is None or not text or text in ("-", "--"):
        return None
    column = layout.header[index]
    minutes: float | None = None
    if clock := _CLOCK_SPAN.match(text):
        hours, mins, seconds = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
        if mins >= 60 or seconds >= 60:
            raise refuse(f"'{text}' is not a duration like hh:mm", line=line, column=column)
        minutes = hours * 60 + mins + seconds / 60
    elif re.fullmatch(r"\d+(?:[.,]\d+)?", text):
        unit = next((unit for pattern, unit in _HEADER_UNIT if pattern.search(column)), None)
        value = float(text.replace(",", "."))
        if unit == "min":
            minutes = value
        elif unit == "h":
            minutes = value * 60
        elif unit == "s":
            minutes = value / 60
        else:
            raise refuse(f"'{text}' is a duration without a unit, and the header '{column}' does not say "
                         "whether it counts minutes or hours", line=line, column=column)
    elif (words := _WORDS_SPAN.match(text)) and any(words.groups()):
        d, h, m, s = (float((part or "0").replace(",", ".")) for part in words.groups())
        minutes = d * MINUTES_PER_DAY + h * 60 + m + s / 60
    if minutes is None:
        raise refuse(f"'{text}' is not a duration (minutes, hh:mm or '1 h 20 min' were expected)", line=line,
                     column=column)
    if minutes > MINUTES_PER_DAY:
        raise refuse(f"'{text}' is more than a day ({minutes:g} min) in one day's row", line=line,
                     column=column)
    return minutes


# ------------------------------------------------------------------ dates

def _dates(rows: list[tuple[int, list[str]]], layout: _Layout) -> list[date]:
    """The rows' dates, in the one order (year, day or month first) that reads them all;
    where both day-first and month-first read every date, the order under which the days
    follow one another a day apart is taken, and when that does not settle it, the file is
    refused."""
    parts = []
    for number, cells in rows:
        match = _DATE.match(cells[layout.date])
        assert match is not None  # _rows keeps only such rows
        a, _sep, b, c = match.groups()
        parts.append((number, cells[layout.date], int(a), int(b), int(c), len(a), len(c)))
    column = layout.header[layout.date]
    if not parts:
        return []
    if all(width_a == 4 for *_, width_a, _width_c in parts):
        orders = ["YMD"]
    elif any(width_a == 4 for *_, width_a, _width_c in parts):
        first = next(p for p in parts if p[5] != 4)
        raise refuse(f"'{first[1]}' is written in another date order than the other rows", line=first[0],
                     column=column)
    else:
        orders = ["DMY", "MDY"]
    readings = {order: _read_dates(parts, order) for order in orders}
    valid = {order: found for order, found in readings.items() if found is not None}
    if len(valid) == 1:
        return next(iter(valid.values()))
    if not valid:
        bad = next(p for p in parts if all(_date(p, order) is None for order in orders))
        raise refuse(f"'{bad[1]}' is not a date", line=bad[0], column=column)
    steady = [order for order, found in valid.items() if _a_day_apart(found)]
    if len(steady) == 1:
        return valid[steady[0]]
    number, shown = parts[0][0], parts[0][1]
    raise refuse(f"the dates (such as '{shown}') read both day first and month first, and the rows do not "
                 "settle which", line=number, column=column)


def _read_dates(parts: list[tuple[int, str, int, int, int, int, int]], order: str) -> list[date] | None:
    found = []
    for part in parts:
        day = _date(part, order)
        if day is None:
            return None
        found.append(day)
    return found


def _date(part: tuple[int, str, int, int, int, int, int], order: str) -> date | None:
    _line, _text, a, b, c, _wa, width_c = part
    if order == "YMD":
        year, month, day = a, b, c
    else:
        year = c + 2000 if width_c <= 2 else c
        day, month = (a, b) if order == "DMY" else (b, a)
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _a_day_apart(days: list[date]) -> bool:
    if len(days) < 2:
        return False
    steps = {(later - earlier).days for earlier, later in zip(days, days[1:], strict=False)}
    return steps in ({1}, {-1})
