"""A shipment's logger data judged against the profile it was opened with, logger by logger,
streaming the readings from the store in time order; the case's stability budget summed
over all its legs; whether a temperature alarm's excursion still goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from coi.models import Alarm, LoggerFile, LoggerFileLink, LoggerFileResult, Shipment, ShipmentLogger, User
from coi.services.loggers import days as daily
from coi.services.loggers.readings import points
from coi.services.shipments import ShipmentView, view_of
from coldchain import Breach, Budget, Evaluation, Evaluator, Profile, Reading, chart, stability_budget


def window_of(shipment: Shipment, now: datetime) -> tuple[datetime, datetime]:
    """The time the shipment's material is in its shipper: from opening to receipt (or now)."""
    return shipment.opened_at, shipment.received_at or now


@dataclass
class LoggerSeries:
    serial: str
    evaluation: Evaluation
    buckets: list[chart.Bucket] | None  # thinned for the chart


@dataclass
class ShipmentEvaluation:
    view: ShipmentView
    profile: Profile
    window: tuple[datetime, datetime]
    series: list[LoggerSeries]
    budget: Budget
    # Each file judged for the shipment, with who attached it and the link (its logger as
    # the shipment names it; readings outside this shipment's window).
    files: list[tuple[LoggerFile, LoggerFileResult | None, User | None, LoggerFileLink]]
    # Loggers whose files are daily summaries (no readings), judged day by day; such a
    # logger has no readings series unless it also sent a file of readings.
    days: list[daily.LoggerDays] = field(default_factory=list)

    @property
    def breaches(self) -> list[Breach]:
        return [b for s in self.series for b in s.evaluation.breaches] + \
            [b for d in self.days for b in d.judgement.breaches]


def profile_of(shipment: Shipment) -> Profile:
    """The profile as it was when the shipment was opened."""
    return Profile.from_rule(json.loads(shipment.profile_rule))


def evaluate(*, session: Session, now: datetime, view: ShipmentView, buckets: int | None = None,
             fed: Mapping[str, Evaluation] | None = None) -> ShipmentEvaluation:
    """Judge the shipment's readings against its profile, logger by logger, streaming from
    the database in time order; with `buckets`, thin each series for the chart on the way.
    `fed`: loggers already evaluated over all their stored readings (by `store`), by serial."""
    shipment = view.shipment
    profile = profile_of(shipment)
    window = window_of(shipment, now)
    files = [(f, session.get(LoggerFileResult, f.id), session.get(User, link.linked_by_id), link)
             for f, link in linked_files(session, shipment.id)]  # type: ignore[arg-type]
    # A file linked from another leg spans that leg too: the chart keeps to this one's window.
    own = [r for f, r, _u, _l in files if r and f.shipment_id == shipment.id]
    firsts = [r.first_at for r in own if r.first_at]
    lasts = [r.last_at for r in own if r.last_at]
    chart_span = (min([window[0], *firsts]), max([window[1], *lasts]))
    summarised = daily.summary_loggers(session, shipment.id)  # type: ignore[arg-type]
    series = [LoggerSeries(logger.serial, fed[logger.serial], None)
              if fed and logger.serial in fed and not buckets else
              _series(session, shipment, logger.serial, profile, window, chart_span, buckets,
                      _interval([f for f, _r, _u, link in files if link.logger_serial == logger.serial]))
              for logger in view.loggers if _has_readings(logger.serial, summarised, files)]
    days = [daily.judge(session, shipment, serial, profile, now) for serial in sorted(summarised)]
    used = [_time_out(session, other, now) if other.id != shipment.id else
            max([*(s.evaluation.time_out_of_range for s in series),
                 *(d.judgement.time_out_of_range for d in days)], default=timedelta(0))
            for other in session.exec(select(Shipment).where(Shipment.case_id == shipment.case_id,
                                                             Shipment.profile == shipment.profile))]
    return ShipmentEvaluation(view, profile, window, series, stability_budget(profile, used), files, days)


def _has_readings(serial: str, summarised: set[str],
                  files: list[tuple[LoggerFile, LoggerFileResult | None, User | None, LoggerFileLink]]
                  ) -> bool:
    """Is the logger judged by its readings? Yes, unless every file it sent is a daily summary
    (judged by its days instead: a readings series of it would find nothing but 'no readings')."""
    if serial not in summarised:
        return True
    return any(result is not None and result.reading_count for _f, result, _u, link in files
               if link.logger_serial == serial)


def linked_files(session: Session, shipment_id: int) -> list[tuple[LoggerFile, LoggerFileLink]]:
    """The files the shipment is judged on, in the order they were attached."""
    return list(session.exec(select(LoggerFile, LoggerFileLink).join(
        LoggerFileLink, col(LoggerFileLink.file_id) == LoggerFile.id)
        .where(LoggerFileLink.shipment_id == shipment_id).order_by(col(LoggerFileLink.id))).all())


def _series(session: Session, shipment: Shipment, serial: str, profile: Profile,
            window: tuple[datetime, datetime], chart_span: tuple[datetime, datetime] | None,
            buckets: int | None = None, interval: timedelta | None = None) -> LoggerSeries:
    # The window's end is judged (a logger that stopped early leaves a gap) only once the
    # shipment is received; before that the data simply has not arrived yet.
    evaluator = Evaluator(profile, window_start=window[0], window_end=shipment.received_at,
                          interval=interval, logger_id=serial)

    def fed() -> Iterator[tuple[datetime, float]]:
        for at, celsius, line in points(session, shipment.id, serial):  # type: ignore[arg-type]
            evaluator.feed(Reading(at, celsius, serial, line))
            yield at, celsius

    kept = None
    if buckets and chart_span:
        kept = chart.thin(fed(), start=chart_span[0], end=chart_span[1], buckets=buckets)
    else:
        for _ in fed():
            pass
    return LoggerSeries(serial, evaluator.result(), kept)


def _interval(files: list[LoggerFile]) -> timedelta | None:
    """The logger's logging interval as its files state or show it (the longest, if they
    differ); None: the profile's default."""
    seconds = [json.loads(f.report).get("interval_s") for f in files]
    known = [s for s in seconds if s]
    return timedelta(seconds=max(known)) if known else None


def _time_out(session: Session, shipment: Shipment, now: datetime) -> timedelta:
    profile = profile_of(shipment)
    window = window_of(shipment, now)
    serials = session.exec(select(ShipmentLogger.serial).where(ShipmentLogger.shipment_id == shipment.id))
    files = linked_files(session, shipment.id)  # type: ignore[arg-type]
    summarised = daily.summary_loggers(session, shipment.id)  # type: ignore[arg-type]
    return max([*(_series(session, shipment, serial, profile, window, None, None,
                          _interval([f for f, link in files if link.logger_serial == serial]))
                  .evaluation.time_out_of_range for serial in serials),
                *(daily.judge(session, shipment, serial, profile, now).judgement.time_out_of_range
                  for serial in summarised)], default=timedelta(0))


def case_budget(*, session: Session, case_id: int, now: datetime) -> Budget | None:
    """The stability budget of what the case's latest shipment carries, as the shipment page
    sums it: the time out of range of every leg travelled under the same profile, against
    that profile. Legs under another profile carried another material (fresh apheresis at
    2-8 C out, cryopreserved product back): minutes out of one range do not spend the budget
    of the other. None: the case has no shipment yet."""
    latest = session.exec(select(Shipment).where(Shipment.case_id == case_id)
                          .order_by(col(Shipment.id).desc())).first()
    if latest is None:
        return None
    legs = session.exec(select(Shipment).where(Shipment.case_id == case_id,
                                               Shipment.profile == latest.profile)
                        .order_by(col(Shipment.id))).all()
    return stability_budget(profile_of(latest), [_time_out(session, leg, now) for leg in legs])


def alarms_of(*, session: Session, shipment_id: int) -> list[Alarm]:
    return list(session.exec(select(Alarm).where(Alarm.shipment_id == shipment_id)
                             .order_by(col(Alarm.raised_at).desc(), col(Alarm.id).desc())))


def still_going_on(*, session: Session, now: datetime, alarm: Alarm) -> bool:
    """Does the latest data show the temperature breach behind `alarm` still going on (an
    excursion whose readings have not come back within limits)?"""
    if alarm.kind != "temperature" or alarm.shipment_id is None or not alarm.fingerprint:
        return False
    found = evaluate(session=session, now=now, view=view_of(session=session, shipment_id=alarm.shipment_id))
    return any(f"shipment:{alarm.shipment_id}:{breach.key}" == alarm.fingerprint and breach.ongoing
               for breach in found.breaches)
