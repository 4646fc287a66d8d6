"""Holds: an alarm of a blocking kind (the case's route says which, `coi.core.route`) holds
the material of the case it names until QA decides with a signature. Computed, never
stored: a hold is an alarm of a holding code that is open, acknowledged, or resolved as
quarantined and not decided again (`coi.services.alarms.decide`). What a hold stops is the
route version's business, so a case keeps the meaning of the version it started with.

`holds_of` is what the scan (through `coi.core.workflow.Held`), the pages, and the release
and infusion preconditions ask.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import Session, col, select

from coi.core.display import local_text
from coi.core.route import Route
from coi.core.workflow import Held
from coi.models import (
    HOLDING_OUTCOMES,
    Alarm,
    AlarmDeviation,
    AlarmEvent,
    Case,
    LoggerFileLink,
    LoggerFileResult,
    Shipment,
    Unit,
    User,
    coi_of,
    serial_of,
)
from coi.services import masterdata
from coi.services.shipments import no_data_fingerprint

# What holds, in words ("On hold: temperature excursion on shipment 12 ...").
CODE_WORDS = {
    "other_case": "a unit of another case scanned",
    "not_in_custody": "a unit out of custody",
    "wrong_person": "the wrong person at a handoff",
    "excursion_single": "temperature excursion",
    "excursion_cumulative": "cumulative time out of range",
    "stability_budget": "stability budget used up",
    "no_temperature_data": "no temperature data",
    "expired": "expired unit",
    "thaw_window": "thaw window missed",
}


@dataclass(frozen=True)
class Hold:
    """One alarm holding a case: what holds it (`alarm`, `subject`), since when, the steps it
    stops, and what would lift it."""

    alarm: Alarm
    subject: str  # "shipment 12", "unit A9998 26 000003 AP01 X", "case A9998 26 000003 Z"
    steps: tuple[str, ...]

    @property
    def since(self) -> datetime:
        return self.alarm.raised_at

    @property
    def quarantined(self) -> bool:
        return self.alarm.state == "resolved" and self.alarm.outcome in HOLDING_OUTCOMES

    @property
    def what(self) -> str:
        return CODE_WORDS.get(self.alarm.code, self.alarm.code.replace("_", " "))

    @property
    def lifted_by(self) -> str:
        if self.quarantined:
            return ("quarantined by QA: a second signed QA decision (accepted, accepted under a "
                    "deviation, or destroyed) lifts it")
        return "QA must decide (a signed resolution of the alarm)"

    def message(self, zone: str = "UTC") -> str:
        return (f"On hold: {self.what} on {self.subject}, since {local_text(self.since, zone)} "
                f"(alarm {self.alarm.id}); {self.lifted_by}.")

    def held(self, zone: str = "UTC") -> Held:
        return Held(frozenset(self.steps), self.message(zone))

    def document(self, zone: str = "UTC") -> dict[str, object]:
        """As the scan page and the API tell it."""
        return {"alarm": self.alarm.id, "kind": self.alarm.kind, "code": self.alarm.code,
                "severity": self.alarm.severity, "what": self.what, "subject": self.subject,
                "since": self.since.isoformat(), "since_local": local_text(self.since, zone),
                "state": self.alarm.state, "outcome": self.alarm.outcome,
                "steps": list(self.steps), "lifted_by": self.lifted_by,
                "message": self.message(zone)}


def holding_clause() -> ColumnElement[bool]:
    """Alarms that may hold: open, acknowledged, or resolved as quarantined."""
    return or_(col(Alarm.state).in_(("open", "acknowledged")),
               and_(col(Alarm.state) == "resolved", col(Alarm.outcome).in_(HOLDING_OUTCOMES)))


def holds_of(*, session: Session, case: Case, route: Route | None = None) -> list[Hold]:
    """The holds on `case`, oldest first: each alarm of the case that holds material under
    its route version, with the steps it stops."""
    route = route or masterdata.route_of_case(session=session, case=case)
    alarms = session.exec(select(Alarm).where(Alarm.case_id == case.id, holding_clause())
                          .order_by(col(Alarm.raised_at), col(Alarm.id))).all()
    return [Hold(alarm, _subject(session, case, alarm), steps) for alarm in alarms
            if (steps := route.held_steps(alarm.kind, alarm.code, alarm.severity))]


def holds_by_case(*, session: Session, case_ids: Iterable[int]) -> dict[int, list[Hold]]:
    """`holds_of` for several cases at once (the dashboard, the inbox): one query for the
    alarms, the cases' routes read once each."""
    ids = sorted(set(case_ids))
    if not ids:
        return {}
    found: dict[int, list[Hold]] = {}
    alarms = session.exec(select(Alarm).where(col(Alarm.case_id).in_(ids), holding_clause())
                          .order_by(col(Alarm.raised_at), col(Alarm.id))).all()
    for alarm in alarms:
        case = session.get(Case, alarm.case_id)
        assert case is not None
        route = masterdata.route_of_case(session=session, case=case)
        steps = route.held_steps(alarm.kind, alarm.code, alarm.severity)
        if steps:
            found.setdefault(case.id, []).append(  # type: ignore[arg-type]
                Hold(alarm, _subject(session, case, alarm), steps))
    return found


def _subject(session: Session, case: Case, alarm: Alarm) -> str:
    leg = json.loads(alarm.rule).get("leg") if alarm.code == "no_temperature_data" else None
    if leg:
        return f"the {leg} leg"
    if alarm.shipment_id is not None:
        return f"shipment {alarm.shipment_id}"
    unit = session.get(Unit, alarm.unit_id) if alarm.unit_id else None
    if unit is not None:
        return f"unit {serial_of(unit).display}"
    return f"case {coi_of(case).display}"


@dataclass(frozen=True)
class Decision:
    """QA's signed decision on an alarm of a case: a resolution, or the second decision on a
    quarantined product; with the deviation it was accepted under."""

    event: AlarmEvent
    alarm: Alarm
    signer: User | None
    deviation: str | None


def decisions_of(*, session: Session, case: Case) -> list[Decision]:
    """The case's QA decisions (resolutions and second decisions), oldest first."""
    rows = session.exec(select(AlarmEvent, Alarm).join(Alarm, col(Alarm.id) == AlarmEvent.alarm_id)
                        .where(Alarm.case_id == case.id,
                               col(AlarmEvent.action).in_(("resolved", "decided")))
                        .order_by(col(AlarmEvent.at), col(AlarmEvent.id))).all()
    ids = sorted({alarm.id for _event, alarm in rows if alarm.id is not None})
    deviations = {row.event_id: row.reference for row in session.exec(
        select(AlarmDeviation).where(col(AlarmDeviation.alarm_id).in_(ids)))} if ids else {}
    return [Decision(event, alarm, session.get(User, event.actor_id) if event.actor_id else None,
                     deviations.get(event.id))  # type: ignore[arg-type]
            for event, alarm in rows]


# --------------------------------------------------------- release and infusion preconditions

# The steps with preconditions, found by what their doer signs (not by their name), and the
# legs that come before them: every shipment of those legs must be received with its
# logger data judged before the product is released or infused.
RELEASE, ADMINISTER = "released", "administered"
LEGS_BEFORE = {RELEASE: ("outbound",), ADMINISTER: ("outbound", "return")}
DOING = {RELEASE: "release", ADMINISTER: "infusion"}


@dataclass(frozen=True)
class Check:
    """One precondition of QA release or infusion, checked: its name, whether it holds,
    why not (the refusal's message and code), and what it found (for the manifest)."""

    check: str
    ok: bool
    message: str = ""
    code: str = "precondition"
    found: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """As the signed manifest lists it."""
        return {"check": self.check, "ok": self.ok, **self.found}

    def held(self, step: str) -> Held:
        """A failed check as the pure judge takes it: a hold of `step` with its own code."""
        return Held(frozenset({step}), self.message, self.code)


def has_preconditions(step_sign: str | None) -> bool:
    return step_sign in LEGS_BEFORE


def preconditions(*, session: Session, case: Case, route: Route, step_name: str,
                  step_sign: str | None, now: datetime, last_step_at: datetime | None = None,
                  found: list[Hold] | None = None, max_hours: float | None = None,
                  zone: str = "UTC") -> list[Check]:
    """What QA release (the step signed "released") and infusion (signed "administered")
    require, each checked: no hold on the case; every shipment of the legs before it
    received, with logger data judged; stability budget left; for infusion also the thaw
    window (the step's `max_hours` after `last_step_at`, the thaw) not passed and no open
    critical custody alarm. Empty for any other step."""
    if step_sign not in LEGS_BEFORE:
        return []
    doing = DOING[step_sign]
    found = holds_of(session=session, case=case, route=route) if found is None else found
    listed: dict[str, Any] = {"holds": [h.alarm.id for h in found]} if found else {}
    # The QA decisions that lifted holds: what the release or infusion rests on (a deviation
    # the product was accepted under is named in what is signed).
    lifted = [d for d in decisions_of(session=session, case=case)
              if d.event.outcome not in HOLDING_OUTCOMES
              and route.held_steps(d.alarm.kind, d.alarm.code, d.alarm.severity)]
    if lifted:
        listed["decisions"] = [{"alarm": d.alarm.id, "outcome": d.event.outcome,
                                **({"deviation": d.deviation} if d.deviation else {})}
                               for d in lifted]
    checks = [Check("no_holds", not found, " ".join(h.message(zone) for h in found
                                                    if step_name not in h.steps), "on_hold",
                    listed)]
    legs = session.exec(select(Shipment).where(
        Shipment.case_id == case.id, col(Shipment.leg).in_(LEGS_BEFORE[step_sign]))
        .order_by(col(Shipment.id))).all()
    for leg in LEGS_BEFORE[step_sign]:
        if route.shipping.get(leg) and not any(shipment.leg == leg for shipment in legs):
            checks.append(_unlogged_leg(session, case, leg, step_name, found, doing))
    for shipment in legs:
        checks.append(Check(
            f"{shipment.leg}_received", shipment.received_at is not None,
            f"Shipment {shipment.id} of the {shipment.leg} leg is not received yet: receive it "
            f"before {doing}.", "not_received", {"shipment": shipment.id}))
        # A file's result is written once it is read and judged: readings, or a daily-summary
        # report's days (loggers/summaries.py writes a result with no readings).
        judged = session.exec(select(LoggerFileResult.file_id).join(
            LoggerFileLink, col(LoggerFileLink.file_id) == LoggerFileResult.file_id)
            .where(LoggerFileLink.shipment_id == shipment.id)).first() is not None
        checks.append(Check(
            f"{shipment.leg}_logger_data", judged,
            f"No temperature data for the {shipment.leg} leg: upload the logger file before "
            f"{doing} (shipment {shipment.id}).", "no_temperature_data",
            {"shipment": shipment.id}))
    from coi.services.loggers.evaluation import case_budget  # the evaluation reads shipments
    budget = case_budget(session=session, case_id=case.id, now=now)  # type: ignore[arg-type]
    if budget is None:
        checks.append(Check("stability_budget", True, found={"left_minutes": None}))
    else:
        left = int(budget.left.total_seconds() // 60)
        checks.append(Check(
            "stability_budget", budget.left > timedelta(0) and not budget.exhausted,
            f"Stability budget used up: {int(budget.used.total_seconds() // 60)} min out of "
            f"range of {int(budget.total.total_seconds() // 60)} allowed across the legs: no "
            f"{doing}.", "budget_used_up", {"left_minutes": left}))
    if step_sign == ADMINISTER:
        if max_hours is None or last_step_at is None:
            checks.append(Check("thaw_window", True))
        else:
            due = last_step_at + timedelta(hours=max_hours)
            checks.append(Check(
                "thaw_window", now <= due,
                f"Thaw window passed: the product had to be infused by {local_text(due, zone)} "
                f"({max_hours:g} h after thaw).", "thaw_window_passed", {"due": due.isoformat()}))
        critical = session.exec(select(Alarm.id).where(
            Alarm.case_id == case.id, Alarm.kind == "custody", Alarm.severity == "critical",
            col(Alarm.state).in_(("open", "acknowledged"))).order_by(col(Alarm.id))).all()
        # One refusal per cause: an alarm that already holds the infusion is refused as a hold.
        unheld = [i for i in critical if i not in {h.alarm.id for h in found if step_name in h.steps}]
        checks.append(Check(
            "no_critical_custody_alarm", not critical,
            f"Open critical custody alarm on the case (alarm {', '.join(map(str, unheld))}): "
            f"QA must resolve it before infusion." if unheld else "", "critical_alarm_open",
            {"alarms": list(critical)} if critical else {}))
    return checks


def _unlogged_leg(session: Session, case: Case, leg: str, step_name: str, found: list[Hold],
                  doing: str) -> Check:
    """A leg the route ships that travelled without a shipment: no logger data can come for
    it, so only QA's decision on its `no_temperature_data` alarm (raised at the delivery,
    coi.services.custody) lets the product go on. Refused once: when that alarm already
    holds the step, the hold says so."""
    alarm = session.exec(select(Alarm).where(
        Alarm.fingerprint == no_data_fingerprint(case.id, leg))).first()  # type: ignore[arg-type]
    if alarm is None:
        return Check(f"{leg}_logger_data", False,
                     f"No temperature data for the {leg} leg: no shipment with loggers was "
                     f"opened for it, and the leg is not on record as delivered; no {doing}.",
                     "no_temperature_data", {"shipment": None})
    decided = alarm.state == "resolved" and alarm.outcome not in HOLDING_OUTCOMES
    holding = any(h.alarm.id == alarm.id and step_name in h.steps for h in found)
    return Check(f"{leg}_logger_data", decided,
                 "" if decided or holding else
                 f"No temperature data for the {leg} leg: it travelled without a shipment and "
                 f"its loggers; QA must decide on alarm {alarm.id} before {doing}.",
                 "no_temperature_data",
                 {"shipment": None, "alarm": alarm.id, "outcome": alarm.outcome})
