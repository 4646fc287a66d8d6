"""Alarms as a workflow: raised once where a breach is seen, told to the right people,
escalated to the next group when nobody acknowledges in time, acknowledged with a comment,
and resolved by QA with an e-signature and the outcome for the product.

Every change of state is a conditional UPDATE whose row count is checked, and each change
is an append-only `alarm_event` row (unique per alarm, action and level): two web workers
or two scheduler processes acting at once still change an alarm once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, false, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from coi.core import alerting
from coi.core.access import Actor, allowed, allowed_at_any, sites_for
from coi.core.alerting import Alerting, Level
from coi.core.canonical import canonical_json
from coi.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from coi.models import (
    DEVIATION_MAX,
    HOLDING_OUTCOMES,
    OUTCOMES,
    SECOND_DECISIONS,
    Alarm,
    AlarmDeviation,
    AlarmEvent,
    Case,
    Notification,
    RoleGrant,
    Shipment,
    Signature,
    Unit,
    User,
    coi_of,
    serial_of,
)
from coi.services import audit
from coi.services import signatures as signature_service
from coi.services.loggers.evaluation import still_going_on

log = logging.getLogger(__name__)

SEVERITY_RANK = {"critical": 0, "major": 1, "minor": 2}
COMMENT_MAX = 2000
# Changes that are e-mailed to people; every change goes to the webhooks.
MAILED = ("raised", "escalated")


def raise_alarm(
    *, session: Session, now: datetime, kind: str, code: str, severity: str, summary: str,
    rule: Mapping[str, Any], case_id: int | None = None, site_id: int | None = None,
    shipment_id: int | None = None, unit_id: int | None = None, event_id: int | None = None,
    actor: Actor | None = None, fingerprint: str | None = None,
) -> Alarm | None:
    """Raise an alarm with a copy of the rule that fired. With a `fingerprint` (a breach that
    is found again each time it is looked for), it is raised once: None if it already was,
    by this process or another one a moment ago. The scheduler's notify job tells people."""
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r}")
    if case_id is not None:
        # The lock a scan of the case takes (coi.services.custody): an alarm that may hold
        # the case lands either before a scan in flight (which then sees the hold) or after it.
        # On PostgreSQL the alarm's foreign key to the case already takes a KEY SHARE lock that
        # a scan's FOR UPDATE waits for; this says so outright rather than leaning on it.
        session.exec(select(Case.id).where(Case.id == case_id).with_for_update()).first()
    alarm = Alarm(kind=kind, code=code, severity=severity, raised_at=now, case_id=case_id,
                  site_id=site_id, shipment_id=shipment_id, unit_id=unit_id, event_id=event_id,
                  actor_id=actor.user_id if actor else None, summary=summary,
                  rule=canonical_json(dict(rule)), fingerprint=fingerprint, notify_at=now)
    try:
        with session.begin_nested():
            session.add(alarm)
            session.flush()
    except IntegrityError:
        if fingerprint is None:
            raise
        return None  # the unique fingerprint: raised already
    session.add(AlarmEvent(alarm_id=alarm.id, at=now, action="raised", level=0,  # type: ignore[arg-type]
                           actor_id=actor.user_id if actor else None, comment=summary))
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="alarm", entity_id=alarm.id,
                 action="create", reason=summary,
                 changes={"code": (None, code), "severity": (None, severity)})
    return alarm


# --- who sees an alarm ---------------------------------------------------------------------

def sites_of(session: Session, alarm: Alarm) -> set[int]:
    """The sites an alarm concerns: where it was seen, its case's sites, its shipment's ends."""
    sites = {alarm.site_id} if alarm.site_id else set()
    case_ = session.get(Case, alarm.case_id) if alarm.case_id else None
    if case_ is not None:
        sites |= {case_.site_id, case_.manufacturing_site_id}
    shipment = session.get(Shipment, alarm.shipment_id) if alarm.shipment_id else None
    if shipment is not None:
        sites |= {shipment.origin_site_id, shipment.destination_site_id}
    return sites


def may(*, session: Session, actor: Actor, alarm: Alarm, permission: str = "alarm.view") -> bool:
    """May `actor` use `permission` (seeing it, by default) on `alarm`? Staff, coordinators
    and QA at a site the alarm concerns; couriers, for shipment alarms (they carry every
    shipment); administrators never (they manage accounts, not product)."""
    if allowed_at_any(actor, permission, sites_of(session, alarm)):
        return True
    courier = allowed(actor, "shipment.view_any") and allowed(actor, permission)
    return alarm.shipment_id is not None and courier


def visible_alarm(*, session: Session, actor: Actor, alarm_id: int, lock: bool = False) -> Alarm:
    alarm = session.get(Alarm, alarm_id, with_for_update=lock)
    if alarm is None or not may(session=session, actor=actor, alarm=alarm):
        raise NotFound(f"No alarm {alarm_id} that you may see.")
    return alarm


def _visible_clause(actor: Actor) -> ColumnElement[bool]:
    sites = sites_for(actor, "alarm.view")
    clauses: list[ColumnElement[bool]] = []
    if sites:
        clauses += [col(Alarm.site_id).in_(sites), col(Case.site_id).in_(sites),
                    col(Case.manufacturing_site_id).in_(sites),
                    col(Shipment.origin_site_id).in_(sites), col(Shipment.destination_site_id).in_(sites)]
    if allowed(actor, "shipment.view_any"):
        clauses.append(col(Alarm.shipment_id).is_not(None))
    return or_(*clauses) if clauses else false()


STATE_FILTERS: dict[str, tuple[str, ...]] = {
    "active": ("open", "acknowledged"), "open": ("open",), "acknowledged": ("acknowledged",),
    # Resolved as quarantined: the product waits for QA's second decision (decide).
    "quarantined": ("resolved",),
    "resolved": ("resolved",), "all": ("open", "acknowledged", "resolved")}


@dataclass(frozen=True)
class InboxRow:
    alarm: Alarm
    coi: str | None
    told_to_me: bool  # the group told so far includes a role I hold at its sites


def inbox(*, session: Session, actor: Actor, settings: Alerting = alerting.DEFAULT,
          state: str = "active", severity: str | None = None, kind: str | None = None,
          limit: int = 200) -> list[InboxRow]:
    """The alarms the actor may see, most severe first and newest first within a severity."""

    if state not in STATE_FILTERS:
        raise InvalidInput(f"Unknown state filter {state!r}; use one of {', '.join(STATE_FILTERS)}.")
    rank = case(SEVERITY_RANK, value=col(Alarm.severity), else_=9)
    query = (select(Alarm, Case).outerjoin(Case, col(Case.id) == col(Alarm.case_id))
             .outerjoin(Shipment, col(Shipment.id) == col(Alarm.shipment_id))
             .where(_visible_clause(actor), col(Alarm.state).in_(STATE_FILTERS[state])))
    if state == "quarantined":
        query = query.where(col(Alarm.outcome).in_(HOLDING_OUTCOMES))
    if severity:
        query = query.where(col(Alarm.severity) == severity)
    if kind:
        query = query.where(col(Alarm.kind) == kind)
    rows = session.exec(query.order_by(rank, col(Alarm.raised_at).desc(), col(Alarm.id).desc())
                        .limit(limit)).all()
    return [InboxRow(alarm, coi_of(case_).text if case_ else None,
                     _told(session, actor, alarm, settings)) for alarm, case_ in rows]


def _told(session: Session, actor: Actor, alarm: Alarm, settings: Alerting) -> bool:
    sites = sites_of(session, alarm)
    for number in range(min(alarm.level, len(settings.levels) - 1) + 1):
        level = settings.levels[number]
        if any(role in level.roles and (level.scope == "all" or site in sites
                                        or (role == "courier" and alarm.shipment_id))
               for site, role in actor.grants):
            return True
    return False


def open_counts(*, session: Session, actor: Actor) -> dict[str, int]:
    """Open and acknowledged alarms the actor may see, by severity (for the menu and the
    dashboard)."""
    from sqlalchemy import func

    rows = session.exec(select(Alarm.severity, func.count(col(Alarm.id)))
                        .outerjoin(Case, col(Case.id) == col(Alarm.case_id))
                        .outerjoin(Shipment, col(Shipment.id) == col(Alarm.shipment_id))
                        .where(_visible_clause(actor), col(Alarm.state).in_(STATE_FILTERS["active"]))
                        .group_by(col(Alarm.severity))).all()
    counts = dict.fromkeys(SEVERITY_RANK, 0)
    counts.update({severity: count for severity, count in rows})
    return counts


# --- acknowledging and resolving -------------------------------------------------------------

def _comment(comment: str) -> str:
    comment = (comment or "").strip()
    if not comment:
        raise InvalidInput("Say what you found or did: a comment is required.",
                           [{"field": "comment", "message": "A comment is required."}])
    if len(comment) > COMMENT_MAX:
        raise InvalidInput(f"The comment is longer than {COMMENT_MAX} characters.",
                           [{"field": "comment", "message": f"At most {COMMENT_MAX} characters."}])
    return comment


def _require(session: Session, actor: Actor, alarm: Alarm, permission: str, doing: str) -> None:
    if not may(session=session, actor=actor, alarm=alarm, permission=permission):
        raise Forbidden(f"You are not allowed to {doing}.")


def _changed(session: Session, alarm: Alarm, expected_state: str, values: dict[str, Any]) -> None:
    """Change the alarm only if it is still in `expected_state`; otherwise someone else has
    just changed it: say who did what."""
    result = session.execute(update(Alarm).where(col(Alarm.id) == alarm.id,
                                                 col(Alarm.state) == expected_state).values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.expire(alarm)
        raise Conflict(f"The alarm is {alarm.state} already ({_last_change(session, alarm)}); "
                       "nothing was changed.")
    session.expire(alarm)


def _last_change(session: Session, alarm: Alarm) -> str:
    event = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id)
                         .order_by(col(AlarmEvent.id).desc())).first()
    if event is None:
        return "no history"
    user = session.get(User, event.actor_id) if event.actor_id else None
    return f"{event.action} by {user.full_name if user else 'the system'}"


def acknowledge(*, session: Session, now: datetime, actor: Actor, alarm_id: int, comment: str) -> Alarm:
    """Someone accountable has seen it and says what they are doing: escalation stops."""
    alarm = visible_alarm(session=session, actor=actor, alarm_id=alarm_id)
    _require(session, actor, alarm, "alarm.acknowledge", "acknowledge this alarm")
    comment = _comment(comment)
    if alarm.state != "open":
        raise Conflict(f"The alarm is {alarm.state} already ({_last_change(session, alarm)}); "
                       "nothing was changed.")
    level = alarm.level
    _changed(session, alarm, "open", {"state": "acknowledged", "acknowledged_at": now,
                                      "escalate_at": None, "notify_at": now})
    session.add(AlarmEvent(alarm_id=alarm_id, at=now, action="acknowledged", level=level,
                           actor_id=actor.user_id, comment=comment))
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="alarm", entity_id=alarm_id,
                 action="acknowledge", reason=comment, changes={"state": ("open", "acknowledged")})
    return alarm


def resolve(*, session: Session, now: datetime, actor: Actor, alarm_id: int, outcome: str,
            comment: str, password: str, deviation: str | None = None) -> Alarm:
    """QA closes the alarm with the outcome for the product and an e-signature bound to what
    was decided. A temperature alarm whose excursion the latest readings show still going on
    cannot be resolved yet. Accepted under a deviation needs the deviation's reference (signed
    with the rest); quarantined keeps the material on hold until `decide`; destroyed destroys
    the units the alarm names and revokes their labels (coi.services.holds)."""

    alarm = visible_alarm(session=session, actor=actor, alarm_id=alarm_id)
    _require(session, actor, alarm, "alarm.resolve", "resolve this alarm")
    comment = _comment(comment)
    if outcome not in OUTCOMES:
        raise InvalidInput("Choose what became of the product: " + ", ".join(OUTCOMES) + ".",
                           [{"field": "outcome", "message": "Choose an outcome."}])
    if alarm.state == "open":
        raise Conflict("Acknowledge the alarm first: it is resolved once someone has taken it in hand.")
    if alarm.state != "acknowledged":
        raise Conflict(f"The alarm is {alarm.state} already ({_last_change(session, alarm)}); "
                       "nothing was changed.")
    reference = _deviation(outcome, deviation)
    if still_going_on(session=session, now=now, alarm=alarm):
        raise Conflict("The excursion is still going on in the latest readings: it can be "
                       "resolved once readings show it has ended.")
    signature = signature_service.sign(
        session=session, now=now, signer=actor, password=password, meaning="resolved",
        subject_type="alarm", subject_id=alarm.id,
        content=resolution_content(alarm, outcome, comment, now, deviation=reference))
    level = alarm.level
    _changed(session, alarm, "acknowledged", {"state": "resolved", "resolved_at": now,
                                              "outcome": outcome, "notify_at": now})
    _decided(session, now, actor, alarm, "resolved", level, outcome, comment, signature, reference)
    audit.record(session=session, now=now, actor=actor, entity="alarm", entity_id=alarm_id,
                 action="resolve", reason=comment,
                 changes={"state": ("acknowledged", "resolved"), "outcome": (None, outcome)})
    return alarm


def decide(*, session: Session, now: datetime, actor: Actor, alarm_id: int, outcome: str,
           comment: str, password: str, deviation: str | None = None) -> Alarm:
    """QA's second decision on a product quarantined by the resolution of this alarm: accepted,
    accepted under a deviation, or destroyed; signed (meaning "decided") like the first. Only
    then is the hold lifted. Once: a second decision is final."""
    alarm = visible_alarm(session=session, actor=actor, alarm_id=alarm_id)
    _require(session, actor, alarm, "alarm.resolve", "decide on this alarm")
    comment = _comment(comment)
    if outcome not in SECOND_DECISIONS:
        raise InvalidInput("Decide what becomes of the quarantined product: "
                           + ", ".join(SECOND_DECISIONS) + ".",
                           [{"field": "outcome", "message": "Choose a decision."}])
    if alarm.state != "resolved" or alarm.outcome not in HOLDING_OUTCOMES:
        raise Conflict("Only a product quarantined by the resolution of its alarm waits for a "
                       f"second decision; this alarm is {alarm.state}"
                       + (f" ({alarm.outcome.replace('_', ' ')})" if alarm.outcome else "")
                       + ": nothing was changed.")
    reference = _deviation(outcome, deviation)
    was = alarm.outcome
    signature = signature_service.sign(
        session=session, now=now, signer=actor, password=password, meaning="decided",
        subject_type="alarm", subject_id=alarm.id,
        content=resolution_content(alarm, outcome, comment, now, deviation=reference,
                                   action="decided"))
    result = session.execute(update(Alarm).where(col(Alarm.id) == alarm.id, col(Alarm.state) == "resolved",
                                                 col(Alarm.outcome) == was)
                             .values(outcome=outcome, notify_at=now))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.expire(alarm)
        raise Conflict(f"Someone decided already ({_last_change(session, alarm)}); nothing was "
                       "changed.")
    session.expire(alarm)
    _decided(session, now, actor, alarm, "decided", alarm.level, outcome, comment, signature,
             reference)
    audit.record(session=session, now=now, actor=actor, entity="alarm", entity_id=alarm_id,
                 action="decide", reason=comment, changes={"outcome": (was, outcome)})
    return alarm


def _deviation(outcome: str, deviation: str | None) -> str | None:
    """The deviation reference an outcome under a deviation needs (and no other outcome takes)."""
    reference = (deviation or "").strip()
    if outcome != "accepted_with_deviation":
        return None
    if not reference:
        raise InvalidInput("Accepting under a deviation needs the deviation's reference (e.g. "
                           "DEV-2026-0142).",
                           [{"field": "deviation", "message": "Give the deviation reference."}])
    if len(reference) > DEVIATION_MAX or not reference.isprintable():
        raise InvalidInput(f"A deviation reference is at most {DEVIATION_MAX} printable "
                           "characters.", [{"field": "deviation", "message": "Too long."}])
    return reference


def _decided(session: Session, now: datetime, actor: Actor, alarm: Alarm, action: str, level: int,
             outcome: str, comment: str, signature: Signature, deviation: str | None) -> None:
    """The signed decision's event, its deviation, and what a destruction does to the units."""
    event = AlarmEvent(alarm_id=alarm.id, at=now, action=action, level=level,  # type: ignore[arg-type]
                       actor_id=actor.user_id, comment=comment, outcome=outcome,
                       signature_id=signature.id)
    session.add(event)
    session.flush()
    if deviation is not None:
        session.add(AlarmDeviation(alarm_id=alarm.id, event_id=event.id,  # type: ignore[arg-type]
                                   reference=deviation))
        session.flush()
    if outcome == "destroyed":
        _destroy(session, now, actor, alarm)


def _destroy(session: Session, now: datetime, actor: Actor, alarm: Alarm) -> None:
    """The units the alarm names are destroyed for good: its unit; else the units a shipment
    carries on its leg; else every unit of the case still in use. Their labels are revoked."""
    from coi.services import labels  # labels -> cases -> ...: imported where it is needed

    query = select(Unit).where(Unit.case_id == alarm.case_id,
                               col(Unit.state).not_in(("consumed", "destroyed")))
    if alarm.unit_id is not None:
        query = select(Unit).where(Unit.id == alarm.unit_id)
    elif alarm.shipment_id is not None:
        shipment = session.get(Shipment, alarm.shipment_id)
        assert shipment is not None
        query = query.where(col(Unit.kind) == "drug_product_bag") if shipment.leg == "return" \
            else query.where(col(Unit.kind) != "drug_product_bag")
    for unit in session.exec(query).all():
        if unit.state == "destroyed":
            continue
        audit.record(session=session, now=now, actor=actor, entity="unit", entity_id=unit.id,
                     action="destroy", reason=f"Destroyed by QA decision on alarm {alarm.id}",
                     changes={"state": (unit.state, "destroyed")})
        unit.state = "destroyed"
        unit.expiry_check_at = None
        session.add(unit)
        labels.revoke_destroyed(session=session, now=now, actor=actor, unit=unit,
                                reason=f"Unit destroyed by QA decision on alarm {alarm.id}")
    session.flush()


def resolution_content(alarm: Alarm, outcome: str, comment: str, at: datetime, *,
                       deviation: str | None = None, action: str = "resolved") -> dict[str, Any]:
    """What QA signs when resolving (or deciding again on a quarantined product): the alarm as
    raised, the outcome, the comment, and the deviation accepted under. Rebuilt from the alarm,
    its "resolved" or "decided" event and that event's deviation to re-check the signature
    (coi.services.integrity). Keys are added only when used, so older signatures still match."""
    content = {"alarm": alarm.id, "kind": alarm.kind, "code": alarm.code, "summary": alarm.summary,
               "rule": json.loads(alarm.rule), "outcome": outcome, "comment": comment,
               "at": at.isoformat()}
    if deviation is not None:
        content["deviation"] = deviation
    if action != "resolved":
        content["decision"] = action
    return content


def deviations_of(session: Session, alarm_ids: list[int]) -> dict[int, str]:
    """{alarm event id: deviation reference} for these alarms' decisions."""
    if not alarm_ids:
        return {}
    rows = session.exec(select(AlarmDeviation).where(col(AlarmDeviation.alarm_id).in_(alarm_ids)))
    return {row.event_id: row.reference for row in rows}


# --- the scheduler's alarm jobs ----------------------------------------------------------------

def escalate(session: Session, now: datetime, *, settings: Alerting = alerting.DEFAULT,
             batch: int = 500) -> int:
    """Tell the next group about open alarms nobody acknowledged in time. Returns how many
    alarms were escalated by this call."""
    due = session.exec(select(Alarm.id, Alarm.level, Alarm.escalate_at, Alarm.severity)
                       .where(col(Alarm.escalate_at) <= now)
                       .order_by(col(Alarm.escalate_at), col(Alarm.id)).limit(batch)).all()
    done = 0
    for alarm_id, level, seen, severity in cast(list[tuple[int, int, datetime, str]], due):
        try:
            with session.begin_nested():
                following = settings.level(level + 1)
                after = following.wait(severity) if following else None
                values = {"escalate_at": None} if following is None else {
                    "level": level + 1, "escalate_at": now + after if after else None, "notify_at": now}
                result = session.execute(update(Alarm).where(
                    col(Alarm.id) == alarm_id, col(Alarm.state) == "open", col(Alarm.level) == level,
                    col(Alarm.escalate_at) == seen).values(**values))
                if result.rowcount != 1 or following is None:  # type: ignore[attr-defined]
                    continue  # acknowledged or escalated by someone else meanwhile; or no group left
                session.add(AlarmEvent(alarm_id=alarm_id, at=now, action="escalated", level=level + 1,
                                       comment=_escalation_text(following, level, seen, now)))
                session.flush()
                done += 1
        except Exception:  # one alarm must not stop the others; it is looked at again next time
            log.exception("escalating alarm %s failed; it will be retried", alarm_id)
    return done


def _escalation_text(level: Level, previous: int, due: datetime, now: datetime) -> str:
    return (f"Not acknowledged in time at level {previous}: now told to "
            + ", ".join(level.roles) + (" at every site" if level.scope == "all" else ""))


def notify(session: Session, now: datetime, *, settings: Alerting = alerting.DEFAULT,
           batch: int = 500) -> int:
    """Write the notifications for alarm changes not told yet: e-mails to the group of the
    alarm's level for a raise or an escalation, and every change to every webhook. The
    first telling also sets when the alarm escalates. Returns the notifications written."""
    due = session.exec(select(Alarm.id, Alarm.notify_at).where(col(Alarm.notify_at) <= now)
                       .order_by(col(Alarm.notify_at), col(Alarm.id)).limit(batch)).all()
    written = 0
    for alarm_id, seen in cast(list[tuple[int, datetime]], due):
        try:
            with session.begin_nested():
                written += _notify_one(session, now, alarm_id, seen, settings)
        except Exception:
            log.exception("notifying alarm %s failed; it will be retried", alarm_id)
    return written


def _notify_one(session: Session, now: datetime, alarm_id: int, seen: datetime,
                settings: Alerting) -> int:
    alarm = session.get(Alarm, alarm_id, populate_existing=True)
    assert alarm is not None
    events = list(session.exec(select(AlarmEvent).where(
        AlarmEvent.alarm_id == alarm_id, col(AlarmEvent.id) > (alarm.notified_event_id or 0))
        .order_by(col(AlarmEvent.id))))
    values: dict[str, Any] = {"notify_at": None}
    if events:
        values["notified_event_id"] = events[-1].id
    first = settings.level(0)
    if any(e.action == "raised" for e in events) and alarm.state == "open" and alarm.level == 0 \
            and alarm.escalate_at is None and first is not None and first.wait(alarm.severity):
        values["escalate_at"] = alarm.raised_at + first.wait(alarm.severity)  # type: ignore[operator]
    result = session.execute(update(Alarm).where(col(Alarm.id) == alarm_id, col(Alarm.notify_at) == seen)
                             .values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return 0  # another scheduler has told these already
    written = 0
    for event in events:
        targets: list[tuple[str, str, int | None]] = []
        if event.action in MAILED:
            targets += [("email", user.email, user.id) for user in recipients(session, alarm, event.level,
                                                                               settings) if user.email]
        targets += [("webhook", hook.name, None) for hook in settings.webhooks]
        for channel, target, user_id in targets:
            session.add(Notification(alarm_id=alarm_id, channel=channel, target=target, user_id=user_id,
                                     level=event.level, reason=event.action, created_at=now,
                                     next_attempt_at=now))
            written += 1
    session.flush()
    return written


def recipients(session: Session, alarm: Alarm, level_number: int, settings: Alerting) -> list[User]:
    """The active people of one escalation group for this alarm."""
    level = settings.level(level_number)
    if level is None:
        return []
    sites = sites_of(session, alarm)
    grant_filter: ColumnElement[bool] = col(RoleGrant.role).in_(level.roles)
    if level.scope == "alarm":
        near: ColumnElement[bool] = col(RoleGrant.site_id).in_(sites) if sites else false()
        if alarm.shipment_id is not None and "courier" in level.roles:
            near = or_(near, col(RoleGrant.role) == "courier")
        grant_filter = and_(grant_filter, near)
    users = session.exec(select(User).join(RoleGrant, col(RoleGrant.user_id) == col(User.id))
                         .where(grant_filter, col(User.active).is_(True)).distinct()
                         .order_by(col(User.id))).all()
    return list(users)


# --- an alarm's page ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HistoryEntry:
    event: AlarmEvent
    actor: User | None
    signature: Signature | None
    deviation: str | None = None  # the deviation reference a decision accepted under


@dataclass(frozen=True)
class AlarmDetail:
    alarm: Alarm
    case: Case | None
    coi: str | None
    shipment: Shipment | None
    unit: Unit | None
    unit_serial: str | None
    rule: dict[str, Any]
    history: list[HistoryEntry]
    raised_by: User | None


def detail(*, session: Session, actor: Actor, alarm_id: int) -> AlarmDetail:

    alarm = visible_alarm(session=session, actor=actor, alarm_id=alarm_id)
    case_ = session.get(Case, alarm.case_id) if alarm.case_id else None
    unit = session.get(Unit, alarm.unit_id) if alarm.unit_id else None
    deviations = deviations_of(session, [alarm.id])  # type: ignore[list-item]
    history = [HistoryEntry(event, session.get(User, event.actor_id) if event.actor_id else None,
                            session.get(Signature, event.signature_id) if event.signature_id else None,
                            deviations.get(event.id))  # type: ignore[arg-type]
               for event in session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id)
                                         .order_by(col(AlarmEvent.id)))]
    return AlarmDetail(alarm, case_, coi_of(case_).text if case_ else None,
                       session.get(Shipment, alarm.shipment_id) if alarm.shipment_id else None,
                       unit, serial_of(unit).text if unit else None, json.loads(alarm.rule), history,
                       session.get(User, alarm.actor_id) if alarm.actor_id else None)
