"""The master-data audit trail: who changed what, when, from which value to which, and why;
the sites each change concerns, worked out when it is written; and reading it back as far
as the reader may: filtered, a page at a time, or exported whole."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, or_, text
from sqlalchemy import select as select_columns
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from coi.core.access import Actor, Operator, allowed, sites_for
from coi.core.errors import Forbidden, InvalidInput
from coi.core.identifiers import CoiId, IdentifierError, UnitSerial
from coi.core.phi import SEALED
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
    ShipmentLogger,
    Site,
    Unit,
    User,
    WebSession,
    case_sites,
)
from coldchain import local_to_utc

SYSTEM_NAME = "system"
PAGE_SIZE = 50
PHI_SHOWN = "[PHI, encrypted]"  # sealed values never leave in the trail's pages or exports

Change = tuple[object, object]  # (old, new)
Changes = Mapping[str, Change]


def record(
    *,
    session: Session,
    now: datetime,
    actor: Actor | Operator | None,
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
    session or token the request came through). An Operator (the command line) is named as
    it names itself, with no account (actor_id None, as the system's entries)."""
    if not reason.strip():
        raise InvalidInput("A reason is required for every change to master data.",
                           [{"field": "reason", "message": "Give a reason for the change."}])
    person = actor if isinstance(actor, Actor) else None
    if sites is None:  # an operator administers no site of its own: the record's sites only
        sites = sites_concerned(session=session, entity=entity, entity_id=str(entity_id),
                                actor=person, changes=changes)
    name = actor_name or _name_of(actor)
    items: list[tuple[str | None, object, object]] = [
        (field, old, new) for field, (old, new) in changes.items() if old != new]
    rows = [
        AuditEntry(
            at=now,
            actor_id=person.user_id if person else None,
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


def _name_of(actor: Actor | Operator | None) -> str:
    if isinstance(actor, Operator):
        return actor.name
    return f"{actor.full_name} ({actor.username})" if actor else SYSTEM_NAME


def history(*, session: Session, entity: str, entity_id: object) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.entity == entity, AuditEntry.entity_id == str(entity_id))
            .order_by(col(AuditEntry.id))
        )
    )


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


def _shipment_logger(session: Session, key: str, _a: Actor | None, _c: Changes) -> set[int]:
    logger = _get(session, ShipmentLogger, key)
    return _shipment_sites(session, logger.shipment_id) if logger is not None else set()


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
    "shipment_logger": _shipment_logger,  # its zone, confirmed at an upload
    "alarm": _alarm,
    "product": _nowhere, "logger_format": _nowhere,  # every site's: global readers only
    "audit_trail": _nowhere,  # exports name their sites themselves
}


# --- reading the trail -----------------------------------------------------------------------

class BadFilter(InvalidInput):
    """A filter or page of the audit trail that cannot be read: the request, not the data."""

    code = "bad_filter"
    status = 400
    title = "Filter not understood"


# The query parameters of a filter, as the page's form and links write them.
FILTER_PARAMETERS = ("entity", "entity_id", "actor", "site", "from", "to", "action", "q")
_LIMITS = {"entity": 32, "entity_id": 64, "actor": 64, "site": 32, "action": 16, "q": 200}
_SHOWN = ("id", "at", "actor_id", "actor_name", "via", "entity", "entity_id", "action", "field",
          "old_value", "new_value", "reason")  # the columns of AuditRow
_LOCAL_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2})(:\d{2})?)?")


@dataclass(frozen=True)
class AuditFilter:
    """Which rows of the trail: each field None means any. Times are UTC; `until` excluded."""

    entity: str | None = None
    entity_id: str | None = None
    actor: str | None = None  # a username; "system" for changes made by no one signed in
    site: str | None = None  # a site's code: rows that concern it
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    text: str | None = None  # found anywhere in the reason, whatever the case

    def as_record(self) -> dict[str, str]:
        """The filter as an export's audit row keeps it: what was asked, times in UTC."""
        return {name: value.isoformat() if isinstance(value, datetime) else value
                for name, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class AuditRow:
    """One entry as readers see it: sealed PHI masked, with the codes of its sites."""

    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    via: str | None
    entity: str
    entity_id: str
    action: str
    field: str | None
    old_value: str | None
    new_value: str | None
    reason: str
    sites: tuple[str, ...]


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    total: int  # rows matching the filter that the reader may see
    first: int  # the position of rows[0] among them, newest first (1-based; 0: no rows)
    newer: int | None  # `after` for the page of newer rows, None on the first page
    older: int | None  # `before` for the page of older rows, None on the last page

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def read_filter(args: Mapping[str, str], *, zone: str) -> AuditFilter:
    """The filter a query string asks for; `from` and `to` are dates (or dates and times) in
    the reader's `zone`, `to` taking in the whole day, minute or second it names. Refuses,
    saying why, what cannot be a filter (BadFilter); the kinds and sites it names are checked
    where it is used (`conditions_for`)."""
    values = {name: (args.get(name) or "").strip() for name in FILTER_PARAMETERS}
    for name, limit in _LIMITS.items():
        if len(values[name]) > limit:
            raise BadFilter(f"The filter '{name}' is longer than {limit} characters.",
                            [{"field": name, "message": f"At most {limit} characters."}])
    since = _local_bound(values["from"], "from", zone, end=False)
    until = _local_bound(values["to"], "to", zone, end=True)
    if since and until and since >= until:
        raise BadFilter("The 'from' time is after the 'to' time: nothing can match.",
                        [{"field": "from", "message": "Before 'to'."}])
    return AuditFilter(entity=values["entity"] or None, entity_id=values["entity_id"] or None,
                       actor=values["actor"].lower() or None, site=values["site"] or None,
                       since=since, until=until, action=values["action"].lower() or None,
                       text=values["q"] or None)


def read_cursor(args: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(`before`, `after`): the page older than one row id, or newer than one; at most one."""
    before, after = (_cursor(args.get(name), name) for name in ("before", "after"))
    if before is not None and after is not None:
        raise BadFilter("Ask for the page before a row or after one, not both.")
    return before, after


def _cursor(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    number = _number(value.strip())
    if number is None or number < 1:
        raise BadFilter(f"'{value[:20]}' is not a row of the audit trail: '{name}' takes a row "
                        "number.", [{"field": name, "message": "A row number."}])
    return number


def _local_bound(value: str, name: str, zone: str, *, end: bool) -> datetime | None:
    if not value:
        return None
    match = _LOCAL_TIME.fullmatch(value)
    try:
        local = datetime.fromisoformat(value.replace(" ", "T")) if match else None
    except ValueError:
        local = None
    if match is None or local is None:
        raise BadFilter(f"'{value[:40]}' is not a date like 2026-11-22 or a time like "
                        f"2026-11-22 14:05 (in {zone}).",
                        [{"field": name, "message": f"A date or date and time in {zone}."}])
    if end:  # up to the end of what was written: the day, the minute or the second
        local += (timedelta(seconds=1) if match.group(3) else timedelta(minutes=1)
                  if match.group(2) else timedelta(days=1))
    at = local_to_utc(local, ZoneInfo(zone))
    if isinstance(at, str):
        raise BadFilter(f"'{value}' cannot be a '{name}' time in {zone}: {at}.",
                        [{"field": name, "message": at}])
    return at


def entities(*, session: Session) -> list[str]:
    """Every kind of record the trail holds, read from the kinds' index (one step per kind,
    not a scan of the rows)."""
    found = session.execute(text(
        "WITH RECURSIVE kinds(entity) AS ("
        " SELECT MIN(entity) FROM audit_entry"
        " UNION ALL"
        " SELECT (SELECT MIN(entity) FROM audit_entry WHERE entity > kinds.entity)"
        " FROM kinds WHERE kinds.entity IS NOT NULL)"
        " SELECT entity FROM kinds WHERE entity IS NOT NULL")).scalars()
    return sorted(found)


def readable_sites(*, session: Session, actor: Actor) -> list[Site]:
    """The sites whose trail `actor` reads: every site for a global reader."""
    query = select(Site).order_by(col(Site.name))
    if not actor.global_admin:
        query = query.where(col(Site.id).in_(sites_for(actor, "audit.view")))
    return list(session.exec(query))


def page(*, session: Session, actor: Actor, wanted: AuditFilter, before: int | None = None,
         after: int | None = None, size: int = PAGE_SIZE) -> AuditPage:
    """One page of the rows `wanted` that `actor` may read, newest first (by row id, so pages
    do not shift as new rows arrive): the newest, those older than row `before`, or those
    newer than row `after` (the newest page, when fewer than a page are newer)."""
    conditions = conditions_for(session, actor, wanted)
    rows: list[AuditRow] = []
    if after is not None:
        rows = rows_where(session, [*conditions, col(AuditEntry.id) > after], limit=size,
                          newest_first=False)[::-1]
    if len(rows) < size:
        older = [col(AuditEntry.id) < before] if before is not None else []
        rows = rows_where(session, [*conditions, *older], limit=size)
    total = count_of(session, conditions)
    if not rows:
        return AuditPage([], total, 0, None, None)
    first = count_of(session, [*conditions, col(AuditEntry.id) > rows[0].id]) + 1
    return AuditPage(rows, total, first, rows[0].id if first > 1 else None,
                     rows[-1].id if first + len(rows) - 1 < total else None)


def conditions_for(session: Session, actor: Actor, wanted: AuditFilter) -> list[ColumnElement[bool]]:
    """The SQL conditions of `wanted` as `actor` may read: rows concerning a site where the
    actor holds audit.view, or their own doing; every row for a global reader."""
    if not actor.global_admin and not allowed(actor, "audit.view"):
        raise Forbidden("You are not allowed to read the audit trail.")
    conditions: list[ColumnElement[bool]] = []
    if not actor.global_admin:
        conditions.append(or_(col(AuditEntry.actor_id) == actor.user_id,
                              _concerns(sites_for(actor, "audit.view"))))
    if wanted.entity:
        known = set(RESOLVERS) | set(entities(session=session))
        if wanted.entity not in known:
            raise BadFilter(f"'{wanted.entity}' is not a kind of record in the audit trail; "
                            f"use one of: {', '.join(sorted(known))}.",
                            [{"field": "entity", "message": "Choose a kind of record."}])
        conditions.append(col(AuditEntry.entity) == wanted.entity)
    if wanted.entity_id:
        conditions.append(col(AuditEntry.entity_id) == wanted.entity_id)
    if wanted.actor == SYSTEM_NAME:
        conditions.append(col(AuditEntry.actor_id).is_(None))
    elif wanted.actor:  # an unknown name matches nothing (and says nothing about accounts)
        conditions.append(col(AuditEntry.actor_id).in_(
            select(User.id).where(User.username == wanted.actor)))
    if wanted.site:
        conditions.append(_concerns({site_named(session, wanted.site)}))
    if wanted.since:
        conditions.append(col(AuditEntry.at) >= wanted.since)
    if wanted.until:
        conditions.append(col(AuditEntry.at) < wanted.until)
    if wanted.action:
        conditions.append(col(AuditEntry.action) == wanted.action)
    if wanted.text:
        conditions.append(func.lower(col(AuditEntry.reason)).contains(wanted.text.lower(),
                                                                       autoescape=True))
    return conditions


def _concerns(site_ids: set[int]) -> ColumnElement[bool]:
    return exists().where(col(AuditEntrySite.entry_id) == col(AuditEntry.id),
                          col(AuditEntrySite.site_id).in_(sorted(site_ids)))


def site_named(session: Session, code: str) -> int:
    site = session.exec(select(Site).where(Site.code == code)).first()
    if site is None or site.id is None:
        raise BadFilter(f"No site has the code '{code}'.",
                        [{"field": "site", "message": "Choose a site from the list."}])
    return site.id


def count_of(session: Session, conditions: list[ColumnElement[bool]]) -> int:
    return session.exec(select(func.count()).select_from(AuditEntry).where(*conditions)).one()


def rows_where(session: Session, conditions: list[ColumnElement[bool]], *, limit: int,
               newest_first: bool = True) -> list[AuditRow]:
    """Up to `limit` rows meeting `conditions`, by row id, as readers see them. Read as plain
    columns, not as ORM objects: an export reads a million of them."""
    order = col(AuditEntry.id).desc() if newest_first else col(AuditEntry.id)
    found = session.execute(select_columns(*(col(getattr(AuditEntry, name)) for name in _SHOWN))
                            .where(*conditions).order_by(order).limit(limit)).all()
    codes: dict[int, list[str]] = {}
    if found:
        for entry_id, code in session.exec(
                select(AuditEntrySite.entry_id, Site.code)
                .join(Site, col(Site.id) == AuditEntrySite.site_id)
                .where(col(AuditEntrySite.entry_id).in_([e.id for e in found]))
                .order_by(col(Site.code))):
            codes.setdefault(entry_id, []).append(code)
    return [AuditRow(id=e.id, at=e.at, actor_id=e.actor_id, actor_name=e.actor_name, via=e.via,
                     entity=e.entity, entity_id=e.entity_id, action=e.action, field=e.field,
                     old_value=_masked(e.old_value), new_value=_masked(e.new_value),
                     reason=e.reason, sites=tuple(codes.get(e.id, ())))
            for e in found]


def _masked(value: str | None) -> str | None:
    return PHI_SHOWN if value is not None and value.startswith(SEALED) else value

