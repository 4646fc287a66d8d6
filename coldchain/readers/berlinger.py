"""Berlinger Fridge-tag and Q-tag device reports: the text file the logger writes itself.

An indented 'Key: value' tree (Conf:, Hist: or Res:, Marker:) then, on logging models, a
'Data:' section of TAB-indented rows '<TAB>YYYY-MM-DD HH:MM<TAB>T[<TAB>x]' ('x' marks a
reading out of limits) and a 'Cert:' signature block. Non-logging models (Fridge-tag 2) have
no Data section, only daily summaries: such a report yields no readings but `days`, one
DaySummary per 'Hist:' day (its minimum and maximum, and the minutes each alarm accumulated
that day, 't Acc', against the limits in 'Conf: Alarm:'), judged as a daily summary. The
times carry no zone, so reading the Data section needs the logger's zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from coldchain.model import DaySummary, Reading, ReadOptions, Source
from coldchain.readers.common import (
    Localiser,
    Notes,
    choose_logger,
    choose_zone,
    make_source,
    refuse,
    to_celsius,
    zone_name,
)
from coldchain.readers.text import Text

_NO_VALUE = "--.-"


def detect(text: Text) -> bool:
    return bool(text.head) and text.head[0].startswith("Device: ") and \
        any(line.rstrip() == "Conf:" for line in text.head[:20])


def read(text: Text, options: ReadOptions) -> Source:
    lines = text.lines()
    facts: dict[str, str] = {}
    where: dict[str, int] = {}  # the line each fact is on
    path: list[tuple[int, str]] = []
    has_data = False
    for number, line in lines:
        if not line.strip() or line.startswith("\t"):  # tab rows: the Marker table
            continue
        body = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0 and body in ("Data:", "Cert:"):
            has_data = body == "Data:"
            break
        while path and path[-1][0] >= indent:
            path.pop()
        if body.endswith(":") and ": " not in body:
            path.append((indent, body[:-1]))
            continue
        prefix = "/".join(name for _, name in path)
        for part in body.split(", "):
            key, colon, value = part.partition(": ")
            if colon:
                facts[f"{prefix}/{key}" if prefix else key] = value.strip()
                where[f"{prefix}/{key}" if prefix else key] = number
    device = facts.get("Device", "")
    meta = _meta(facts)
    logger_id = choose_logger(facts.get("Conf/Serial"), options, meta)
    unit = facts.get("Conf/Temp unit")
    if unit is None:
        if options.mapping and options.mapping.unit:
            unit = options.mapping.unit.upper()
        else:
            unit = "C"
            meta["unit_note"] = "the report states no unit; Berlinger Q-tag reports are in °C"
    if unit not in ("C", "F"):
        raise refuse(f"the report's temperature unit '{unit}' is neither C nor F")
    meta["unit"] = unit
    minutes = facts.get("Conf/Logging Interval", "")
    interval = timedelta(minutes=int(minutes)) if minutes.isdigit() else None
    fmt = "berlinger-fridgetag" if "Fridge-tag" in device else "berlinger-qtag"
    if not has_data:
        meta["content"] = ("daily summaries only (minimum, maximum and time in alarm per day), no "
                           "individual readings: this model does not log")
        source = make_source(format=fmt, logger_id=logger_id, zone=None, interval=timedelta(days=1),
                             meta=meta, rows=_nothing)
        source.days = _days(facts, where, unit)
        if not source.days:
            meta["no_readings"] = "the report holds no readings and no daily summaries"
        else:
            meta["day_count"] = str(len(source.days))
        return source
    zone = choose_zone(None, options, meta)
    to_utc = Localiser(zone)

    def readings(notes: Notes) -> Iterator[Reading]:
        for number, line in lines:
            if not line.startswith("\t"):
                if line.strip():
                    return  # the next section (Cert:) ends the data
                continue
            cells = line.split("\t")
            if len(cells) < 3:
                notes.problem(number, None, "a data row needs a time and a temperature")
                continue
            stamp, raw = cells[1].strip(), cells[2].strip()
            if stamp.startswith("yyyy"):
                continue  # the column header
            try:
                local = datetime.fromisoformat(stamp)
            except ValueError:
                notes.problem(number, "time", f"'{stamp}' is not a time like 2023-04-17 15:23")
                continue
            if raw == _NO_VALUE:
                notes.skip(number, "T", "the logger recorded no temperature ('--.-'): its sensor was not "
                                        "measuring")
                continue
            try:
                value = float(raw)
            except ValueError:
                notes.problem(number, "T", f"'{raw}' is not a temperature (a number like 5.1 was expected)")
                continue
            at = to_utc(local)
            if isinstance(at, str):
                notes.problem(number, "time", at)
                continue
            yield Reading(at, to_celsius(value, unit), logger_id, number)

    return make_source(format=fmt, logger_id=logger_id, zone=zone_name(zone), interval=interval, meta=meta,
                       rows=readings)


def _nothing(notes: Notes) -> Iterator[Reading]:
    yield from ()


def _days(facts: dict[str, str], where: dict[str, int], unit: str) -> list[DaySummary]:
    """The 'Hist:' days as daily summaries. The lowest alarm limit of 'Conf: Alarm:' is the
    low alarm, the others high ones; a day's minutes above are those its lowest high alarm
    accumulated (the others count within them), its minutes below the low alarm's."""
    limits = {parts[2]: value for name, text in facts.items()
              if len(parts := name.split("/")) == 4 and parts[:2] == ["Conf", "Alarm"] and parts[3] == "T AL"
              and (value := _float(text)) is not None}
    ordered = sorted(limits, key=lambda alarm: limits[alarm])
    low = ordered[0] if len(ordered) >= 2 else None
    high = next((alarm for alarm in ordered if alarm != low), None)
    numbers = sorted({parts[1] for name in facts if len(parts := name.split("/")) == 3
                      and parts[0] == "Hist" and parts[2] == "Date" and parts[1].isdecimal()}, key=int)
    days = []
    for number in numbers:
        try:
            day = date.fromisoformat(facts[f"Hist/{number}/Date"])
        except ValueError:
            raise refuse(f"'{facts[f'Hist/{number}/Date']}' is not a date like 2023-04-17",
                         line=where.get(f"Hist/{number}/Date")) from None

        def minutes(alarm: str | None, number: str = number) -> float | None:
            return _float(facts.get(f"Hist/{number}/Alarm/{alarm}/t Acc", "")) if alarm else None

        def celsius(measure: str, number: str = number) -> float | None:
            value = _float(facts.get(f"Hist/{number}/{measure}", ""))
            return None if value is None else to_celsius(value, unit)

        days.append(DaySummary(
            day=day, min_c=celsius("Min T"), max_c=celsius("Max T"), minutes_above=minutes(high),
            minutes_below=minutes(low), minutes_in_alarm=None, line=where[f"Hist/{number}/Date"],
            low_limit=to_celsius(limits[low], unit) if low else None,
            high_limit=to_celsius(limits[high], unit) if high else None))
    return sorted(days, key=lambda summary: summary.day)


_NAMED = {"Device": "device", "Fw Vers": "firmware", "Conf/Serial": "serial",
          "Conf/Logging Interval": "logging_interval_minutes", "Conf/MKT Energy": "mkt_activation_energy",
          "Res/MKT": "mkt", "Res/Min T": "min", "Res/TS Min T": "min_at", "Res/Max T": "max",
          "Res/TS Max T": "max_at", "Res/Avrg T": "average", "Res/TS Start": "start",
          "Res/TS Stop": "stop", "Hist/TS Actv": "activated", "Res/TS Actv": "activated",
          "Hist/TS Report Creation": "report_created"}


def _meta(facts: dict[str, str]) -> dict[str, str]:
    """The report's header facts worth showing: device, serial, alarm limits, MKT, and for
    daily histories the lowest and highest temperature of the days (local wall-clock time)."""
    meta = {key: facts[name] for name, key in _NAMED.items() if facts.get(name)}
    alarms = []
    for name, limit in facts.items():
        parts = name.split("/")
        if parts[:2] == ["Conf", "Alarm"] and parts[-1] == "T AL":
            minutes = facts.get("/".join(parts[:-1] + ["t AL"]), "?")
            alarms.append(f"{limit} for {minutes} min")
    if alarms:
        meta["alarm_limits"] = "; ".join(alarms)
    # Days are numbered sections of 'Hist:'; a damaged report can put a 'Date' elsewhere.
    days = sorted({parts[1] for name in facts if len(parts := name.split("/")) == 3
                   and parts[0] == "Hist" and parts[2] == "Date" and parts[1].isdecimal()}, key=int)
    if days:
        meta["history_days"] = str(len(days))
    for key, measure, pick in (("history_min", "Min T", min), ("history_max", "Max T", max)):
        seen = [(value, f"{facts.get(f'Hist/{day}/Date', '')} {facts.get(f'Hist/{day}/TS {measure}', '')}")
                for day in days if (value := _float(facts.get(f"Hist/{day}/{measure}", ""))) is not None]
        if seen:
            value, at = pick(seen)
            meta[key] = f"{value:+.1f} at {at.strip()} (local time)"
    return meta


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
