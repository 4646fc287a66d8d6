"""Rotronic HygroLog exports: tagged sections ('[#S]' device information with the serial
number and log interval, '[#1]', '[#2]' channels with unit and alarm thresholds, '[#H]' the
column header, '[#D]' the data with separate date and time columns); no zone."""

from __future__ import annotations

import re
from datetime import timedelta

from coldchain.model import ReadOptions, Source
from coldchain.readers import delimited
from coldchain.readers.common import units_in
from coldchain.readers.text import Text

_SECTION = re.compile(r"^\[#(\w+)\]")
_INTERVAL = re.compile(r"^(\d+):(\d{2}):(\d{2})$")


def detect(text: Text) -> bool:
    return any(line.startswith(("[#D]", "[#S]", "[#H]")) for line in text.head[:60])


def read(text: Text, options: ReadOptions) -> Source:
    sections: dict[str, list[tuple[str, str]]] = {}
    section, header_line = "", None
    for number, line in enumerate(text.head[:100], 1):
        first = line.split(",", 1)[0].strip()
        match = _SECTION.match(first)
        if match:
            section = match.group(1)
            if section == "H":
                header_line = number + 1
            if section == "D":
                break
        elif "=" in first:
            key, _, value = first.partition("=")
            sections.setdefault(section, []).append((key.strip(), value.strip()))
    device = dict(sections.get("S", []))
    meta = {"version": device.get("Version", ""), "file_name": device.get("File Name", "")}
    unit = None
    for channel, facts in sections.items():
        if channel.isdigit() and facts and "temp" in facts[0][0].lower():
            units = units_in(facts[0][1])
            unit = units.pop() if len(units) == 1 else None
            named = dict(facts)
            meta["low_alarm"] = named.get("Low Alarm Threshold", "")
            meta["high_alarm"] = named.get("High Alarm Threshold", "")
    interval = _INTERVAL.match(device.get("Log Interval", ""))
    return delimited.read(text, options, delimited.Hints(
        format="rotronic", logger_id=device.get("Serial Number"), unit=unit, header_line=header_line,
        interval=timedelta(hours=int(interval.group(1)), minutes=int(interval.group(2)),
                           seconds=int(interval.group(3))) if interval else None,
        meta={key: value for key, value in meta.items() if value}))
