"""The deadline sweeps: breaches that nobody scans, found because time ran out.

Each sweep is a plain function `f(session, now) -> found_work` over one indexed column that
holds the moment something falls due (a step's due time, a shipment's ETA, its newest
reading, a unit's next expiry check), reading only rows not alarmed yet. For each item it
raises the alarm (unique fingerprint) and marks the row with a conditional UPDATE whose
row count is checked, inside a savepoint: whichever of two schedulers gets there second
changes nothing, and an item that fails to evaluate is logged, left unmarked and so
retried at the next sweep, while the sweep goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from coi.core import alerting
from coi.core.alerting import Alerting
from coi.core.display import local_text
from coi.core.route import Route
from coi.models import Case, ProductRoute, Shipment, Unit, coi_of, serial_of
from coi.services import alarms, masterdata

log = logging.getLogger(__name__)

BATCH = 1000  # items per sweep and kind; more are taken at the next sweep


class _Lost(Exception):
    """Another scheduler marked the row first: undo this item's alarm."""


def _each(session: Session, items: Iterable[Any], what: str, work: Callable[[Any], bool]) -> int:
    found = 0
    for item in items:
        try:
            with session.begin_nested():
                if work(item):
                    found += 1
        except _Lost:
            continue
        except Exception:
            log.exception("%s %s could not be evaluated; it will be retried at the next sweep",
                          what, item)
    return found


def _marked(session: Session, statement: Any) -> None:
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        raise _Lost


def _text(at: datetime | None) -> str:
    """A time in a rule (a copy for machines and auditors): ISO 8601 with its offset."""
    return at.isoformat(timespec="seconds") if at else "unknown"


def _said(at: datetime | None) -> str:
    """A time in a summary, for people: "2026-11-22 06:17 UTC" (pages show their own zone)."""
    return local_text(at) if at else "an unknown time"


def overdue_steps(session: Session, now: datetime, *, batch: int = BATCH) -> int:
    """Cases whose next step was not recorded by its due time (set when the previous step was
    recorded). The route says which alarm: the infusion step's is the thaw window."""
    due = session.exec(select(Case.id, Case.next_due_at)
                       .where(col(Case.next_due_at) <= now, col(Case.overdue_alarm_id).is_(None))
                       .order_by(col(Case.next_due_at), col(Case.id)).limit(batch)).all()
    routes: dict[int, Route] = {}

    def work(item: tuple[int, datetime]) -> bool:
        case_id, due_at = item
        case = session.get(Case, case_id)
        assert case is not None and case.next_step is not None
        if case.route_id not in routes:
            row = session.get(ProductRoute, case.route_id)
            assert row is not None
            routes[case.route_id] = masterdata.route_of(row)
        route = routes[case.route_id]
        step, previous = route.step(case.next_step), route.step(case.last_step)
        summary = (f"{step.title} was due by {_said(due_at)} ({step.max_hours:g} h after "
                   f"{previous.title} at {_said(case.last_step_at)}) and has not been recorded.")
        if step.overdue_alarm == "thaw_window":
            summary = (f"Thawed product not infused within its {step.max_hours:g} h window: thawed at "
                       f"{_said(case.last_step_at)}, the window closed at {_said(due_at)}.")
        alarm = alarms.raise_alarm(
            session=session, now=now, kind="deadline", code=step.overdue_alarm,
            severity=step.overdue_severity, summary=summary, case_id=case.id,
            site_id=case.manufacturing_site_id if step.site_kind == "manufacturing" else case.site_id,
            fingerprint=f"case:{case.id}:{step.name}:due:{_text(due_at)}",
            rule={"rule": f"deadline.{step.overdue_alarm}", "route": route.product,
                  "route_version": route.version, "coi": coi_of(case).text,
                  "step": {"name": step.name, "title": step.title, "max_hours": step.max_hours},
                  "after_step": previous.name, "after_step_at": _text(case.last_step_at),
                  "due_at": _text(due_at)})
        if alarm is None:
            raise _Lost
        _marked(session, update(Case).where(col(Case.id) == case_id, col(Case.next_due_at) == due_at,
                                            col(Case.overdue_alarm_id).is_(None))
                .values(overdue_alarm_id=alarm.id))
        return True

    return _each(session, due, "case", work)


def late_shipments(session: Session, now: datetime, *, batch: int = BATCH) -> int:
    """Shipments not received by their ETA."""
    due = session.exec(select(Shipment.id, Shipment.eta)
                       .where(col(Shipment.eta) <= now, col(Shipment.eta_alarm_id).is_(None),
                              col(Shipment.received_at).is_(None))
                       .order_by(col(Shipment.eta), col(Shipment.id)).limit(batch)).all()

    def work(item: tuple[int, datetime]) -> bool:
        shipment_id, eta = item
        shipment = session.get(Shipment, shipment_id)
        assert shipment is not None
        where = "with the courier" if shipment.state == "in_transit" else "not yet picked up"
        alarm = alarms.raise_alarm(
            session=session, now=now, kind="deadline", code="shipment_late", severity="major",
            summary=f"Shipment {shipment.id} ({shipment.leg}) was due by {_said(eta)} and has not "
                    f"been received ({where}).",
            case_id=shipment.case_id, site_id=shipment.destination_site_id, shipment_id=shipment.id,
            fingerprint=f"shipment:{shipment.id}:eta:{_text(eta)}",
            rule={"rule": "deadline.shipment_late", "shipment": shipment.id, "leg": shipment.leg,
                  "eta": _text(eta), "dispatched_at": _text(shipment.dispatched_at)})
        if alarm is None:
            raise _Lost
        _marked(session, update(Shipment).where(
            col(Shipment.id) == shipment_id, col(Shipment.eta) == eta,
            col(Shipment.eta_alarm_id).is_(None), col(Shipment.received_at).is_(None))
            .values(eta_alarm_id=alarm.id))
        return True

    return _each(session, due, "shipment", work)


def silent_loggers(session: Session, now: datetime, *, settings: Alerting = alerting.DEFAULT,
                   batch: int = BATCH) -> int:
    """Shipments in transit whose logger data stopped arriving: nothing newer than the
    allowed silence (COI_LOGGER_SILENCE_MINUTES)."""
    silence = settings.logger_silence
    due = session.exec(select(Shipment.id, Shipment.last_reading_at)
                       .where(col(Shipment.last_reading_at) <= now - silence,
                              col(Shipment.silence_alarm_id).is_(None), col(Shipment.received_at).is_(None))
                       .order_by(col(Shipment.last_reading_at), col(Shipment.id)).limit(batch)).all()

    def work(item: tuple[int, datetime]) -> bool:
        shipment_id, last = item
        shipment = session.get(Shipment, shipment_id)
        assert shipment is not None
        if shipment.state != "in_transit":
            return False  # readings before pickup: nothing is expected until it travels
        minutes = silence.total_seconds() / 60
        alarm = alarms.raise_alarm(
            session=session, now=now, kind="temperature", code="logger_silent", severity="major",
            summary=f"No logger data for shipment {shipment.id} ({shipment.leg}) since {_said(last)}: "
                    f"more than {minutes:g} min in transit without a reading.",
            case_id=shipment.case_id, site_id=shipment.destination_site_id, shipment_id=shipment.id,
            fingerprint=f"shipment:{shipment.id}:silent:{_text(last)}",
            rule={"rule": "deadline.logger_silent", "shipment": shipment.id,
                  "silence_minutes": minutes, "last_reading_at": _text(last)})
        if alarm is None:
            raise _Lost
        _marked(session, update(Shipment).where(
            col(Shipment.id) == shipment_id, col(Shipment.last_reading_at) == last,
            col(Shipment.silence_alarm_id).is_(None)).values(silence_alarm_id=alarm.id))
        return True

    return _each(session, due, "shipment", work)


def expiring_units(session: Session, now: datetime, *, batch: int = BATCH) -> int:
    """Units close to their expiry (a warning, `warn_hours` before) and past it (critical)."""
    due = session.exec(select(Unit.id, Unit.expiry_check_at).where(col(Unit.expiry_check_at) <= now)
                       .order_by(col(Unit.expiry_check_at), col(Unit.id)).limit(batch)).all()

    def work(item: tuple[int, datetime]) -> bool:
        unit_id, seen = item
        unit = session.get(Unit, unit_id)
        assert unit is not None and unit.expires_at is not None
        mark = update(Unit).where(col(Unit.id) == unit_id, col(Unit.expiry_check_at) == seen)
        if unit.state == "consumed":
            _marked(session, mark.values(expiry_check_at=None))
            return False
        expired = now >= unit.expires_at
        code, severity = ("expired", "critical") if expired else ("expiry_near", "major")
        serial = serial_of(unit).display
        kind = unit.kind.replace("_", " ")
        summary = (f"Unit {serial} ({kind}) expired at {_said(unit.expires_at)}." if expired else
                   f"Unit {serial} ({kind}) expires at {_said(unit.expires_at)}, in "
                   f"{(unit.expires_at - now) / timedelta(hours=1):.0f} h.")
        case = session.get(Case, unit.case_id)
        assert case is not None
        alarm = alarms.raise_alarm(
            session=session, now=now, kind="deadline", code=code, severity=severity, summary=summary,
            case_id=unit.case_id, unit_id=unit.id, site_id=unit.custodian_site_id,
            fingerprint=f"unit:{unit.id}:{code}",
            rule={"rule": f"deadline.{code}", "unit": serial_of(unit).text, "kind": unit.kind,
                  "expires_at": _text(unit.expires_at), "coi": coi_of(case).text})
        _marked(session, mark.values(expiry_check_at=None if expired else unit.expires_at))
        return alarm is not None

    return _each(session, due, "unit", work)
