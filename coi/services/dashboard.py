"""The coordinator's dashboard: the open alarms, where the active cases stand on their routes
(and which deadlines come next), and the shipments on the road, for the reader's sites, as of
`now`.

Built for a large book of cases: the cases are counted by the database (GROUP BY), never
loaded one by one; only the nearest deadlines and the shipments in transit are read as rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, false, func, or_
from sqlalchemy import case as when
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from coi.core import alerting
from coi.core.access import Actor, sites_for
from coi.core.alerting import Alerting
from coi.core.display import duration_words
from coi.core.route import Route
from coi.models import Alarm, Case, LoggerReading, ProductRoute, Shipment, ShipmentLogger, Site, coi_of
from coi.services import alarms, holds, masterdata
from coi.services.alarms import InboxRow
from coi.services.holds import Hold
from coi.services.loggers.evaluation import profile_of

ALARM_ROWS = 10
DEADLINE_ROWS = 20
SHIPMENT_ROWS = 100
HELD_ROWS = 50


def duration_text(span: timedelta) -> str:
    """A length of time as read on a board: the platform's one way of saying a duration
    (`coi.core.display.duration_words`). The sign is ignored; callers say "overdue by" or
    "late by"."""
    return duration_words(span) if span else "less than 1 min"


@dataclass(frozen=True)
class StepCount:
    """The active cases whose next step is `step`."""

    step: str | None  # None: active cases with no next step on their route
    title: str
    cases: int
    overdue: int  # next_due_at <= now
    earliest_due: datetime | None


@dataclass(frozen=True)
class Deadline:
    """One case's next step and when it is due."""

    coi: str
    step: str
    title: str
    due_at: datetime
    left: timedelta  # zero or less: overdue (the sweep's rule: due_at <= now)

    @property
    def overdue(self) -> bool:
        return self.left <= timedelta(0)

    @property
    def left_text(self) -> str:
        return f"overdue by {duration_text(self.left)}" if self.overdue else duration_text(self.left)


@dataclass(frozen=True)
class InTransit:
    """A shipment the courier has, with its newest reading judged against its own profile."""

    shipment: Shipment
    coi: str
    origin: str
    destination: str
    reading_at: datetime | None  # None: no data yet
    celsius: float | None
    logger: str | None
    outside: bool  # the newest reading is outside the profile's limits (a limit is within)
    to_eta: timedelta | None  # zero or less: late (the ETA sweep's rule: eta <= now)

    @property
    def late(self) -> bool:
        return self.to_eta is not None and self.to_eta <= timedelta(0)

    @property
    def eta_text(self) -> str:
        if self.to_eta is None:
            return "no ETA"
        return f"late by {duration_text(self.to_eta)}" if self.late else f"in {duration_text(self.to_eta)}"


@dataclass(frozen=True)
class Board:
    now: datetime
    alarm_counts: dict[str, int]  # severity -> open and acknowledged alarms
    alarms: list[InboxRow]  # the first ALARM_ROWS, most severe and newest first
    steps: list[StepCount]  # in route order
    deadlines: list[Deadline]  # the DEADLINE_ROWS nearest, most overdue first
    shipments: list[InTransit]  # the first SHIPMENT_ROWS, soonest ETA first
    shipments_total: int
    held: list[tuple[str, list[Hold]]] = field(default_factory=list)  # (COI, its holds)

    @property
    def active_cases(self) -> int:
        return sum(step.cases for step in self.steps)

    @property
    def overdue_cases(self) -> int:
        return sum(step.overdue for step in self.steps)


def board(*, session: Session, actor: Actor, now: datetime,
          settings: Alerting = alerting.DEFAULT) -> Board:
    """Everything on the dashboard of `actor` as of `now`: only what concerns the sites
    where they hold "dashboard.view" (alarms: those they may see in their inbox)."""
    sites = sites_for(actor, "dashboard.view")
    at_sites = _case_at(sites)
    counted = _counted(session, now, at_sites)
    routes = _routes(session, {route_id for route_id, *_rest in counted})
    shipments, total = _in_transit(session, now, at_sites)
    return Board(
        now=now,
        alarm_counts=alarms.open_counts(session=session, actor=actor),
        alarms=alarms.inbox(session=session, actor=actor, settings=settings, state="active",
                            limit=ALARM_ROWS),
        steps=_steps(counted, routes),
        deadlines=_deadlines(session, now, at_sites, routes),
        shipments=shipments, shipments_total=total, held=_held(session, at_sites))


def _held(session: Session, at_sites: ColumnElement[bool]) -> list[tuple[str, list[Hold]]]:
    """The cases at these sites whose material is on hold, oldest hold first."""
    ids = session.exec(select(Alarm.case_id).join(Case, col(Case.id) == Alarm.case_id)
                       .where(at_sites, holds.holding_clause()).distinct()).all()
    found = holds.holds_by_case(session=session, case_ids=[i for i in ids if i is not None])
    rows = []
    for case_id, case_holds in found.items():
        case_ = session.get(Case, case_id)
        assert case_ is not None
        rows.append((coi_of(case_).text, case_holds))
    return sorted(rows, key=lambda row: row[1][0].since)[:HELD_ROWS]


def _case_at(sites: set[int]) -> ColumnElement[bool]:
    if not sites:
        return false()
    return or_(col(Case.site_id).in_(sites), col(Case.manufacturing_site_id).in_(sites))


def _active(at_sites: ColumnElement[bool]) -> tuple[ColumnElement[bool], ...]:
    return (col(Case.state) != "complete", at_sites)


def _counted(session: Session, now: datetime,
             at_sites: ColumnElement[bool]) -> list[tuple[int, str | None, int, int, datetime | None]]:
    """Active cases counted by route version and next step: (route id, step, cases, overdue,
    earliest due). By route version too, so each step is titled and ordered by the route
    its cases follow."""
    overdue = func.sum(when((col(Case.next_due_at) <= now, 1), else_=0))
    # Five columns: more than sqlmodel's typed select() takes, so SQLAlchemy's.
    rows = session.execute(
        sa_select(col(Case.route_id), col(Case.next_step), func.count(), overdue,
                  func.min(col(Case.next_due_at)))
        .where(*_active(at_sites)).group_by(col(Case.route_id), col(Case.next_step))).all()
    return [(route_id, step, int(cases), int(late or 0), earliest)
            for route_id, step, cases, late, earliest in rows]


def _routes(session: Session, ids: set[int]) -> dict[int, Route]:
    """The route versions the active cases follow (a handful, however many cases)."""
    if not ids:
        return {}
    rows = session.exec(select(ProductRoute).where(col(ProductRoute.id).in_(ids))).all()
    return {row.id: masterdata.route_of(row) for row in rows if row.id is not None}


def _steps(counted: list[tuple[int, str | None, int, int, datetime | None]],
           routes: dict[int, Route]) -> list[StepCount]:
    """The counts of all route versions merged by step name, in route order."""
    order, titles = _step_order(routes)
    merged: dict[str | None, StepCount] = {}
    for _route_id, step, cases, late, earliest in counted:
        seen = merged.get(step)
        if seen is not None:
            cases, late = cases + seen.cases, late + seen.overdue
            earliest = min((t for t in (earliest, seen.earliest_due) if t is not None), default=None)
        merged[step] = StepCount(step, titles.get(step or "", step or "No next step"), cases, late,
                                 earliest)
    # Steps of no known route, and cases with none, go last.
    return sorted(merged.values(),
                  key=lambda s: (s.step is None, order.get(s.step or "", len(order)), s.step or ""))


def _step_order(routes: dict[int, Route]) -> tuple[dict[str, int], dict[str, str]]:
    """Each step's place and title. Routes are taken oldest version first; a step that only
    a newer version has goes after the older route's steps (a route is an order per product,
    not across products, so there is no truer merge)."""
    order: dict[str, int] = {}
    titles: dict[str, str] = {}
    for route_id in sorted(routes):
        for step in routes[route_id].steps:
            order.setdefault(step.name, len(order))
            titles.setdefault(step.name, step.title)
    return order, titles


def _deadlines(session: Session, now: datetime, at_sites: ColumnElement[bool],
               routes: dict[int, Route]) -> list[Deadline]:
    cases = session.exec(select(Case).where(*_active(at_sites), col(Case.next_due_at).is_not(None))
                         .order_by(col(Case.next_due_at), col(Case.id)).limit(DEADLINE_ROWS)).all()
    found = []
    for case_ in cases:
        assert case_.next_due_at is not None
        step = case_.next_step or ""
        route = routes.get(case_.route_id)
        title = next((s.title for s in route.steps if s.name == step), step) if route else step
        found.append(Deadline(coi_of(case_).text, step, title, case_.next_due_at,
                              case_.next_due_at - now))
    return found


def _in_transit(session: Session, now: datetime,
                at_sites: ColumnElement[bool]) -> tuple[list[InTransit], int]:
    origin, destination = aliased(Site), aliased(Site)
    where = (col(Shipment.state) == "in_transit", at_sites)
    rows = session.exec(
        select(Shipment, Case, origin.name, destination.name)
        .join(Case, col(Case.id) == col(Shipment.case_id))
        .join(origin, col(origin.id) == col(Shipment.origin_site_id))
        .join(destination, col(destination.id) == col(Shipment.destination_site_id))
        .where(*where)
        .order_by(col(Shipment.eta).is_(None), col(Shipment.eta), col(Shipment.id))
        .limit(SHIPMENT_ROWS)).all()
    total = len(rows)
    if total == SHIPMENT_ROWS:
        total = session.exec(select(func.count()).select_from(Shipment)
                             .join(Case, col(Case.id) == col(Shipment.case_id)).where(*where)).one()
    return [_on_the_road(session, now, shipment, case_, origin_name, destination_name)
            for shipment, case_, origin_name, destination_name in rows], total


def _on_the_road(session: Session, now: datetime, shipment: Shipment, case_: Case,
                 origin_name: str, destination_name: str) -> InTransit:
    latest = _latest_reading(session, shipment)
    outside = False
    if latest is not None:
        profile = profile_of(shipment)
        outside = ((profile.low is not None and latest.celsius < profile.low)
                   or (profile.high is not None and latest.celsius > profile.high))
    return InTransit(shipment, coi_of(case_).text, origin_name, destination_name,
                     latest.at if latest else None, latest.celsius if latest else None,
                     latest.logger if latest else None, outside,
                     shipment.eta - now if shipment.eta else None)


def _latest_reading(session: Session, shipment: Shipment) -> LoggerReading | None:
    """The newest reading of the shipment's loggers. Asked logger by logger, so that each
    question is one step down the (shipment, logger, at) index, however many readings a
    long journey has; a shipment has a logger or two."""
    serials = session.exec(select(ShipmentLogger.serial)
                           .where(ShipmentLogger.shipment_id == shipment.id)).all()
    newest: LoggerReading | None = None
    for serial in serials:
        reading = session.exec(select(LoggerReading)
                               .where(LoggerReading.shipment_id == shipment.id,
                                      LoggerReading.logger == serial)
                               .order_by(col(LoggerReading.at).desc())
                               .limit(1)).first()
        if reading is not None and (newest is None or reading.at > newest.at):
            newest = reading
    return newest
