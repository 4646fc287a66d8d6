"""Template helpers: times in local time with their zone, identifiers with check characters."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, g
from markupsafe import Markup, escape

from coi import access
from coi.identifiers import IdentifierError, UnitSerial


def local_time(value: datetime | None, zone: str | None = None) -> Markup:
    """`value` (UTC) in `zone` (default: the reader's home site), with its zone named, inside
    a <time> element that carries the exact UTC instant."""
    if value is None:
        return Markup("")
    tz = ZoneInfo(zone or (g.actor.timezone if g.get("actor") else "UTC"))
    text = local_text(value, tz.key)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        value.isoformat(), f"{value:%Y-%m-%d %H:%M:%S} UTC ({tz.key})", escape(text))


def local_text(value: datetime, zone: str) -> str:
    """`value` in `zone` as plain text with the zone named: "2026-11-22 04:00 EST" (a zone
    without a letter abbreviation is named by its offset: "UTC+05:30")."""
    local = value.astimezone(ZoneInfo(zone))
    name = local.tzname() or ""
    if not name.isalpha():
        offset = local.strftime("%z")
        name = f"UTC{offset[:3]}:{offset[3:]}"
    return f"{local:%Y-%m-%d %H:%M} {name}"


def install(app: Flask) -> None:
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(json.loads, "fromjson")
    app.jinja_env.globals["allowed"] = lambda name, site=None: access.allowed(
        g.get("actor"), name, site)
    app.jinja_env.globals["app_version"] = app.config["VERSION"]
    app.jinja_env.globals["unit_display"] = unit_display
    app.add_template_filter(coi_display, "coi_display")


def unit_display(compact: str) -> str:
    """A unit's 16 data characters as people read them, grouped, with the check character."""
    try:
        return UnitSerial.from_compact(compact).display
    except IdentifierError:
        return compact


def coi_display(text: str) -> str:
    """A COI identifier's 14-character text as people read it: "A9998 26 000003 Z"."""
    return f"{text[:5]} {text[5:7]} {text[7:13]} {text[13:]}" if len(text) == 14 else text
