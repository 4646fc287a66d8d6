"""How the platform writes identifiers and times for people. One formatter for times: pages,
JSON answers for pages, alarm summaries and refusal messages all say a time the same way,
in a zone that is always named."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from coi.core.identifiers import IdentifierError, UnitSerial


def zone_abbreviation(value: datetime, zone: str) -> str:
    """The zone's name at `value`: "EST", "CET", "UTC"; a zone without a letter abbreviation
    is named by its offset: "UTC+05:30"."""
    local = value.astimezone(ZoneInfo(zone))
    name = local.tzname() or ""
    if not name.isalpha():
        offset = local.strftime("%z")
        name = f"UTC{offset[:3]}:{offset[3:]}"
    return name


def local_text(value: datetime, zone: str = "UTC", *, date: bool = True, seconds: bool = False) -> str:
    """`value` in `zone` as plain text with the zone named: "2026-11-22 04:00 EST"; without
    the date and with seconds, "04:00:05 EST" (when a page's figures were taken)."""
    local = value.astimezone(ZoneInfo(zone))
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    day = f"{local:%Y-%m-%d} " if date else ""
    return f"{day}{clock} {zone_abbreviation(value, zone)}"


def unit_display(compact: str) -> str:
    """A unit's 16 data characters as people read them, grouped, with the check character."""
    try:
        return UnitSerial.from_compact(compact).display
    except IdentifierError:
        return compact


def coi_display(text: str) -> str:
    """A COI identifier's 14-character text as people read it: "A9998 26 000003 Z"."""
    return f"{text[:5]} {text[5:7]} {text[7:13]} {text[13:]}" if len(text) == 14 else text


def duration_words(duration: timedelta) -> str:
    """A span as people say it, in whole units rounded down (never more time than there is):
    "30 days", "1 day 4 h", "2 h 5 min", "45 min", "less than 1 min". Days drop the minutes
    (nobody counts them a month ahead); a negative span reads as its size (the caller says
    "overdue" or "late by")."""
    minutes = int(abs(duration.total_seconds()) // 60)
    if minutes == 0:
        return "less than 1 min" if duration else "0 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        day_words = f"{days} day" + ("s" if days != 1 else "")
        return f"{day_words} {hours} h" if hours else day_words
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def minutes_words(minutes: float | None) -> str:
    """A number of minutes (as rules and profiles store them) in words: 43200 -> "30 days"."""
    return "–" if minutes is None else duration_words(timedelta(minutes=minutes))


# How alarm summaries and refusal messages wrote times when they were written (local_text in
# UTC, coldchain.evaluate._when): "2026-11-22 06:17 UTC", seconds optional.
_UTC_TIME = re.compile(r"\b(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})(:\d{2})? UTC\b")


def localise_text(text: str, zone: str) -> str:
    """`text` with each time it wrote in UTC ("2026-11-22 06:17 UTC") said in `zone` with the
    zone named ("2026-11-22 01:17 EST"). The stored text stays as it was written (it is
    evidence); this is how a page shows it to a reader in another zone."""
    if zone == "UTC":
        return text

    def local(match: re.Match[str]) -> str:
        at = datetime.fromisoformat(f"{match[1]}T{match[2]}{match[3] or ''}+00:00")
        return local_text(at, zone, seconds=bool(match[3]))

    return _UTC_TIME.sub(local, text)
