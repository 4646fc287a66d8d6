"""Storing a daily-summary logger file: one that keeps each day's lowest and highest
temperature and its time in alarm instead of single readings (coldchain gives such a file's
`Source.days`). `intake.store` and `intake.preview` hand such a file here once it is read (this module
does not import intake: intake builds on it).

The raw file is kept verbatim as any logger file is; its days go into `logger_day_summary`
(append-only, each pointing to the file and its line); a `LoggerFileResult` with no readings
records that the file was read and judged (the release's "logger data judged" check asks
for one). Days outside the shipment's window (see `days`) are noted in the file's report and
on the page, not judged; a file with no day inside it is refused like readings of another
period. Alarms are raised per day in alarm by intake's `raise_alarms` (through
`evaluation.evaluate`, which judges the stored days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from coi.core.access import Actor
from coi.core.canonical import canonical_json
from coi.models import LoggerDaySummary, LoggerFile, LoggerFileResult, ShipmentLogger
from coi.services import audit
from coi.services.loggers import days as daily
from coi.services.shipments import ShipmentView
from coldchain import DaySummary, Problem, Source


class OutsideWindow(Exception):
    """No day of the file falls within the shipment's window: the file is refused whole."""


@dataclass
class Days:
    """A daily-summary file's days split by the shipment's window, and the file's facts to
    show and keep (its meta, with the days outside the window noted)."""

    inside: list[DaySummary]
    outside: list[DaySummary]
    zone: str  # the zone the window's dates were taken in
    meta: dict[str, str]


def check(*, session: Session, now: datetime, view: ShipmentView, source: Source,
          chosen: ShipmentLogger) -> Days:
    """Split the file's days by the shipment's window. Raises OutsideWindow when none is
    inside it."""
    days = source.days or []
    zone = daily.zone_of(session, view.shipment, chosen.serial)
    first, last = daily.window_dates(view.shipment, now, zone)
    inside = [day for day in days if first <= day.day <= last]
    outside = [day for day in days if not first <= day.day <= last]
    if not inside:
        raise OutsideWindow(
            f"The days are for another period: {days[0].day.isoformat()} to {days[-1].day.isoformat()} "
            f"(in the file's order), but this shipment was under way from {first.isoformat()} to "
            f"{last.isoformat()} (dates in {zone}). Nothing was stored.")
    meta = dict(source.meta)
    if outside:
        meta["days_outside_window"] = ", ".join(day.day.isoformat() for day in outside)
        meta["window_note"] = (f"{len(outside)} day(s) fall outside the shipment's window (dates in {zone}) "
                               "and are not judged")
    return Days(inside, outside, zone, meta)


def record(*, session: Session, now: datetime, actor: Actor, view: ShipmentView, source: Source,
           chosen: ShipmentLogger, days: Days, filename: str, via: str, sha: str, size: int,
           skipped: list[Problem], skipped_count: int) -> tuple[LoggerFile, LoggerFileResult]:
    """Write the file's row, its days and its result (no readings; the days' range, the days
    outside the window), and audit it. The caller stores the raw bytes and raises alarms."""
    shipment_id = view.shipment.id
    every = source.days or []
    report = {"format": source.format, "zone": None, "logger": source.logger_id, "interval_s": None,
              "clock_offset_s": None, "meta": days.meta, "days": len(every)}
    file = LoggerFile(shipment_id=shipment_id, logger_serial=chosen.serial, sha256=sha,  # type: ignore[arg-type]
                      filename=filename, size=size, format=source.format, via=via, uploaded_at=now,
                      uploaded_by_id=actor.user_id, report=canonical_json(report))
    session.add(file)
    session.flush()
    for day in every:
        session.add(LoggerDaySummary(
            shipment_id=shipment_id, file_id=file.id, logger=chosen.serial, day=day.day,  # type: ignore[arg-type]
            min_c=day.min_c, max_c=day.max_c, minutes_above=day.minutes_above,
            minutes_below=day.minutes_below, minutes_in_alarm=day.minutes_in_alarm,
            low_limit_c=day.low_limit, high_limit_c=day.high_limit, line=day.line))
    lows = [day.min_c for day in days.inside if day.min_c is not None]
    highs = [day.max_c for day in days.inside if day.max_c is not None]
    result = LoggerFileResult(
        file_id=file.id, reading_count=0, first_at=None, last_at=None,  # type: ignore[arg-type]
        min_celsius=min(lows, default=None), max_celsius=max(highs, default=None),
        outside_window=len(days.outside), duplicates=0,
        skipped=canonical_json({"count": skipped_count, "rows": [
            {"line": p.line, "column": p.column, "why": p.why} for p in skipped]}))
    session.add(result)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id=file.id,
                 action="create", reason=f"Logger file for shipment {shipment_id} ({via}): daily summaries",
                 changes={"sha256": (None, sha), "filename": (None, file.filename),
                          "days": (None, len(every))})
    return file, result
