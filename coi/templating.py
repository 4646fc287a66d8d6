"""Template filters and globals: times in local time with their zone (as `coi.core.display`
writes them), identifiers with check characters, codes in words (`coi.core.words`):
`{{ case.state | words('case_state') }}`, spans as durations, stored texts with their UTC
times said in the reader's zone."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, g
from markupsafe import Markup, escape

from coi.core import access
from coi.core import words as vocabulary
from coi.core.display import (
    coi_display,
    duration_words,
    local_text,
    localise_text,
    minutes_words,
    unit_display,
)


def local_time(value: datetime | None, zone: str | None = None) -> Markup:
    """`value` (UTC) in `zone` (default: the reader's home site), with its zone named, inside
    a <time> element that carries the exact UTC instant."""
    if value is None:
        return Markup("")
    tz = ZoneInfo(reader_zone(zone))
    text = local_text(value, tz.key)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        value.isoformat(), f"{local_text(value, seconds=True)} ({tz.key})", escape(text))


def reader_zone(zone: str | None = None) -> str:
    """The zone a page speaks in: the one given, else the reader's home site's."""
    return zone or (g.actor.timezone if g.get("actor") else "UTC")


def localised(text: str | None, zone: str | None = None) -> str:
    """A stored text (an alarm's summary) with the UTC times it holds said in the reader's
    zone; the text itself is evidence and stays as it was written."""
    return localise_text(text or "", reader_zone(zone))


def install(app: Flask) -> None:
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(json.loads, "fromjson")
    app.jinja_env.globals["allowed"] = lambda name, site=None: access.allowed(
        g.get("actor"), name, site)
    app.jinja_env.globals["app_version"] = app.config["VERSION"]
    app.jinja_env.globals["unit_display"] = unit_display
    app.add_template_filter(coi_display, "coi_display")
    app.add_template_filter(vocabulary.words, "words")
    app.add_template_filter(vocabulary.listed, "listed")
    app.add_template_filter(vocabulary.rule_words, "rule_words")
    app.add_template_filter(vocabulary.step_titles, "step_titles")
    app.add_template_filter(duration_words, "duration")
    app.add_template_filter(minutes_words, "minutes_words")
    app.add_template_filter(localised, "localised")
    app.jinja_env.globals["rule_rows"] = lambda rule, zone=None: vocabulary.rule_rows(
        rule, reader_zone(zone))
