"""The master-data audit trail: who changed what, when, from which value to which, and why;
and the sites each change concerns, worked out when it is written."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from coi.core.access import Actor, sites_for
from coi.core.errors import InvalidInput
from coi.core.identifiers import CoiId, IdentifierError, UnitSerial
from coi.models import (
    Alarm,
    ApiToken,
    AuditEntry,
    AuditEntrySite,
    Case,
    Label,
    LoggerClockCheck,
    LoggerFile,
    Patient,
    RoleGrant,
    Shipment,
    Site,
    Unit,
    User,
    WebSession,
    case_sites,
)

SYSTEM_NAME = "system"

Change = tuple[object, object]  # (old, new)
Changes = Mapping[str, Change]


def record(
    *,
    session: Session,
    now: datetime,
    actor: Actor | None,
    entity: str,
    entity_id: object,
    action: str,
    changes: Mapping[str, Change],
    reason: str,
    actor_name: str | None = None,
    sites: Iterable[int | None] | None = None,
    via: str | None = None,
) -> list[AuditEntry]:
    """Append one entry per changed field (or one for a change without fields). `sites`: the
    sites the change concerns (their people may read it); when not given, the sites the
    record concerns now (`sites_concerned`). `via` defaults to the actor's channel (the
    session or token the request came through)."""
    if not reason.strip():
        raise InvalidInput("A reason is required for every change to master data.",
                           [{"field": "reason", "message": "Give a reason for the change."}])
    if sites is None:
        sites = sites_concerned(session=session, entity=entity, entity_id=str(entity_id),
                                actor=actor, changes=changes)
    name = actor_name or (f"{actor.full_name} ({actor.username})" if actor else SYSTEM_NAME)
    items: list[tuple[str | None, object, object]] = [
        (field, old, new) for field, (old, new) in changes.items() if old != new]
    rows = [
        AuditEntry(
            at=now,
            actor_id=actor.user_id if actor else None,
            actor_name=name,
            entity=entity,
            entity_id=str(entity_id),
            action=action,
            field=field,
            old_value=_text(old),
            new_value=_text(new),
            reason=reason.strip(),
            via=via or (actor.via if actor else None),
        )
        for field, old, new in (items or [(None, None, None)])
    ]
    session.add_all(rows)
    session.flush()
    concerned = sorted({site for site in sites if site is not None})
    if concerned:
        session.add_all([AuditEntrySite(entry_id=row.id, site_id=site)  # type: ignore[arg-type]
                         for row in rows for site in concerned])
        session.flush()
    return rows


def history(*, session: Session, entity: str, entity_id: object) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.entity == entity, AuditEntry.entity_id == str(entity_id))
            .order_by(col(AuditEntry.id))
        )
    )


def recent(*, session: Session, entity: str | None = None, limit: int = 200) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    return list(session.exec(query))


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- which sites a record concerns -----------------------------------------------------------
# Decided when the row is written, from the record as it is then: a grant revoked or a case
# moved later does not take a change out of the view of the site it concerned. A record
# nothing ties to a site (a product, an unknown kind) gets no site: only global readers see it.

Resolver = Callable[[Session, str, "Actor | None", Changes], set[int]]
_MAX_DIGITS = 18  # ids beyond this are no row's: not looked up (and no integer overflow)


def sites_concerned(*, session: Session, entity: str, entity_id: str, actor: Actor | None,
                    changes: Mapping[str, Change]) -> set[int]:
    """The sites whose people may read a change of `entity` `entity_id` (see RESOLVERS);
    any other kind whose id names a case (a COI identifier, a unit serial): the case's."""
    resolver = RESOLVERS.get(entity)
    if resolver is None:
        return _case_sites(_case_named(session, entity_id))
    return resolver(session, entity_id, actor, changes)


def _number(key: object) -> int | None:
    text_ = str(key) if key is not None else ""
    return int(text_) if text_.isdigit() and len(text_) <= _MAX_DIGITS else None


def _get(session: Session, model: type[Any], key: object) -> Any:
    number = _number(key)
    return session.get(model, number) if number is not None else None


def _case_named(session: Session, key: str) -> Case | None:
    """The case a COI identifier or unit serial names (text or grouped form), if any."""
    for parse in (CoiId.parse, UnitSerial.parse):
        try:
            named = parse(key)
        except IdentifierError:
            continue
        coi = named.coi if isinstance(named, UnitSerial) else named
        return session.exec(select(Case).where(Case.coi == coi.compact)).first()
    return None


def _case_sites(case: Case | None) -> set[int]:
    return set(case_sites(case)) if case is not None else set()


def _shipment_sites(session: Session, shipment_id: object) -> set[int]:
    """Both ends of the leg and the case's sites: the people who pack, carry and receive it."""
    shipment = _get(session, Shipment, shipment_id)
    if shipment is None:
        return set()
    return ({shipment.origin_site_id, shipment.destination_site_id}
            | _case_sites(session.get(Case, shipment.case_id)))


def _person_sites(session: Session, user_id: int | None, actor: Actor | None) -> set[int]:
    """An account's business: the sites where it holds roles now, and those where the actor
    doing the change administers (a new account has no role yet; its creator's site does)."""
    held = set(session.exec(select(RoleGrant.site_id).where(RoleGrant.user_id == user_id))
               ) if user_id is not None else set()
    return held | (sites_for(actor, "user.manage") if actor is not None else set())


def _patient(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    patient = _get(session, Patient, key)
    return {patient.site_id} if patient is not None else set()


def _case(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    return _case_sites(_get(session, Case, key) or _case_named(session, key))


def _unit(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    unit = _get(session, Unit, key)
    return _case_sites(session.get(Case, unit.case_id) if unit else _case_named(session, key))


def _label(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    label = _get(session, Label, key)
    return _case_sites(session.get(Case, label.case_id) if label else _case_named(session, key))


def _scan(session: Session, key: str, actor: Actor | None, _c: Changes) -> set[int]:
    # A scan refused before it named a case is kept under its step's name: it happened at a
    # station of the scanning person's sites, whose QA follows up refusals.
    case = _case_named(session, key)
    if case is not None:
        return _case_sites(case)
    return sites_for(actor, "scan") if actor is not None else set()


def _role_grant(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    grant = _get(session, RoleGrant, key)
    if grant is not None:
        return {grant.site_id}
    _user, at, code = key.rpartition("@")  # "username@SITE", as the grant services name it
    site = session.exec(select(Site).where(Site.code == code)).first() if at else None
    return {site.id} if site is not None and site.id is not None else set()


def _user(session: Session, key: str, actor: Actor | None, _c: Changes) -> set[int]:
    user = _get(session, User, key) or session.exec(select(User).where(User.username == key)).first()
    return _person_sites(session, user.id if user else None, actor)


def _api_token(session: Session, key: str, actor: Actor | None, _c: Changes) -> set[int]:
    token = _get(session, ApiToken, key)
    return _person_sites(session, token.user_id if token else None, actor)


def _web_session(session: Session, key: str, actor: Actor | None, _c: Changes) -> set[int]:
    found = _get(session, WebSession, key)
    return _person_sites(session, found.user_id if found else None, actor)


def _site(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    site = session.exec(select(Site).where(Site.code == key)).first() or _get(session, Site, key)
    return {site.id} if site is not None and site.id is not None else set()


def _shipment(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    return _shipment_sites(session, key)


def _logger_file(session: Session, key: str, _a: Actor | None, changes: Changes) -> set[int]:
    file = _get(session, LoggerFile, key)
    if file is not None:
        return _shipment_sites(session, file.shipment_id)
    # A refused upload has no file row; its entry names the shipment it was meant for.
    return _shipment_sites(session, changes.get("shipment", (None, None))[1])


def _clock_check(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    check = _get(session, LoggerClockCheck, key)
    return _shipment_sites(session, check.shipment_id) if check is not None else set()


def _alarm(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    # The sites alarms.sites_of names (that module records through this one, so it cannot
    # be imported here): where it was seen, its case's sites, its shipment's ends.
    alarm = _get(session, Alarm, key)
    if alarm is None:
        return set()
    sites = {alarm.site_id} if alarm.site_id else set()
    if alarm.case_id:
        sites |= _case_sites(session.get(Case, alarm.case_id))
    if alarm.shipment_id:
        sites |= _shipment_sites(session, alarm.shipment_id)
    return sites


def _nowhere(_session: Session, _key: str, _a: Actor | None, _c: Changes) -> set[int]:
    return set()


# Every kind of record the services audit, and how its sites are found from its id.
RESOLVERS: dict[str, Resolver] = {
    "patient": _patient,  # the treating site (PHI stays there)
    "case": _case, "unit": _unit, "label": _label, "scan": _scan,  # the case's sites
    "role_grant": _role_grant,  # the grant's site
    "user": _user, "api_token": _api_token, "web_session": _web_session,  # the person's sites
    "site": _site,  # itself
    "shipment": _shipment, "logger_file": _logger_file, "logger_clock_check": _clock_check,
    "alarm": _alarm,
    "product": _nowhere,  # every site's: global readers only
    "audit_trail": _nowhere,  # exports name their sites themselves
}
