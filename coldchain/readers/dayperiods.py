"""The day-period markers of 12-hour clocks in every language CLDR knows ('AM', 'p.m.', Czech
'dop.'/'odp.', German 'vorm.'/'nachm.', Japanese '午前'), read from Babel's copy of CLDR rather
than a hand-written list, which would always miss the next vendor's language.

A marker is taken only when it means the same half of the day in every locale that uses it:
'a' is 'am' in some languages and 'pm' in others, so it is refused rather than guessed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache

AM, PM, CONFLICTING = "A", "P", "?"
_NOON = 12 * 3600
_DAY = 24 * 3600


def marker_key(marker: str) -> str:
    """A marker as it is compared: case, white space (CLDR writes 'a. m.' with a narrow
    no-break space) and dots ignored, so 'P.M.', 'pm' and 'p. m.' are one marker."""
    return "".join(marker.casefold().split()).replace(".", "")


def half_of_day(marker: str) -> str | None:
    """AM or PM for a marker that means one half of the day in every locale using it,
    CONFLICTING for one that means either, "" for a word for hours after a 24-hour clock, None
    for a word no locale uses as a day period."""
    key = marker_key(marker)
    if key in ("am", "pm"):  # the common case, without loading every locale
        return AM if key == "am" else PM
    if key in HOURS:  # '09:00 h', '14:30 Uhr': a 24-hour clock naming its unit, no day period
        return ""
    return _markers().get(key)


# Words written after a 24-hour clock for "o'clock" (h, hrs, Uhr, hod.): not day periods, though
# CLDR's narrow forms make 'h' one in some language.
HOURS = frozenset({"h", "hr", "hrs", "uhr", "hod"})


@cache
def _markers() -> dict[str, str]:
    """Marker key to AM, PM or CONFLICTING over all locales Babel ships (built once: loading
    them takes about a second)."""
    from babel import Locale, localedata  # here: only files with unusual markers pay for it

    halves: dict[str, set[str]] = {}
    for identifier in localedata.locale_identifiers():
        try:
            locale = Locale.parse(identifier)
            periods, rules = locale.day_periods, locale.day_period_rules
        except (ValueError, LookupError):  # a locale Babel lists but cannot load: not ours to fix
            continue
        for marker, half in _locale_markers(periods, rules.get(None, {}) if rules else {}):
            halves.setdefault(marker_key(marker), set()).add(half)
    return {key: found.pop() if len(found) == 1 else CONFLICTING for key, found in halves.items() if key}


def _locale_markers(periods: Mapping[str, Mapping[str, Mapping[str, str]]],
                    rules: Mapping[str, Iterable[Mapping[str, int]]]) -> Iterable[tuple[str, str]]:
    """(marker, AM or PM) for one locale: its 'am' and 'pm' names in every context and width,
    and its named periods ('vorm.', 'nachm.') whose hours lie wholly before or after noon.
    Periods at one instant (midnight, noon) or crossing noon or midnight are left out."""
    for context in periods.values():
        for names in context.values():
            for period, name in names.items():
                half = {"am": AM, "pm": PM}.get(period) or _half_of_rule(rules.get(period, ()))
                if half:
                    yield name, half


def _half_of_rule(ranges: Iterable[Mapping[str, int]]) -> str | None:
    halves = set()
    for span in ranges:
        start, end = span.get("from"), span.get("before")
        if start is None or end is None or end <= start:
            return None  # 'at' an instant, or wrapping round midnight
        halves.add(AM if end <= _NOON else PM if start >= _NOON and end <= _DAY else None)
    return halves.pop() if len(halves) == 1 else None
