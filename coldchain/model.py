"""The plain values the cold-chain library passes around: readings in, problems out.

Everything here is framework-free. Times are aware datetimes in UTC; temperatures are
degrees Celsius as floats."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo


@dataclass(frozen=True, slots=True)
class Reading:
    """One temperature reading: when (UTC), how warm (C), from which logger, and where in the
    source it was read (1-based line of the file, or the element's position for documents
    that have no lines)."""

    at: datetime
    celsius: float
    logger_id: str
    line: int


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One day of a daily-summary report (a logger or export tool that keeps the day's
    extremes and time in alarm instead of single readings). `day` is the date as the file
    writes it, in the logger's local time; temperatures are °C; durations are minutes, each
    as the file states it (None: the file does not say). `minutes_in_alarm` is a total the
    file gives without a side (or above and below together). `low_limit` / `high_limit` are
    the file's own alarm limits (°C) where it states them; `line` is the row's line."""

    day: date
    min_c: float | None
    max_c: float | None
    minutes_above: float | None
    minutes_below: float | None
    minutes_in_alarm: float | None
    line: int
    low_limit: float | None = None
    high_limit: float | None = None

    @property
    def minutes_out(self) -> float | None:
        """The day's time out of range as the file states it: its alarm total, else above
        plus below; None when it states no duration at all."""
        if self.minutes_in_alarm is not None:
            return self.minutes_in_alarm
        if self.minutes_above is None and self.minutes_below is None:
            return None
        return (self.minutes_above or 0.0) + (self.minutes_below or 0.0)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a reader or the normaliser could not take as it stands: where (line, column
    name or number as text) and why, in words a courier can act on. `where` says the place in
    a document that has no lines ('event 3, sensor report 2'); `line` then still orders and
    counts (the position among all entries)."""

    line: int | None
    column: str | None
    why: str
    where: str | None = None

    def __str__(self) -> str:
        where = []
        if self.where:
            where.append(self.where)
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.why}" if where else self.why


class Unreadable(Exception):
    """The whole file is refused: nothing from it may be stored. `problems` says where and
    why (at least one)."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Says how to read a delimited file when detection is not sure. Columns are named by
    their header text or by 0-based position. `time_format` is a `strptime` format for the
    time column (or for date and time joined by one space when `date` is given)."""

    time: str | int
    value: str | int
    date: str | int | None = None
    unit: str | None = None  # "C" or "F": the unit of the value column
    order: str | None = None  # "DMY", "MDY" or "YMD": the date order, when the dates leave it open
    time_format: str | None = None
    delimiter: str | None = None
    decimal: str | None = None  # "." or ","
    first_data_line: int | None = None  # 1-based


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What the caller knows about the logger: its zone (used only when the file states
    none), its id (used when the file names none), and a column mapping."""

    zone: tzinfo | None = None
    logger_id: str | None = None
    mapping: ColumnMapping | None = None


@dataclass(slots=True)
class Source:
    """A file being read. `readings` is a one-shot iterator; `skipped` fills while it is
    consumed (rows that are not readings: event markers, blank values, with why), and
    `problems` holds rows that could not be read. A reader raises `Unreadable` for anything
    that makes the whole file untrustworthy."""

    format: str  # e.g. "hobo-csv", "berlinger-fridgetag", "epcis-jsonld", "generic-csv"
    logger_id: str | None
    zone: str | None  # what the times were read in: "UTC", "UTC+01:00", "Europe/Berlin"
    interval: timedelta | None  # the logging interval, where the file states or shows it
    readings: Iterator[Reading]
    meta: dict[str, str] = field(default_factory=dict)  # header facts worth showing
    skipped: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    clock_offset: timedelta | None = None  # logger clock minus true time, if the file says
    # A daily-summary report: its days (in file order), and no readings. None for files of
    # readings, so readers of readings never set it.
    days: list[DaySummary] | None = None
