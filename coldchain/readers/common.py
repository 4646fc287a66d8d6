"""What the readers share: building a Source whose readings are read lazily, the bounded
lists of skipped rows and problems, time zones, units, logger ids and the logging interval."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from coldchain.model import Problem, Reading, ReadOptions, Source, Unreadable

KEEP = 100  # skipped rows and problems kept in full; the rest are counted in meta

RowReader = Callable[["Notes"], Iterator[Reading]]


class Notes:
    """Fills a Source's `skipped` and `problems` as rows are met: the first 100 of each are
    kept, all are counted in meta ("skipped_count", "problem_count")."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.skipped = 0
        self.problems = 0
        source.meta["skipped_count"] = "0"
        source.meta["problem_count"] = "0"

    def skip(self, line: int | None, column: str | None, why: str, where: str | None = None) -> None:
        self.skipped += 1
        if len(self.source.skipped) < KEEP:
            self.source.skipped.append(Problem(line, column, why, where))
        self.source.meta["skipped_count"] = str(self.skipped)

    def problem(self, line: int | None, column: str | None, why: str, where: str | None = None) -> None:
        self.problems += 1
        if len(self.source.problems) < KEEP:
            self.source.problems.append(Problem(line, column, why, where))
        self.source.meta["problem_count"] = str(self.problems)

    def why_no_readings(self, entry: str = "row") -> str | None:
        """Why a file that yielded no readings yielded none, from what its rows were; None
        when it had no rows at all (the reader knows better then)."""
        first_problem = self.source.problems[0] if self.source.problems else None
        first_skipped = self.source.skipped[0] if self.source.skipped else None
        if first_problem and not first_skipped:
            return (f"the file holds no readings: every {entry} failed to read ({self.problems:,}); the "
                    f"first: {first_problem}")
        if first_skipped and not first_problem:
            return (f"the file holds no readings: none of its {self.skipped:,} {entry}(s) holds a "
                    f"temperature; the first: {first_skipped}")
        if first_problem and first_skipped:
            return (f"the file holds no readings: {self.skipped:,} {entry}(s) hold no temperature and "
                    f"{self.problems:,} failed to read; the first failure: {first_problem}")
        return None


def make_source(*, format: str, logger_id: str | None, zone: str | None, interval: timedelta | None,
                meta: dict[str, str], rows: RowReader, clock_offset: timedelta | None = None) -> Source:
    """A Source whose readings come from `rows(notes)`, read only as they are consumed; when
    they run out, meta["reading_count"] says how many there were."""
    source = Source(format=format, logger_id=logger_id, zone=zone, interval=interval, readings=iter(()),
                    meta=meta, clock_offset=clock_offset)
    notes = Notes(source)
    source.readings = _counted(source, notes, rows(notes))
    return source


def _counted(source: Source, notes: Notes, readings: Iterator[Reading]) -> Iterator[Reading]:
    """The readings, counted; when there were none, meta["no_readings"] says why (what the
    rows were, else what the reader said, else that there were no rows)."""
    count = 0
    for reading in readings:
        count += 1
        yield reading
    source.meta["reading_count"] = str(count)
    if not count:
        entry = "sensor report" if source.format.startswith("epcis") else "row"
        source.meta["no_readings"] = notes.why_no_readings(entry) or source.meta.get("no_readings") or \
            "the file holds no readings: it has no data rows"


def refuse(why: str, line: int | None = None, column: str | None = None) -> Unreadable:
    return Unreadable(Problem(line, column, why))


# ------------------------------------------------------------------ logger

_SERIAL_SEPARATORS = re.compile(r"[\s_-]+")


def logger_key(serial: str) -> str:
    """A logger serial as it is compared: case, white space, hyphens and underscores ignored.
    Vendors print one serial several ways: EnvLogger writes '0434 EF00 4B29 0A' in the file
    and '0434_EF00_4B29_0A' in its name, and people type it '0434-EF00-4B29-0A'. Other marks
    (dots, colons, slashes) are kept: in an EPC URN they separate numbers."""
    return _SERIAL_SEPARATORS.sub("", serial).casefold()


def choose_logger(stated: str | None, options: ReadOptions, meta: dict[str, str]) -> str:
    """The file's logger id wins; the caller's is used when the file names none."""
    if stated:
        if options.logger_id and logger_key(options.logger_id) != logger_key(stated):
            meta["logger_note"] = (f"the file names logger {stated}; the given {options.logger_id} "
                                   "was not used")
        return stated
    if options.logger_id:
        return options.logger_id
    raise refuse("the file names no logger; say which logger it is from")


# ------------------------------------------------------------------ time zones

_STATED_OFFSET = re.compile(r"\b(?:GMT|UTC)(?:\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?)?(?![\w+-])")


def fixed_zone(offset: timedelta) -> timezone:
    return UTC if not offset else timezone(offset, offset_name(offset))


def offset_name(offset: timedelta) -> str:
    if not offset:
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def stated_offset(text: str) -> timezone | None:
    """A zone written as 'GMT+01:00', 'UTC+0000', 'GMT-5' or plain 'UTC' / 'GMT'."""
    match = _STATED_OFFSET.search(text)
    if not match:
        return None
    sign, hours, minutes = match.groups()
    if not sign:
        return UTC
    offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
    return fixed_zone(-offset if sign == "-" else offset)


_ABBREVIATION = re.compile(r"(?<![A-Za-z])([A-Z]{3,5})(?![A-Za-z])")
_SAMPLE_DAYS = (1, 15)  # two days a month find every abbreviation a zone uses in a year


def stated_zone(text: str, on: date | None) -> tuple[timezone | None, str | None]:
    """The zone a header or preamble text states, as (zone, None): an offset ('GMT+02:00',
    'UTC') or an abbreviation that means one UTC offset wherever it is used in the year of
    `on` ('CEST', 'EDT'); or (None, abbreviation) for one that means several ('CST' is
    Chicago, Havana and Shanghai), which is not trusted; (None, None) when it states none.
    Abbreviations come from the machine's zone database, not a hand-kept list."""
    offset = stated_offset(text)
    if offset is not None:
        return offset, None
    for abbreviation in _ABBREVIATION.findall(text):
        offsets = abbreviation_offsets(on.year if on else _REFERENCE_YEAR).get(abbreviation)
        if offsets and len(offsets) == 1:
            return fixed_zone(next(iter(offsets))), None
        if offsets:
            return None, abbreviation
    return None, None


_REFERENCE_YEAR = 2025  # the rules used when a file gives no date to look them up for


@cache
def abbreviation_offsets(year: int) -> dict[str, frozenset[timedelta]]:
    """Every zone abbreviation in use in `year` and the UTC offsets it stands for there."""
    found: dict[str, set[timedelta]] = {}
    for key in available_timezones():
        try:
            zone = ZoneInfo(key)
        except (ValueError, OSError):  # a name the database lists but cannot load
            continue
        for month in range(1, 13):
            for day in _SAMPLE_DAYS:
                at = datetime(year, month, day, 12, tzinfo=zone)
                name, offset = at.tzname(), at.utcoffset()
                if name and offset is not None and name[0] not in "+-" and not name.isdigit():
                    found.setdefault(name, set()).add(offset)
    return {name: frozenset(offsets) for name, offsets in found.items()}


def zone_name(zone: tzinfo) -> str:
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return key
    if isinstance(zone, timezone):
        return offset_name(zone.utcoffset(None))
    return str(zone)


def choose_zone(stated: tzinfo | None, options: ReadOptions, meta: dict[str, str], *,
                sample: datetime | None = None, untrusted: str | None = None,
                where: str = "the file") -> tzinfo:
    """The zone the file states wins; the configured one is used when it states none. `sample`
    (a local time from the file) is where a disagreement between the two is looked for;
    `untrusted` is an ambiguous abbreviation the file gives instead of a zone; `where` says
    where the file states its zone ("header 'Time (CEST)'", "preamble"), for meta
    ["zone_source"]. A disagreement is noted in meta["zone_conflict"] so that the app can flag
    it: the logger may have been set up in another zone than the one it is registered in."""
    if stated is not None:
        meta["zone_source"] = where
        if options.zone is not None and sample is not None and \
                options.zone.utcoffset(sample) != stated.utcoffset(sample):
            meta["zone_note"] = (f"the file states {zone_name(stated)}; the configured zone "
                                 f"{zone_name(options.zone)} was not used")
            configured = options.zone.utcoffset(sample) or timedelta(0)
            meta["zone_conflict"] = (f"the file states {zone_name(stated)} ({where}), but the configured "
                                     f"zone {zone_name(options.zone)} was {offset_name(configured)} at the "
                                     f"first reading ({sample:%Y-%m-%d %H:%M}); the file's zone was used")
        return stated
    if options.zone is not None:
        meta["zone_source"] = "configured"
        if untrusted:
            meta["zone_note"] = (f"the file gives its zone only as '{untrusted}', which is ambiguous; "
                                 f"times were read in the configured zone {zone_name(options.zone)}")
        return options.zone
    if untrusted:
        raise refuse(f"the file gives its time zone only as '{untrusted}', an abbreviation that names "
                     "several zones, so it is not trusted: the file states no usable time zone; "
                     "configure the logger's zone")
    raise refuse("the file states no time zone; configure the logger's zone")


_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - the counterpart of local wall-clock times
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# IANA names of UTC itself: no transitions ever, so local time is UTC time.
UTC_KEYS = frozenset({"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu",
                      "Etc/Zulu", "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "GMT+0", "Etc/GMT+0", "GMT-0",
                      "Etc/GMT-0", "Greenwich", "Etc/Greenwich"})


class Localiser:
    """Local wall-clock times to UTC in one zone. A time that does not exist (clocks went
    forward) or happened twice (clocks went back) gives the reason instead of a guess.
    (UTC is reached by arithmetic from the epoch: much faster than replace + astimezone.)"""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        if isinstance(zone, timezone):
            self.fixed_base: datetime | None = _UTC_EPOCH - zone.utcoffset(None)
        elif getattr(zone, "key", None) in UTC_KEYS:  # a ZoneInfo for UTC: same arithmetic
            self.fixed_base = _UTC_EPOCH
        else:
            self.fixed_base = None

    def __call__(self, local: datetime) -> datetime | str:
        if local.tzinfo is not None:
            return local.astimezone(UTC)
        if self.fixed_base is not None:
            return (local - _NAIVE_EPOCH) + self.fixed_base
        offset = local.replace(tzinfo=self.zone).utcoffset()
        if offset is not None and offset == local.replace(tzinfo=self.zone, fold=1).utcoffset():
            return (local - _NAIVE_EPOCH) + (_UTC_EPOCH - offset)
        first = local.replace(tzinfo=self.zone)
        shown = local.isoformat(sep=" ")
        if first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != local:
            return (f"the local time {shown} does not exist in {zone_name(self.zone)} (the clocks went "
                    "forward then); the reading cannot be placed in time")
        return (f"the local time {shown} happened twice in {zone_name(self.zone)} (the clocks went back "
                "then) and the file does not say which; the reading cannot be placed in time")


def local_to_utc(local: datetime, zone: tzinfo) -> datetime | str:
    """The UTC time of `local`, a wall-clock time in `zone` (as a person types it or a logger
    shows it); an aware `local` is converted as it stands. Never guesses: for a time that
    does not exist in `zone` (the clocks went forward) or happened twice there (they went
    back), it returns the reason instead, a lower-case phrase to quote in a message.

    The public form of `Localiser` for one time at a time; readers keep a `Localiser` per
    file because it does the per-zone work once."""
    return Localiser(zone)(local)


# ------------------------------------------------------------------ units

# '°C', 'ºC' (the masculine ordinal, which Spanish and Portuguese keyboards put where the
# degree sign is), '˚C', 'degC', 'deg C', 'degrees F'; the one-character signs '℃' and '℉'; and
# 'oC' for a degree sign typed as a letter, only as a word of its own ('[oC]', 'Temp oC') and
# in capitals, so that 'of' in 'Temperature of probe' is no Fahrenheit.
_DEGREE_UNIT = re.compile(r"(?:[°º˚]|\bdeg(?:rees?)?\.?)\s*([CF])(?![a-z])", re.IGNORECASE)
_LETTER_O_UNIT = re.compile(r"(?<![^\s(\[/])o([CF])(?=$|[\s)\]/,;])")
_SIGN_UNIT = {"℃": "C", "℉": "F"}
_WORD_UNIT = re.compile(r"\b(celsius|fahrenheit)\b", re.IGNORECASE)
_BARE_UNIT = re.compile(r"(?:^|[\s,(\[/])([CF])(?=$|[\s,)\]/])")


def units_in(text: str) -> set[str]:
    """The temperature units ("C", "F") a header or preamble text names: '°F', 'degC',
    '[oC]', '℃', 'Celsius', or a lone C or F ('Temp, F', 'Value (C)')."""
    found = {m.group(1).upper() for m in _DEGREE_UNIT.finditer(text)}
    found |= {m.group(1) for m in _LETTER_O_UNIT.finditer(text)}
    found |= {unit for sign, unit in _SIGN_UNIT.items() if sign in text}
    found |= {m.group(1)[0].upper() for m in _WORD_UNIT.finditer(text)}
    if not found:
        found = {m.group(1) for m in _BARE_UNIT.finditer(text)}
    return found


def to_celsius(value: float, unit: str) -> float:
    if unit == "F":
        return (value - 32) * 5 / 9
    if unit == "K":
        return value - 273.15
    return value


# ------------------------------------------------------------------ interval

def usual_step(times: Sequence[datetime]) -> timedelta | None:
    """The most common gap between consecutive times (the first 50 are enough)."""
    steps = Counter(b - a for a, b in zip(times[:50], times[1:50], strict=False) if b > a)
    return steps.most_common(1)[0][0] if steps else None


def note_interval(stated: timedelta | None, seen: Sequence[datetime],
                  meta: dict[str, str]) -> timedelta | None:
    """The stated interval, else the one the readings show; a disagreement goes into meta."""
    usual = usual_step(seen)
    if stated is None:
        return usual
    if usual is not None and usual != stated:
        meta["interval_note"] = f"the file states readings every {stated}, but they are {usual} apart"
    return stated
