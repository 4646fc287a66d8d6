"""Template filters and globals: times in local time with their zone (as `coi.core.display`
writes them), identifiers with check characters."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, g
from markupsafe import Markup, escape

from coi.core import access
from coi.core.display import coi_display, local_text, unit_display


def local_time(value: datetime | None, zone: str | None = None) -> Markup:
    """`value` (UTC) in `zone` (default: the reader's home site), with its zone named, inside
    a <time> element that carries the exact UTC instant."""
    if value is None:
        return Markup("")
    tz = ZoneInfo(zone or (g.actor.timezone if g.get("actor") else "UTC"))
    text = local_text(value, tz.key)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        value.isoformat(), f"{local_text(value, seconds=True)} ({tz.key})", escape(text))


def install(app: Flask) -> None:
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(json.loads, "fromjson")
    app.jinja_env.globals["allowed"] = lambda name, site=None: access.allowed(
        g.get("actor"), name, site)
    app.jinja_env.globals["app_version"] = app.config["VERSION"]
    app.jinja_env.globals["unit_display"] = unit_display
    app.add_template_filter(coi_display, "coi_display")
