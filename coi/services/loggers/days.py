"""A shipment's daily summaries (loggers whose files keep each day's extremes and time in
alarm instead of readings), read back from the store and judged day by day.

The days are the logger's local dates. The shipment's window is turned into dates in the
logger's zone (the origin site's when the shipment names none for the logger): a day before
the opening date or after the receipt date is listed, not judged. The opening and receipt
days themselves are judged whole: a summary cannot say which part of them the material was
in the shipper, and a wrong all-clear is worse than an alarm QA looks at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from coi.models import LoggerDaySummary, LoggerFileLink, Shipment, ShipmentLogger, Site
from coldchain import DayJudgement, DaySummary, Profile, judge_days


@dataclass
class LoggerDays:
    """One logger's daily summaries judged: for the shipment page and the alarms."""

    serial: str
    zone: str  # the zone the window's dates were taken in
    judgement: DayJudgement

    @property
    def rows(self) -> list[tuple[DaySummary, str]]:
        """Every day in date order with how it was judged: "alarm", "ok" or "outside"."""
        alarm = {day.day for day in self.judgement.alarm_days}
        rows = [(day, "outside") for day in self.judgement.before_window + self.judgement.after_window]
        rows += [(day, "alarm" if day.day in alarm else "ok") for day in self.judgement.days]
        return sorted(rows, key=lambda row: row[0].day)


def summary_loggers(session: Session, shipment_id: int) -> set[str]:
    """The serials (as the shipment names them) of the shipment's loggers with daily
    summaries in a file linked to it (stored for it, or for another leg and attached)."""
    return set(session.exec(select(LoggerFileLink.logger_serial).join(
        LoggerDaySummary, col(LoggerDaySummary.file_id) == LoggerFileLink.file_id)
        .where(LoggerFileLink.shipment_id == shipment_id).distinct()))


def days_of(session: Session, shipment_id: int, serial: str) -> list[DaySummary]:
    """The logger's stored days, in date order; a day stored by two files counts once (the
    first file's), as a reading stored twice does."""
    seen: dict[date, DaySummary] = {}
    for row in session.exec(select(LoggerDaySummary).join(
            LoggerFileLink, col(LoggerFileLink.file_id) == LoggerDaySummary.file_id)
            .where(LoggerFileLink.shipment_id == shipment_id, LoggerFileLink.logger_serial == serial)
            .order_by(col(LoggerDaySummary.id))):
        seen.setdefault(row.day, DaySummary(
            day=row.day, min_c=row.min_c, max_c=row.max_c, minutes_above=row.minutes_above,
            minutes_below=row.minutes_below, minutes_in_alarm=row.minutes_in_alarm, line=row.line,
            low_limit=row.low_limit_c, high_limit=row.high_limit_c))
    return sorted(seen.values(), key=lambda day: day.day)


def zone_of(session: Session, shipment: Shipment, serial: str) -> str:
    """The zone a logger's dates are taken in: its own, else the origin site's."""
    logger = session.exec(select(ShipmentLogger).where(ShipmentLogger.shipment_id == shipment.id,
                                                       ShipmentLogger.serial == serial)).first()
    if logger is not None and logger.zone:
        return logger.zone
    origin = session.get(Site, shipment.origin_site_id)
    return origin.timezone if origin is not None else "UTC"


def window_dates(shipment: Shipment, now: datetime, zone: str) -> tuple[date, date]:
    """The dates, in `zone`, from the shipment's opening to its receipt (or now)."""
    place = ZoneInfo(zone)
    return shipment.opened_at.astimezone(place).date(), (shipment.received_at or now).astimezone(place).date()


def judge(session: Session, shipment: Shipment, serial: str, profile: Profile, now: datetime) -> LoggerDays:
    zone = zone_of(session, shipment, serial)
    first, last = window_dates(shipment, now, zone)
    judgement = judge_days(days_of(session, shipment.id, serial), profile,  # type: ignore[arg-type]
                           logger_id=serial, first_day=first, last_day=last)
    return LoggerDays(serial, zone, judgement)
