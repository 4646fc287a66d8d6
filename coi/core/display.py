"""How the platform writes identifiers and times for people. One formatter for times: pages,
JSON answers for pages, alarm summaries and refusal messages all say a time the same way,
in a zone that is always named."""

from __future__ import annotations

from datetime import datetime
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
