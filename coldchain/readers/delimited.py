"""Delimited text exports (CSV, semicolon or tab separated): the generic reader, which the
vendor readers wrap with what their preambles tell (zone, logger, unit, date order).

Detection looks at the first 64 KB: the delimiter and the first row holding a time, the
header above it, the time column (one date-and-time cell, or a date cell followed by a time
cell), the temperature column, its unit, the decimal mark and the day/month order. Whatever
it cannot settle is refused with the candidates named, never guessed; a ColumnMapping in the
options says it instead. Data rows must line up with the header (see `cells`): a row with
more cells than it names is never read shifted.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from math import isfinite

from coldchain.model import ColumnMapping, Reading, ReadOptions, Source
from coldchain.readers.cells import Shape, filled, settle, shaped
from coldchain.readers.common import (
    Localiser,
    Notes,
    choose_logger,
    choose_zone,
    logger_key,
    make_source,
    note_interval,
    refuse,
    stated_zone,
    to_celsius,
    units_in,
    zone_name,
)
from coldchain.readers.dayperiods import CONFLICTING
from coldchain.readers.stamps import STAMP, choose_order, parse_stamp, resolve, time_place
from coldchain.readers.text import Text

DELIMITERS = (",", ";", "\t")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_TEMPERATURE_NAME = re.compile(r"temp|^t(?:\s*[\[(].*)?$", re.IGNORECASE)
_NOT_TEMPERATURE = re.compile(r"dew|heat|index|%", re.IGNORECASE)
_ZONE_LINE = re.compile(r"time\s*zone", re.IGNORECASE)
# A preamble line naming the logger: 'Logger serial: FT2L-123', 'Serial Number,123', 'S/N;123',
# 'Device ID = 123'. A bare 'ID' or 'Name' is not taken: it may name anything.
_SERIAL_NAME = (r"(?:(?:data\s*)?logger|device|sensor)\s*(?:serial(?:\s*(?:number|no\.?|#))?|s/?n|id)"
                r"|serial(?:\s*(?:number|no\.?|#))?|s/n|sn")
_SERIAL_LINE = re.compile(rf'^[\ufeff"\s]*(?:{_SERIAL_NAME})["\s]*[:=,;\t]["\s]*([^",;\t]*[^",;\t\s])',
                          re.IGNORECASE)


@dataclass(frozen=True)
class Hints:
    """What a vendor reader learnt from the file's preamble. Everything here is stated by
    the file itself (a caller's wishes go in ReadOptions)."""

    format: str = "generic-csv"
    logger_id: str | None = None
    zone: tzinfo | None = None
    untrusted_zone: str | None = None  # an ambiguous abbreviation such as 'CST'
    zone_source: str = "preamble"  # where the file states `zone`, for meta["zone_source"]
    unit: str | None = None  # "C" or "F"
    first_date: date | None = None  # the date of the first reading: settles the day/month order
    interval: timedelta | None = None
    clock_offset: timedelta | None = None
    header_line: int | None = None  # 1-based
    value_column: str | int | None = None
    unit_column: str | int | None = None
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class _Layout:
    delimiter: str
    data_line: int
    time_column: int
    date_column: int | None
    header: list[str] | None = None


def split_cells(line: str, delimiter: str) -> list[str]:
    if '"' in line:
        try:
            return next(csv.reader([line], delimiter=delimiter))
        except csv.Error:
            # The csv module will not split around a carriage return outside quotes (a line
            # ending of an old Mac, or damage); splitting by hand could misplace a value.
            raise refuse(f"a line holds a carriage return outside quotes, so its cells cannot be told "
                         f"apart (the line begins {line[:40]!r}): export the file again") from None
    return line.split(delimiter)


def read(text: Text, options: ReadOptions, hints: Hints = Hints()) -> Source:
    """Read a delimited export; `hints` carry what a vendor reader found in the preamble."""
    mapping = options.mapping
    layout = _find_layout(text.head, mapping, hints)
    header = layout.header
    head_rows = [(n, split_cells(line, layout.delimiter)) for n, line in enumerate(text.head, 1)
                 if n >= layout.data_line and line.strip()]
    shape = _shape(layout, head_rows)
    meta = dict(hints.meta)

    def name(column: int) -> str:
        if header and column < len(header) and header[column].strip():
            return header[column].strip()
        return f"{column + 1}"

    if mapping is not None:
        layout.time_column = _column(mapping.time, header, "time")
        layout.date_column = None if mapping.date is None else _column(mapping.date, header, "date")
        value_column = _column(mapping.value, header, "value")
    elif hints.value_column is not None:
        value_column = _column(hints.value_column, header, "value")
    else:
        value_column = _temperature_column(layout)
    unit_column = _unit_column(hints, header)
    rows = [(n, cells) for n, raw in head_rows
            if isinstance(cells := (shaped(raw, shape) if shape else raw), list)]
    decimal = _decimal(mapping, [cells[value_column].strip() for _, cells in rows
                                 if value_column < len(cells)])
    unit = None if unit_column is not None else _unit(header[value_column] if header and
                                                        value_column < len(header) else "", hints, mapping)
    parse = _time_parser(layout, rows, mapping, hints)

    used = {c for c in (layout.time_column, layout.date_column, value_column, unit_column) if c is not None}
    needed = max(used)
    stamps: list[datetime] = []
    for _, cells in rows:
        if len(cells) > needed and _number(cells[value_column].strip(), decimal) is not None:
            at = parse(cells)
            if isinstance(at, datetime):
                stamps.append(at)
            if len(stamps) >= 50:
                break
    on = stamps[0].date() if stamps else hints.first_date
    stated, where, untrusted = _stated_zone(layout, text.head, hints, on)
    offsets_per_row = bool(stamps) and stamps[0].tzinfo is not None
    if offsets_per_row:
        stated, where = stamps[0].tzinfo, "per-row offsets"
    zone = choose_zone(stated, options, meta, sample=stamps[0].replace(tzinfo=None) if stamps else None,
                       untrusted=None if stated else untrusted, where=where)
    logger_id = choose_logger(hints.logger_id or _serial_in_preamble(text.head, layout),
                              options, meta)
    interval = note_interval(hints.interval, stamps, meta)
    if text.complete and not stamps:
        meta["no_readings"] = "the file has a header but no readings"
    meta["unit"] = unit or "per row"
    if decimal == ",":
        meta["decimal"] = "comma"

    to_utc = Localiser(zone)
    time_name = name(layout.time_column)
    value_name = name(value_column)

    def readings(notes: Notes) -> Iterator[Reading]:
        for number, line in text.lines():
            if number < layout.data_line:
                continue
            cells = split_cells(line, layout.delimiter)
            if shape is not None:
                fitted = shaped(cells, shape)
                if isinstance(fitted, str):
                    notes.problem(number, None, fitted)
                    continue
                cells = fitted
            if len(cells) <= needed:
                if not line.replace(layout.delimiter, "").strip():
                    continue  # a blank row
                notes.problem(number, None, f"the row has {len(cells)} cells; the temperature was expected "
                                            f"in column {value_column + 1} ('{value_name}')")
                continue
            raw = cells[value_column].strip()
            if not raw:
                if not line.replace(layout.delimiter, "").strip():
                    continue  # a blank row
                events = [f"{name(i)}: {cell.strip()}" for i, cell in enumerate(cells)
                          if i not in used and cell.strip() and _number(cell.strip(), decimal) is None]
                notes.skip(number, value_name, "no temperature on this row" +
                           (f" (event {'; '.join(events)})" if events else ""))
                continue
            value = _number(raw, decimal)
            if value is None:
                notes.problem(number, value_name, f"'{raw}' is not a temperature (a number like "
                                                  f"{'5,1' if decimal == ',' else '5.1'} was expected)")
                continue
            row_unit = unit
            if unit_column is not None:
                row_unit = cells[unit_column].strip().upper()
                if row_unit not in ("C", "F"):
                    notes.problem(number, name(unit_column), f"unit '{cells[unit_column].strip()}' is "
                                                             "neither C nor F")
                    continue
            at = parse(cells)
            if isinstance(at, str):
                notes.problem(number, time_name, at)
                continue
            if offsets_per_row and at.tzinfo is None:
                notes.problem(number, time_name, "the time has no UTC offset, unlike the other rows")
                continue
            utc = to_utc(at)
            if isinstance(utc, str):
                notes.problem(number, time_name, utc)
                continue
            yield Reading(utc, to_celsius(value, row_unit or "C"), logger_id, number)

    zone_label = "the UTC offset on each row" if offsets_per_row else zone_name(zone)
    return make_source(format=hints.format, logger_id=logger_id, zone=zone_label, interval=interval,
                       meta=meta, rows=readings, clock_offset=hints.clock_offset)


# ------------------------------------------------------------------ layout

def _shape(layout: _Layout, head_rows: list[tuple[int, list[str]]]) -> Shape | None:
    """How the data rows line up with the header (None without a header: nothing to check
    against). Where a decimal comma split numbers before the time column, the time
    column's position is moved to where it is once they are joined."""
    if not layout.header:
        return None
    timed = [(n, cells) for n, cells in head_rows if time_place(cells) is not None]
    shape = settle(timed, filled(layout.header), layout.delimiter)
    time_column, date_column = layout.time_column, layout.date_column
    layout.time_column -= sum(joined_at < time_column for joined_at in shape.joins)
    if date_column is not None:
        layout.date_column = date_column - sum(joined_at < date_column for joined_at in shape.joins)
    return shape


def _find_layout(head: list[str], mapping: ColumnMapping | None, hints: Hints) -> _Layout:
    delimiters = (mapping.delimiter,) if mapping and mapping.delimiter else DELIMITERS
    given_start = mapping.first_data_line if mapping else None
    start = given_start if given_start and given_start <= len(head) else 1
    best: _Layout | None = None
    best_count = 0
    for delimiter in delimiters:
        places: Counter[tuple[int, int | None]] = Counter()
        first: dict[tuple[int, int | None], int] = {}
        for number, line in enumerate(head[start - 1:], start):
            place = time_place(split_cells(line, delimiter))
            if place is not None:
                places[place] += 1
                first.setdefault(place, number)
        if places:
            place, count = places.most_common(1)[0]
            if count > best_count:
                best, best_count = _Layout(delimiter, first[place], place[0], place[1]), count
    if best is None:
        if mapping and mapping.delimiter and given_start:
            best = _Layout(mapping.delimiter, given_start, 0, None)
        else:
            raise refuse("no row with a date and time was found in the first 64 KB, so this is not a "
                         "logger export this reader knows; give a column mapping (delimiter, first data "
                         "line, time and value columns, time format)")
    if given_start:
        best.data_line = given_start
    rows = [split_cells(line, best.delimiter) for line in head]
    if hints.header_line is not None and hints.header_line <= len(rows):
        best.header = [cell.strip() for cell in rows[hints.header_line - 1]]
    else:
        best.header = _header_above(rows, best.data_line)
    return best


def _header_above(rows: list[list[str]], data_line: int) -> list[str] | None:
    """The nearest row above the data with two or more names and no numbers or times in it
    (rows with fewer than two filled cells, like section markers, are passed over)."""
    for index in range(min(data_line - 2, len(rows) - 1), max(-1, data_line - 8), -1):
        cells = [cell.strip() for cell in rows[index]]
        filled = [cell for cell in cells if cell]
        if len(filled) < 2:
            continue
        if any(_NUMBER.match(cell.replace(",", ".")) or STAMP.match(cell) for cell in filled):
            return None
        return cells
    return None


def _column(which: str | int, header: list[str] | None, role: str) -> int:
    if isinstance(which, int):
        return which
    names = [cell.strip().lower() for cell in header or []]
    if which.strip().lower() in names:
        return names.index(which.strip().lower())
    found = ", ".join(f"'{cell}'" for cell in header or [] if cell) or "none (no header row found)"
    raise refuse(f"the {role} column '{which}' is not in the file's header; its columns are {found}")


def _temperature_column(layout: _Layout) -> int:
    header = layout.header
    taken = {layout.time_column, layout.date_column}
    if not header:
        raise refuse("the file has no header row naming a temperature column; give a column mapping "
                     "saying which column holds the temperature")
    named = [i for i, cell in enumerate(header) if i not in taken and _TEMPERATURE_NAME.search(cell)
             and not _NOT_TEMPERATURE.search(cell)]
    if not named:
        named = [i for i, cell in enumerate(header) if i not in taken and units_in(cell)
                 and not _NOT_TEMPERATURE.search(cell)]
    if len(named) == 1:
        return named[0]
    listed = ", ".join(f"'{header[i]}'" for i in (named or [i for i in range(len(header)) if i not in taken]))
    if named:
        raise refuse(f"several columns could be the temperature: {listed}; give a column mapping saying "
                     "which one")
    raise refuse(f"no column is named as a temperature (columns: {listed}); give a column mapping saying "
                 "which one holds it")


def _unit_column(hints: Hints, header: list[str] | None) -> int | None:
    if hints.unit_column is not None:
        return _column(hints.unit_column, header, "unit")
    names = [cell.strip().lower() for cell in header or []]
    for unit_name in ("unit", "units"):
        if unit_name in names:
            return names.index(unit_name)
    return None


def _unit(value_header: str, hints: Hints, mapping: ColumnMapping | None) -> str:
    stated = units_in(value_header)
    if hints.unit:
        stated.add(hints.unit)
    if len(stated) > 1:
        raise refuse(f"the file states the temperature both in °C and °F ('{value_header}'); give a "
                     "column mapping with the unit")
    wanted = mapping.unit.upper() if mapping and mapping.unit else None
    if wanted not in (None, "C", "F"):
        raise refuse(f"the mapping's unit '{wanted}' is neither C nor F")
    if stated:
        unit = stated.pop()
        if wanted and wanted != unit:
            raise refuse(f"the file states temperatures in °{unit} but the mapping says °{wanted}; correct "
                         "the mapping")
        return unit
    if wanted:
        return wanted
    named = f" (its column is headed '{value_header}')" if value_header.strip() else ""
    raise refuse(f"the file does not say whether temperatures are in °C or °F{named}; give the unit in a "
                 "column mapping")


def _decimal(mapping: ColumnMapping | None, cells: list[str]) -> str:
    if mapping and mapping.decimal:
        return mapping.decimal
    comma = any(re.match(r"^[+-]?\d*,\d+$", cell) for cell in cells)
    dot = any(re.match(r"^[+-]?\d*\.\d+$", cell) for cell in cells)
    if comma and dot:
        raise refuse("the temperature column uses both '.' and ',' as the decimal mark; give the decimal "
                      "mark in a column mapping")
    return "," if comma else "."


def _number(cell: str, decimal: str) -> float | None:
    """A plain decimal number ('5.1', '-0,5' with a decimal comma); not '1e3', 'nan' or '1_0'."""
    if decimal == ",":
        if "." in cell:
            return None
        cell = cell.replace(",", ".")
    try:
        value = float(cell)
    except ValueError:
        return None
    if "e" in cell or "E" in cell or "_" in cell or not isfinite(value):
        return None
    return value


def _stated_zone(layout: _Layout, head: list[str], hints: Hints,
                 on: date | None) -> tuple[tzinfo | None, str, str | None]:
    """The zone the file states, where it states it, and an ambiguous abbreviation it gives
    instead. The time column's header comes first ('Date-Time (CEST)', 'Time, GMT+02:00'):
    it is what the times are written in; then the vendor reader's preamble, then a
    'Time zone' line of a generic preamble."""
    untrusted = hints.untrusted_zone
    header = layout.header or []
    for column in (layout.time_column, layout.date_column):
        if column is not None and column < len(header):
            zone, ambiguous = stated_zone(header[column], on)
            if zone is not None:
                return zone, f"header '{header[column]}'", None
            untrusted = untrusted or ambiguous
    if hints.zone is not None:
        return hints.zone, hints.zone_source, None
    for line in head[:layout.data_line - 1]:
        if _ZONE_LINE.search(line):
            zone, ambiguous = stated_zone(line, on)
            if zone is not None:
                return zone, "preamble", None
            untrusted = untrusted or ambiguous
    return None, "", untrusted


def _serial_in_preamble(head: list[str], layout: _Layout) -> str | None:
    """The logger serial a generic export's preamble states, if it states one. The column
    header is not preamble: a first column 'Serial' names what each row holds."""
    serials: dict[str, str] = {}
    for line in head[:layout.data_line - 1]:
        if layout.header and [cell.strip() for cell in split_cells(line, layout.delimiter)] == layout.header:
            continue
        match = _SERIAL_LINE.match(line)
        if match:
            serials.setdefault(logger_key(match.group(1)), match.group(1))
    if len(serials) > 1:
        raise refuse(f"the file names several loggers ({', '.join(serials.values())}); export one logger "
                     "per file")
    return next(iter(serials.values()), None)


# ------------------------------------------------------------------ times

Parser = Callable[[list[str]], "datetime | str"]


def _time_parser(layout: _Layout, rows: list[tuple[int, list[str]]], mapping: ColumnMapping | None,
                 hints: Hints) -> Parser:
    """A function from a row's cells to its local (or offset-aware) time, or why not."""
    time_column, date_column = layout.time_column, layout.date_column
    needed = max(time_column, date_column if date_column is not None else -1)

    def joined(cells: list[str]) -> str:
        if date_column is None:
            return cells[time_column].strip()
        return f"{cells[date_column].strip()} {cells[time_column].strip()}"

    if mapping and mapping.time_format:
        time_format = mapping.time_format

        def by_format(cells: list[str]) -> datetime | str:
            text = joined(cells)
            try:
                return datetime.strptime(text, time_format)  # noqa: DTZ007 - the zone is applied after
            except ValueError:
                return f"'{text}' does not match the time format '{time_format}'"
        return by_format

    stamps = [(n, stamp) for n, cells in rows if len(cells) > needed
              if (stamp := parse_stamp(joined(cells))) is not None]
    conflicting = next(((n, s) for n, s in stamps if s.clock[4] == CONFLICTING), None)
    if conflicting is not None and not (mapping and mapping.time_format):
        line, stamp = conflicting
        raise refuse(f"the day period '{stamp.marker}' in '{stamp.text}' means before noon in some languages "
                     "and after noon in others, so the time cannot be told; give the time format in a column "
                     "mapping", line=line)
    order = mapping.order if mapping and mapping.order else choose_order(stamps, hints.first_date)
    example = stamps[0][1].text if stamps else ""

    def by_order(cells: list[str]) -> datetime | str:
        text = joined(cells)
        if order == "YMD" and len(text) > 10:
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                pass
        stamp = parse_stamp(text)
        if stamp is not None and stamp.clock[4] == CONFLICTING:
            return (f"the day period '{stamp.marker}' in '{text}' means before noon in some languages and "
                    "after noon in others; give the time format in a column mapping (24-hour times are "
                    "safest)")
        at = resolve(stamp, order) if stamp else None
        return at if at is not None else f"'{text}' is not a time like '{example}'"
    return by_order
