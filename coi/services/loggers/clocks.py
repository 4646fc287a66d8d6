"""Logger clocks read at handoffs: what a logger's display showed at the dispatch or receive
scan, kept (append-only, audited) with its offset against the scan's server time. The latest
check corrects the logger's files stored from then on that state no offset of their own."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from coi.core.access import Actor
from coi.core.display import local_text
from coi.core.errors import InvalidInput
from coi.models import LoggerClockCheck, ShipmentLogger, User
from coi.services import audit
from coi.services.shipments import ShipmentView, require_upload, visible_shipment
from coldchain import Source, clock_offset_from_handoff, local_to_utc, logger_key

HANDOFFS = ("dispatch", "receive")
CLOCK_CHECK_LIMIT = timedelta(hours=12)  # further off than this, the entry is taken for a typo


def correct(session: Session, view: ShipmentView, source: Source, chosen: ShipmentLogger) -> None:
    """A file that states no clock offset of its own is corrected by the logger's latest
    clock check at a handoff of this shipment (a file that measured its own clock keeps it)."""
    check = _latest(session=session, shipment_id=view.shipment.id,  # type: ignore[arg-type]
                    serial=chosen.serial)
    if check is None:
        return
    if source.clock_offset is not None:
        source.meta["clock_note"] = (f"the file states its own clock offset; the clock check at the "
                                     f"{check.handoff} handoff ({check.offset_s:+.0f} s) was not used")
        return
    source.clock_offset = timedelta(seconds=check.offset_s)
    source.meta["clock_offset_from"] = f"clock check {check.id} at the {check.handoff} handoff"


def _latest(*, session: Session, shipment_id: int, serial: str) -> LoggerClockCheck | None:
    return session.exec(select(LoggerClockCheck).where(
        LoggerClockCheck.shipment_id == shipment_id, LoggerClockCheck.serial == serial)
        .order_by(col(LoggerClockCheck.id).desc())).first()


def clock_checks(*, session: Session, shipment_id: int) -> list[tuple[LoggerClockCheck, User | None]]:
    return [(check, session.get(User, check.recorded_by_id)) for check in session.exec(
        select(LoggerClockCheck).where(LoggerClockCheck.shipment_id == shipment_id)
        .order_by(col(LoggerClockCheck.id)))]


def check_clock(*, session: Session, now: datetime, actor: Actor, shipment_id: int, serial: str,
                handoff: str, shown: str, zone: str) -> LoggerClockCheck:
    """Record what logger `serial`'s display showed at the shipment's `handoff` scan: `shown`
    ("2026-12-04 14:05:30") is local to the logger's configured zone, or to `zone` (the
    person's) for a logger with none. The offset against the scan's server time corrects the
    logger's files stored from now on."""
    view = visible_shipment(session=session, actor=actor, shipment_id=shipment_id)
    require_upload(actor, view)
    logger = next((each for each in view.loggers if logger_key(each.serial) == logger_key(serial)), None)
    if logger is None:
        raise InvalidInput(f"Logger {serial} is not assigned to shipment {shipment_id}.",
                           [{"field": "serial", "message": "One of the shipment's loggers."}])
    if handoff not in HANDOFFS:
        raise InvalidInput("Say at which handoff the clock was read.",
                           [{"field": "handoff", "message": "dispatch or receive."}])
    scan_at = view.shipment.dispatched_at if handoff == "dispatch" else view.shipment.received_at
    if scan_at is None:
        raise InvalidInput(f"The {handoff} handoff of shipment {shipment_id} has not been scanned yet: "
                           "read the logger's clock at the handoff scan.",
                           [{"field": "handoff", "message": "Not scanned yet."}])
    zone_name = logger.zone or zone
    try:
        local = datetime.fromisoformat(shown.strip())
    except ValueError:
        raise InvalidInput(f"'{shown[:40]}' is not a time like 2026-12-04 14:05:30.",
                           [{"field": "shown", "message": "The date and time the logger showed."}]) from None
    if local.tzinfo is not None:
        raise InvalidInput("Enter the time as the logger showed it, without a UTC offset.",
                           [{"field": "shown", "message": f"Local to {zone_name}."}])
    at = local_to_utc(local, ZoneInfo(zone_name))
    if isinstance(at, str):
        raise InvalidInput(f"The clock check was not recorded: {at}.", [{"field": "shown", "message": at}])
    offset = clock_offset_from_handoff(at, scan_at)
    if abs(offset) > CLOCK_CHECK_LIMIT:
        raise InvalidInput(
            f"The logger would be {abs(offset).total_seconds() / 3600:.1f} h off the {handoff} scan at "
            f"{local_text(scan_at)}: check the date and time entered (and the logger's zone, {zone_name}).",
            [{"field": "shown", "message": "More than 12 hours from the handoff scan."}])
    check = LoggerClockCheck(shipment_id=shipment_id, serial=logger.serial, handoff=handoff, scan_at=scan_at,
                             shown=local.isoformat(sep=" "), zone=zone_name,
                             offset_s=offset.total_seconds(), recorded_at=now,
                             recorded_by_id=actor.user_id)  # type: ignore[arg-type]
    session.add(check)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_clock_check", entity_id=check.id,
                 action="create", reason=f"Clock of logger {serial} read at the {handoff} handoff "
                                         f"of shipment {shipment_id}",
                 changes={"shown": (None, check.shown), "zone": (None, zone_name),
                          "offset_s": (None, check.offset_s)})
    return check
