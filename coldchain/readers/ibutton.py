"""Maxim iButton (Thermochron) exports from OneWireViewer: a 'Key:  value' preamble (the
registration number names the logger; 'Mission Start' gives the first reading's date, which
settles whether '11/10/12' is day-first), then 'Date/Time,Unit,Value' rows. The only zone the
file gives is an abbreviation such as 'CST', which is not trusted."""

from __future__ import annotations

import re
from datetime import UTC, date, timedelta

from coldchain.model import ReadOptions, Source
from coldchain.readers import delimited
from coldchain.readers.text import Text

_FACT = re.compile(r"^(.+?)[:?]\s+(.+)$")
_MISSION_START = re.compile(r"^\w{3} (\w{3}) (\d{1,2}) \d{1,2}:\d{2}:\d{2} (\S+) (\d{4})$")
_SAMPLE_RATE = re.compile(r"Every (\d+) (second|minute|hour)", re.IGNORECASE)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_META = {"1-Wire/iButton Part Number": "part_number", "Mission Start": "mission_start",
         "Number of Mission Samples": "samples", "High Temperature Alarm": "high_alarm",
         "Low Temperature Alarm": "low_alarm", "Active Alarms": "alarms_fired"}


def detect(text: Text) -> bool:
    return any(line.startswith("1-Wire/iButton") for line in text.head[:5])


def read(text: Text, options: ReadOptions) -> Source:
    facts: dict[str, str] = {}
    for line in text.head[:40]:
        if line.startswith("Date/Time"):
            break
        match = _FACT.match(line.strip())
        if match:
            facts[match.group(1).strip()] = match.group(2).strip()
    meta = {key: facts[name] for name, key in _META.items() if name in facts}
    start = _MISSION_START.match(facts.get("Mission Start", ""))
    first_date = zone = untrusted = None
    if start and start.group(1) in _MONTHS:
        first_date = date(int(start.group(4)), _MONTHS.index(start.group(1)) + 1, int(start.group(2)))
        if start.group(3) in ("UTC", "GMT"):
            zone = UTC
        else:
            untrusted = start.group(3)
    rate = _SAMPLE_RATE.search(facts.get("Sample Rate", ""))
    interval = timedelta(**{rate.group(2).lower() + "s": int(rate.group(1))}) if rate else None
    return delimited.read(text, options, delimited.Hints(
        format="ibutton-onewireviewer", logger_id=facts.get("1-Wire/iButton Registration Number"),
        zone=zone, untrusted_zone=untrusted, first_date=first_date, interval=interval,
        value_column="Value", unit_column="Unit", meta=meta))
