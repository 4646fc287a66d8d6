"""Shipments: one leg of a case's journey in a shipper watched by temperature loggers.

Opened on the case page before the courier comes; the custody handoffs move it on: the
courier's receipt dispatches it, the receipt at the destination receives it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import update
from sqlmodel import Session, col, select

from coi.core.access import Actor, allowed, allowed_at_any, require
from coi.core.canonical import canonical_json
from coi.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from coi.core.vocabulary import SHIPMENT_LEGS
from coi.models import Case, Shipment, ShipmentLogger, Site, case_sites, coi_of
from coi.services import audit, masterdata
from coi.services.cases import visible_case
from coldchain import Profile, logger_key

SERIAL_MAX = 64  # ShipmentLogger.serial
ZONE_MAX = 64  # ShipmentLogger.zone
NOT_RECEIVED = ("open", "in_transit")


@dataclass(frozen=True)
class LoggerSpec:
    serial: str
    zone: str | None = None  # IANA name; needed only for files that state no zone


def legs_of(case: Case) -> dict[str, tuple[int, int]]:
    """Each leg's (origin, destination) sites."""
    return {"outbound": (case.site_id, case.manufacturing_site_id),
            "return": (case.manufacturing_site_id, case.site_id)}


def open_shipment(
    *, session: Session, now: datetime, actor: Actor, profiles: Mapping[str, Profile],
    coi_text: str, leg: str, loggers: Sequence[LoggerSpec], shipper_id: str | None,
    profile_name: str | None, eta: datetime | None,
) -> Shipment:
    """Open a shipment for a leg of the case, with its loggers and temperature profile (the
    product's profile for the leg unless another is named). A case has at most one
    shipment on its way at a time."""
    case = visible_case(session=session, actor=actor, coi_text=coi_text, lock=True)
    errors: list[dict[str, str]] = []
    if leg not in SHIPMENT_LEGS:
        raise InvalidInput("Choose the leg.", [{"field": "leg", "message": "Choose outbound or return."}])
    origin, destination = legs_of(case)[leg]
    require(actor, "shipment.open", origin, doing="open a shipment from this site")
    name = profile_name or masterdata.route_of_case(session=session, case=case).shipping.get(leg)
    if not name or name not in profiles:
        errors.append({"field": "profile", "message": "Choose a temperature profile: "
                       + ", ".join(sorted(profiles)) + "."})
    if not loggers:
        errors.append({"field": "loggers", "message": "Name at least one temperature logger."})
    loggers = [LoggerSpec(spec.serial.strip(), spec.zone) for spec in loggers]
    for spec in loggers:
        errors += _logger_errors(spec)
    serials = [spec.serial for spec in loggers]
    # One logger written two ways ('0434 EF00' and '0434-ef00') is still one logger.
    if len({logger_key(serial) for serial in serials}) != len(serials):
        errors.append({"field": "loggers", "message": "A logger is named twice."})
    if shipper_id is not None and not (0 < len(shipper_id) <= 64):
        errors.append({"field": "shipper_id", "message": "At most 64 characters."})
    if eta is not None and eta <= now:
        errors.append({"field": "eta", "message": "The expected arrival must be in the future."})
    if errors:
        raise InvalidInput("The shipment was not opened: " + errors[0]["message"], errors)
    under_way = session.exec(select(Shipment).where(
        Shipment.case_id == case.id, col(Shipment.state).in_(NOT_RECEIVED))).first()
    if under_way is not None:
        raise Conflict(f"Shipment {under_way.id} of this case is not received yet; a case has one "
                       "shipment on its way at a time.")
    assert name is not None
    shipment = Shipment(case_id=case.id, leg=leg, origin_site_id=origin,  # type: ignore[arg-type]
                        destination_site_id=destination, shipper_id=shipper_id or None,
                        profile=name, profile_rule=canonical_json(profiles[name].as_rule()),
                        opened_at=now, opened_by_id=actor.user_id, eta=eta)
    session.add(shipment)
    session.flush()
    for spec in loggers:
        session.add(ShipmentLogger(shipment_id=shipment.id,  # type: ignore[arg-type]
                                   serial=spec.serial, zone=spec.zone, assigned_at=now,
                                   assigned_by_id=actor.user_id))
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="shipment", entity_id=shipment.id,
                 action="create", reason=f"Shipment opened for {coi_of(case).text}",
                 changes={"leg": (None, leg), "profile": (None, name),
                          "loggers": (None, ", ".join(serials)), "shipper_id": (None, shipper_id),
                          "eta": (None, eta)})
    return shipment


def serial_problem(serial: str) -> str | None:
    """Why `serial` (trimmed) cannot be a logger serial, or None. Any printable text of 1 to
    64 characters: vendors print serials with spaces ('0434 EF00 4B29 0A'), kept as typed;
    serials are compared by `logger_key` everywhere."""
    if not serial or len(serial) > SERIAL_MAX:
        return f"A logger serial has 1 to {SERIAL_MAX} characters; {serial[:70]!r} has {len(serial)}."
    if not serial.isprintable():
        return f"{serial!r} is not a logger serial: it holds a control character (tab, line break...)."
    if not logger_key(serial):
        return f"{serial!r} is not a logger serial: it has no letter or digit."
    return None


def _logger_errors(spec: LoggerSpec) -> list[dict[str, str]]:
    errors = []
    problem = serial_problem(spec.serial)
    if problem:
        errors.append({"field": "loggers", "message": problem})
    if spec.zone and (problem := zone_problem(spec.zone)):
        errors.append({"field": "loggers", "message": problem})
    return errors


def zone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone name (as a logger's zone is kept), or None."""
    if len(name) > ZONE_MAX:
        return f"{name[:70]!r} is not a time zone name (e.g. Europe/Berlin)."
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"{name!r} is not a time zone name (e.g. Europe/Berlin)."
    return None


def on_handoff(*, session: Session, now: datetime, case_id: int, giver_roles: Sequence[str],
               receiver_roles: Sequence[str]) -> bool:
    """Move the case's shipment on when a handoff completes: a courier's receipt dispatches
    it, a receipt from a courier receives it. Conditional updates: a shipment moves once.
    False if no shipment moved (a leg travelled without one)."""
    if "courier" in receiver_roles:
        moved = session.execute(update(Shipment)
                                .where(col(Shipment.case_id) == case_id, col(Shipment.state) == "open")
                                .values(state="in_transit", dispatched_at=now))
    elif "courier" in giver_roles:
        moved = session.execute(update(Shipment)
                                .where(col(Shipment.case_id) == case_id,
                                       col(Shipment.state) == "in_transit")
                                .values(state="received", received_at=now))
    else:
        return False
    return bool(moved.rowcount)  # type: ignore[attr-defined]


def leg_into(case: Case, site_id: int) -> str | None:
    """The leg that ends at `site_id` (a delivery's receiving site), if any."""
    return next((leg for leg, (_origin, destination) in legs_of(case).items()
                 if destination == site_id), None)


def no_data_fingerprint(case_id: int, leg: str) -> str:
    """The one `no_temperature_data` alarm of a case's leg (coi.services.custody raises it)."""
    return f"no-temperature-data:{case_id}:{leg}"


@dataclass(frozen=True)
class ShipmentView:
    shipment: Shipment
    case: Case
    loggers: list[ShipmentLogger]
    origin: Site
    destination: Site

    @property
    def coi(self) -> str:
        return coi_of(self.case).text


def visible_shipment(*, session: Session, actor: Actor, shipment_id: int) -> ShipmentView:
    """The shipment if the reader may see it: staff of its case's sites, and couriers."""
    shipment = session.get(Shipment, shipment_id)
    case = session.get(Case, shipment.case_id) if shipment else None
    if shipment is None or case is None or not (
            allowed_at_any(actor, "shipment.view", case_sites(case)) or allowed(actor, "shipment.view_any")):
        raise NotFound(f"No shipment {shipment_id} that you may see.")
    return _view(session, shipment, case)


def require_upload(actor: Actor, view: ShipmentView) -> None:
    """Logger data for a shipment comes from couriers (who carry every shipment) and from the
    staff of its case's sites who may upload; anyone else is refused."""
    if not (allowed(actor, "shipment.view_any") and allowed(actor, "logger.upload")) and \
            not allowed_at_any(actor, "logger.upload", case_sites(view.case)):
        raise Forbidden("You are not allowed to upload logger data for this shipment.")


def view_of(*, session: Session, shipment_id: int) -> ShipmentView:
    """The shipment as the system sees it (for jobs and checks that act for nobody)."""
    shipment = session.get(Shipment, shipment_id)
    case = session.get(Case, shipment.case_id) if shipment else None
    if shipment is None or case is None:
        raise NotFound(f"No shipment {shipment_id}.")
    return _view(session, shipment, case)


def _view(session: Session, shipment: Shipment, case: Case) -> ShipmentView:
    loggers = list(session.exec(select(ShipmentLogger).where(ShipmentLogger.shipment_id == shipment.id)
                                .order_by(col(ShipmentLogger.id))))
    origin = session.get(Site, shipment.origin_site_id)
    destination = session.get(Site, shipment.destination_site_id)
    assert origin is not None and destination is not None
    return ShipmentView(shipment, case, loggers, origin, destination)


def of_case(*, session: Session, case: Case) -> list[Shipment]:
    return list(session.exec(select(Shipment).where(Shipment.case_id == case.id)
                             .order_by(col(Shipment.id))))


# The shipments list's filter: which states each choice shows.
LIST_FILTERS = {"under_way": NOT_RECEIVED, "received": ("received",),
                "all": ("open", "in_transit", "received")}


def under_way(*, session: Session, actor: Actor, limit: int = 200,
              shown: str = "under_way") -> list[ShipmentView]:
    """Shipments the reader may see: by default those not yet received, oldest first; with
    `shown` "received" or "all" (a courier looking back at a delivery), newest first."""
    states = LIST_FILTERS[shown]
    order = ((col(Shipment.opened_at), col(Shipment.id)) if shown == "under_way"
             else (col(Shipment.opened_at).desc(), col(Shipment.id).desc()))
    rows = session.exec(select(Shipment, Case).join(Case, col(Case.id) == Shipment.case_id)
                        .where(col(Shipment.state).in_(states))
                        .order_by(*order).limit(limit)).all()
    courier = allowed(actor, "shipment.view_any")
    return [_view(session, shipment, case) for shipment, case in rows
            if courier or allowed_at_any(actor, "shipment.view", case_sites(case))]
