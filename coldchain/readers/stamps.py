"""Time cells of delimited exports: '22.11.2026 15:05', '11/22/26 3:05 PM', '2026-11-22T15:05+01:00',
'22.11.2026 3:05 odp.', split into their parts before the day/month order is known, and the
one order under which a file's dates all make sense."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from coldchain.readers.common import fixed_zone, refuse
from coldchain.readers.dayperiods import CONFLICTING, half_of_day

ORDERS = ("DMY", "MDY", "YMD")
_ORDER_WORDS = {"DMY": "day first", "MDY": "month first", "YMD": "year first"}

# A clock, then maybe a day period: 'PM', 'p.m.', 'dop.', 'de la tarde' (words, dots and spaces;
# which words are day periods is for `half_of_day` to say). A lone 'Z' is the UTC designator.
_CLOCK = (r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?"
          r"(?:\s*(?!Z(?:$|[+-]))([^\W\d_](?:[^\W\d_]|[.\s])*?))?")
STAMP = re.compile(rf"^(\d{{1,4}})([./-])(\d{{1,2}})\2(\d{{1,4}})"  # a date, maybe a clock and an offset
                   rf"(?:(?:T|\s+){_CLOCK}\s*(Z|[+-]\d\d(?::?\d\d)?)?)?$")
_TIME_OF_DAY = re.compile(rf"^{_CLOCK}$")


@dataclass(frozen=True)
class Stamp:
    """A time cell split into its parts, before the day/month order is known."""

    text: str
    fields: tuple[str, str, str]
    separator: str
    clock: tuple[int, int, int, int, str]  # hour, minute, second, microsecond, 'A'/'P'/'?'/''
    offset: timezone | None
    marker: str = ""  # the day period as written ('odp.')


def time_place(cells: list[str]) -> tuple[int, int | None] | None:
    """Where a row's time is: (column, None) for a cell with date and time, (time column,
    date column) for a date cell followed by a time cell; None for a row without a time."""
    for i, cell in enumerate(cells):
        match = STAMP.match(cell.strip())
        if match and _known_marker(match.group(9)):
            if match.group(5) is not None:
                return i, None
            if i + 1 < len(cells) and (clock := _TIME_OF_DAY.match(cells[i + 1].strip())) and \
                    _known_marker(clock.group(5)):
                return i + 1, i
    return None


def _known_marker(marker: str | None) -> bool:
    """No day period, or a word some language uses as one (even if languages disagree on it:
    such a row is a time whose reading is refused, naming the word)."""
    return not marker or half_of_day(marker) is not None


def parse_stamp(text: str) -> Stamp | None:
    """The parts of a cell holding a date and a clock; None for anything else (a date alone,
    or a word after the clock that no language uses as a day period)."""
    match = STAMP.match(text)
    if not match or match.group(5) is None:
        return None
    a, separator, b, c, hour, minute, second, fraction, marker, offset = match.groups()
    half = half_of_day(marker) if marker else ""
    if half is None:
        return None
    micro = int((fraction or "0").ljust(6, "0"))
    clock = (int(hour), int(minute), int(second or 0), micro, half)
    return Stamp(text, (a, b, c), separator, clock, _offset(offset) if offset else None, marker or "")


def _offset(text: str) -> timezone:
    if text == "Z":
        return fixed_zone(timedelta(0))
    digits = text[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return fixed_zone(-offset if text[0] == "-" else offset)


def _day(stamp: Stamp, order: str) -> date | None:
    a, b, c = stamp.fields
    year, month, day = {"DMY": (c, b, a), "MDY": (c, a, b), "YMD": (a, b, c)}[order]
    if len(month) > 2 or len(day) > 2 or len(year) not in (2, 4):
        return None
    try:
        return date(int(year) + (2000 if len(year) == 2 else 0), int(month), int(day))
    except ValueError:
        return None


def resolve(stamp: Stamp, order: str) -> datetime | None:
    day = _day(stamp, order)
    if day is None:
        return None
    hour, minute, second, micro, half = stamp.clock
    if half:
        if half == CONFLICTING or not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "P" else 0)
    try:
        return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=stamp.offset)
    except ValueError:
        return None


def choose_order(stamps: list[tuple[int, Stamp]], first_date: date | None) -> str:
    """The day/month order the dates are in: the only one under which they are all valid
    dates, or the only one under which the date moves forward by less than four weeks each
    time it changes (under the wrong order, 11/10 to 12/10 jumps a month)."""
    if not stamps:
        return "YMD"
    valid = [order for order in ORDERS if all(_day(stamp, order) for _, stamp in stamps)]
    if not valid:
        line, stamp = next(((n, s) for n, s in stamps if not any(_day(s, order) for order in ORDERS)),
                           stamps[0])
        raise refuse(f"'{stamp.text}' and the other dates fit no single day/month/year order; give the "
                     "time format in a column mapping", line=line)
    if len(valid) == 1:
        return valid[0]
    if first_date is not None:
        matching = [order for order in valid if _day(stamps[0][1], order) == first_date]
        if len(matching) == 1:
            return matching[0]
    steady = [order for order in valid if _steady(stamps, order)]
    if len(steady) == 1:
        return steady[0]
    line, stamp = stamps[0]
    readings = " or ".join(f"{_ORDER_WORDS[order]} ({_day(stamp, order):%d %b %Y})" for order in valid)
    formats = " or ".join(f"'{_strptime_format(stamp, order)}'" for order in valid)
    raise refuse(f"dates like '{stamp.text}' could be read {readings}, and the file does not settle it; "
                 f"give the time format in a column mapping ({formats})", line=line)


def _steady(stamps: list[tuple[int, Stamp]], order: str) -> bool:
    changes = 0
    previous: date | None = None
    for _, stamp in stamps:
        day = _day(stamp, order)
        if day is None:
            return False
        if previous is not None and day != previous:
            changes += 1
            if not timedelta(0) < day - previous < timedelta(days=28):
                return False
        previous = day
    return changes > 0


def _strptime_format(stamp: Stamp, order: str) -> str:
    a, b, c = stamp.fields
    codes = {"DMY": ("%d", "%m", "%Y" if len(c) == 4 else "%y"),
             "MDY": ("%m", "%d", "%Y" if len(c) == 4 else "%y"),
             "YMD": ("%Y" if len(a) == 4 else "%y", "%m", "%d")}[order]
    clock = re.split(r"T|\s+", stamp.text, maxsplit=1)[-1]
    time_codes = "%H:%M:%S" if clock.count(":") == 2 else "%H:%M"
    if stamp.clock[4]:
        time_codes = time_codes.replace("%H", "%I") + " %p"
    return f"{stamp.separator.join(codes)} {time_codes}"
