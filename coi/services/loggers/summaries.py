"""Storing a daily-summary logger file: one that keeps each day's lowest and highest
temperature and its time in alarm instead of single readings (coldchain gives such a file's
`Source.days`). `intake.store` and `intake.preview` hand such a file here once it is read.

The raw file is kept verbatim as any logger file is; its days go into `logger_day_summary`
(append-only, each pointing to the file and its line); a `LoggerFileResult` with no readings
records that the file was read and judged (the release's "logger data judged" check asks
for one). Days outside the shipment's window (see `days`) are noted in the file's report and
on the page, not judged; a file with no day inside it is refused like readings of another
period. Alarms are raised per day in alarm through `intake.raise_alarms`.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO

from sqlmodel import Session

from coi.core.access import Actor
from coi.core.canonical import canonical_json
from coi.core.filenames import storable
from coi.models import LoggerDaySummary, LoggerFile, LoggerFileResult, ShipmentLogger
from coi.services import audit
from coi.services.loggers import days as daily
from coi.services.loggers.intake import (
    FILENAME_MAX,
    LoggerFileRefused,
    Preview,
    Span,
    Stored,
    _skipped,
    _store_chunks,
    raise_alarms,
    window_of,
)
from coi.services.shipments import ShipmentView
from coldchain import DaySummary, Source


def _split(session: Session, view: ShipmentView, source: Source, chosen: ShipmentLogger,
           now: datetime) -> tuple[list[DaySummary], list[DaySummary], str]:
    """The file's days inside the shipment's window and outside it, and the zone the window's
    dates were taken in. Refuses a file with no day inside the window."""
    days = source.days or []
    zone = daily.zone_of(session, view.shipment, chosen.serial)
    first, last = daily.window_dates(view.shipment, now, zone)
    inside = [day for day in days if first <= day.day <= last]
    outside = [day for day in days if not first <= day.day <= last]
    if not inside:
        raise LoggerFileRefused(
            f"The days are for another period: {days[0].day.isoformat()} to {days[-1].day.isoformat()} "
            f"(the file's order), but this shipment was under way from {first.isoformat()} to "
            f"{last.isoformat()} ({zone}). Nothing was stored.")
    return inside, outside, zone


def _meta(source: Source, outside: list[DaySummary], zone: str) -> dict[str, str]:
    meta = dict(source.meta)
    if outside:
        meta["days_outside_window"] = ", ".join(day.day.isoformat() for day in outside)
        meta["window_note"] = (f"{len(outside)} day(s) fall outside the shipment's window (dates in {zone}) "
                               "and are not judged")
    return meta


def preview(*, session: Session, now: datetime, view: ShipmentView, source: Source, chosen: ShipmentLogger,
            filename: str, size: int, sha: str, already: LoggerFile | None) -> Preview:
    """What a daily-summary file holds, before it is stored: no readings (`span` is empty),
    its days described in `meta` (day_count, days_outside_window)."""
    _inside, outside, zone = _split(session, view, source, chosen, now)
    skipped, skipped_count = _skipped(source)
    return Preview(filename, size, sha, source.format, chosen.serial, None, None, None,
                   _meta(source, outside, zone), Span(), window_of(view.shipment, now), 0, skipped,
                   skipped_count, already)


def store(*, session: Session, now: datetime, actor: Actor, view: ShipmentView, source: Source,
          chosen: ShipmentLogger, stream: IO[bytes], filename: str, via: str, sha: str,
          size: int) -> Stored:
    """Store the file verbatim and its days, then judge the shipment and raise alarms."""
    shipment_id = view.shipment.id
    inside, outside, zone = _split(session, view, source, chosen, now)
    meta = _meta(source, outside, zone)
    report = {"format": source.format, "zone": None, "logger": source.logger_id, "interval_s": None,
              "clock_offset_s": None, "meta": meta, "days": len(source.days or [])}
    file = LoggerFile(shipment_id=shipment_id, logger_serial=chosen.serial, sha256=sha,  # type: ignore[arg-type]
                      filename=storable(filename, FILENAME_MAX) or "upload", size=size,
                      format=source.format, via=via, uploaded_at=now, uploaded_by_id=actor.user_id,
                      report=canonical_json(report))
    session.add(file)
    session.flush()
    for day in source.days or []:
        session.add(LoggerDaySummary(
            shipment_id=shipment_id, file_id=file.id, logger=chosen.serial, day=day.day,  # type: ignore[arg-type]
            min_c=day.min_c, max_c=day.max_c, minutes_above=day.minutes_above,
            minutes_below=day.minutes_below, minutes_in_alarm=day.minutes_in_alarm,
            low_limit_c=day.low_limit, high_limit_c=day.high_limit, line=day.line))
    _store_chunks(session, file, stream)
    skipped, skipped_count = _skipped(source)
    lows = [day.min_c for day in inside if day.min_c is not None]
    highs = [day.max_c for day in inside if day.max_c is not None]
    result = LoggerFileResult(
        file_id=file.id, reading_count=0, first_at=None, last_at=None,  # type: ignore[arg-type]
        min_celsius=min(lows, default=None), max_celsius=max(highs, default=None),
        outside_window=len(outside), duplicates=0,
        skipped=canonical_json({"count": skipped_count, "rows": [
            {"line": p.line, "column": p.column, "why": p.why} for p in skipped]}))
    session.add(result)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id=file.id,
                 action="create", reason=f"Logger file for shipment {shipment_id} ({via}): daily summaries",
                 changes={"sha256": (None, sha), "filename": (None, file.filename),
                          "days": (None, len(source.days or []))})
    raised = raise_alarms(session=session, now=now, view=view)
    return Stored(file, True, result, raised)
