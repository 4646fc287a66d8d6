"""Scans at the handoffs: the service around the pure judge (`coi.core.workflow`).

It finds the case a scan names, locks it, reads the case's state from its ledger, checks
the passwords of whoever signs, asks `judge` for a verdict and records it: every scan that
is judged final, accepted or refused, becomes one custody event; an alarm row is raised
for what the rules say must be followed up. A request sent again with the same
idempotency key finds its event and records nothing new. Flushes, never commits.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select, SelectOfScalar

from coi import metrics
from coi.core.access import Actor
from coi.core.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, Throttled
from coi.core.identifiers import CoiId, IdentifierError, UnitSerial, foreign_description, parse_scan
from coi.core.route import Route, Step
from coi.core.workflow import (
    WRISTBAND,
    CaseState,
    Entry,
    Pending,
    Person,
    Reason,
    ScanAttempt,
    UnitState,
    Verdict,
    judge,
)
from coi.models import (
    COMPLETING_KINDS,
    Alarm,
    Case,
    CustodyEvent,
    ProductRoute,
    Signature,
    Site,
    Unit,
    User,
    case_sites,
    coi_of,
)
from coi.services import alarms, audit, holds, ledger, masterdata, shipments, users
from coi.services import signatures as signature_service
from coi.services.holds import Hold

# Ledger event kinds written here; "enrol" and "register_unit" come from enrolment.
MAX_ENTRIES = 40  # more codes than any step needs: refused as input, not judged
MAX_TEXT = 500


@dataclass(frozen=True)
class Credential:
    """A password typed at the scan (the doer's own signature, or a verifier's)."""

    username: str
    password: str


@dataclass
class Outcome:
    verdict: Verdict
    case: Case
    route: Route
    step: Step | None
    site: Site | None
    event: CustodyEvent | None  # None for a partial scan that was accepted (nothing to record)
    alarms: list[Alarm] = field(default_factory=list)
    replayed: bool = False
    # The case's holds as the scan found them (before it), for the scan page to show.
    holds: list[Hold] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        return self.event is not None


def case_named(session: Session, entries: list[Entry], coi_text: str | None,
               *, lock: bool = False) -> Case:
    return _case_and_route(session, entries, coi_text, lock=lock)[0]


def _case_and_route(session: Session, entries: list[Entry], coi_text: str | None,
                    *, lock: bool = False) -> tuple[Case, Route]:
    """The case a scan is about: the page's case if given, else the case of the first unit
    scanned, else the first wristband's."""
    coi: CoiId | None = None
    if coi_text:
        try:
            coi = CoiId.parse(coi_text)
        except IdentifierError as error:
            raise InvalidInput(error.message, [{"field": "case", "message": error.message}]) from None
    if coi is None:
        # The material in hand decides: a unit's case before a wristband's, so that another
        # patient's wristband at a bedside is recorded on the case of the bag being given.
        named = [_named_case(entry.text) for entry in entries]
        units = [c for c, is_unit in named if c is not None and is_unit]
        others = [c for c, _is_unit in named if c is not None]
        coi = units[0] if units else others[0] if others else None
    if coi is None:
        why = next((reason for entry in entries if (reason := _not_a_case(entry.text))), "")
        raise NoCaseNamed("None of the scanned codes names a case of this platform: scan a "
                          "unit label or a patient wristband." + (f" {why}" if why else ""),
                          [{"field": "scans", "message": "No valid COI identifier or unit serial."}])
    # With its route version: one statement.
    found = session.exec(_case_query(lock), params={"coi": coi.compact}).first()
    if found is None:
        raise CaseNotKnown(UNKNOWN_CODE)
    return found[0], masterdata.route_of(found[1])


@functools.cache
def _case_query(lock: bool) -> Select[Case, ProductRoute]:
    """Built once: a scan's statements are the same every time but for their values, and
    SQLAlchemy keeps the cache key of a statement object it has seen."""
    query = (select(Case, ProductRoute).join(ProductRoute, col(ProductRoute.id) == Case.route_id)
             .where(Case.coi == bindparam("coi")))
    return query.with_for_update(of=Case) if lock else query


@functools.cache
def _units_query() -> SelectOfScalar[Unit]:
    return select(Unit).where(Unit.case_id == bindparam("case_id"))


# The one answer for a code whose case does not exist and for a case the scanner has no part
# in: no answer may tell an outsider whether a case exists (COI identifiers are sequential).
UNKNOWN_CODE = ("No case of yours goes by this code: check that it is one of our labels and "
                "that the case is one your site or your handoff takes part in.")


class CaseNotKnown(NotFound):
    """The scanned code names no case the scanner takes part in (or none at all). Nothing is
    written to any case; `record_unplaced` keeps the attempt in the scanner's audit trail."""

    code = "unknown_code"


def takes_part(session: Session, actor: Actor, case: Case, route: Route,
               state: CaseState) -> bool:
    """Has `actor` a part in this case's route: staff of one of its sites (treating,
    manufacturing), the holder of one of its units (a courier in transit), or the receiver a
    handoff given and not yet received is waiting for?"""
    sites = {site for site, _role in actor.grants}
    if sites & set(case_sites(case)):
        return True
    if any(unit.custodian_site_id in sites for unit in state.units.values()):
        return True
    if state.pending is not None:
        step = route.step(state.pending.step)
        for site_id, role in actor.grants:
            site = session.get(Site, site_id)
            if (role in step.to_roles and site is not None
                    and step.to_site_kind in site.kinds.split()):
                return True
    return False


class NoCaseNamed(InvalidInput):
    """Nothing scanned names a case (a wrong check character is never looked up), so there
    is no case ledger to record the refusal on: `record_unplaced` puts it in the audit trail."""

    code = "no_case_named"


def _named_case(text: str) -> tuple[CoiId | None, bool]:
    try:
        parsed = parse_scan(text)
    except IdentifierError:
        return None, False
    if isinstance(parsed, UnitSerial):
        return parsed.coi, True
    return (parsed, False) if isinstance(parsed, CoiId) else (None, False)


def _not_a_case(text: str) -> str | None:
    """Why a scanned code names no case, in a sentence: a product barcode, another system's
    code, a misread identifier."""
    try:
        parsed = parse_scan(text)
    except IdentifierError as error:
        return error.message
    return None if isinstance(parsed, CoiId | UnitSerial) else foreign_description(parsed)


def record_unplaced(*, session: Session, now: datetime, actor: Actor, entries: list[Entry],
                    step_name: str | None, error: NoCaseNamed | CaseNotKnown) -> None:
    """A scan refused before it could be judged against a case (none named, none known to the
    scanner) is still recorded: in the scanner's own audit trail (their sites), with what was
    scanned, by whom, and why; never on the ledger of a case."""
    reasons = []
    for entry in entries:
        try:
            parse_scan(entry.text)
        except IdentifierError as problem:
            reasons.append(f"{problem.code}: {problem.message}")
    audit.record(session=session, now=now, actor=actor, entity="scan", entity_id=step_name or "-",
                 action="refuse", reason=error.message + (" " + " ".join(reasons) if reasons else ""),
                 changes={"scans": (None, [{"text": e.text, "method": e.method} for e in entries])},
                 sites=[site for site, _role in actor.grants])
    metrics.count_scan(session, [error.code])


@dataclass(frozen=True)
class _Read:
    """The case as its ledger tells it (steps completed, when the last one was, a handoff
    waiting for its receiver; the units' custody from their rows, kept with the events),
    with what recording needs next: the chain's last event and the unit rows."""

    state: CaseState
    last: ledger.Link | None  # the chain's last event, for appending after it
    units: dict[str, Unit]
    holds: list[Hold] = field(default_factory=list)


def _read(session: Session, case: Case, route: Route, zone: str = "UTC") -> _Read:
    completed: list[str] = []
    last_at: datetime | None = None
    pending: Pending | None = None
    events = ledger.chain_of(session=session, case_id=case.id)  # type: ignore[arg-type]
    for event in events:
        if event.kind == "enrol":
            completed.append("enrol")
            last_at = event.at
        elif event.kind in COMPLETING_KINDS:
            completed.append(json.loads(event.body)["step"])
            last_at, pending = event.at, None
        elif event.kind == "handoff_give":
            body = json.loads(event.body)
            pending = Pending(body["step"], event.actor_id or 0, event.site_id or 0,
                              tuple(body["units"]), event.at)
    rows = {unit.serial: unit for unit in session.exec(_units_query(), params={"case_id": case.id})}
    units = {serial: UnitState(unit.kind, unit.custodian_site_id, unit.state == "consumed",
                               unit.state == "destroyed")
             for serial, unit in rows.items()}
    # Read after the case row is locked (scan()): an alarm raised for the case takes the same
    # lock (alarms.raise_alarm), so it is either seen here or raised after this scan.
    found = holds.holds_of(session=session, case=case, route=route)
    state = CaseState(coi_of(case), tuple(completed), last_at, units, pending,
                      tuple(hold.held(zone) for hold in found))
    return _Read(state, events[-1] if events else None, rows, found)


def next_step(route: Route, state: CaseState) -> Step | None:
    """The step the case waits for: a pending handoff's receipt, else the first not done."""
    if state.pending is not None:
        return route.step(state.pending.step)
    return next((step for step in route.steps if step.name not in state.completed), None)


def scan(
    *,
    session: Session,
    now: datetime,
    actor: Actor,
    entries: list[Entry],
    step_name: str | None = None,
    coi_text: str | None = None,
    site_id: int | None = None,
    own_password: str | None = None,
    verifiers: list[Credential] | None = None,
    device: str | None = None,
    device_at: datetime | None = None,
    idempotency_key: str | None = None,
    partial: bool = False,
    remote_addr: str | None = None,
) -> Outcome:
    """Judge and record a scan of `entries` for `step_name` (default: the case's next step).

    `partial`: the scan page sends each code as it is scanned; an accepted partial scan is
    not recorded (nothing happened yet, even when the step is complete: it is recorded when
    sent again without `partial`), and a refused one is recorded like any other. Raises
    InvalidInput for input that cannot be judged at all (no case named, too many codes),
    Conflict for a reused idempotency key."""
    _check_input(entries)
    if not step_name and not partial:
        # Said explicitly, so that a scan that lost a race for one step is not taken for
        # the step after it (the scan page learns the step from its first, partial, scan).
        raise InvalidInput("Say which step this scan is for.",
                           [{"field": "step", "message": "Name the route step."}])
    request_key = _request_key(actor, idempotency_key)
    try:
        outcome = _scan(session, now, actor, entries, step_name, coi_text, site_id, own_password,
                        verifiers, device, device_at, request_key, partial, remote_addr)
    except IntegrityError:
        # The unique request key: this request was recorded before (a retry, an offline
        # queue sending again, or the same request racing itself). Answer as then.
        if request_key is None:
            raise
        session.rollback()
        earlier = session.exec(select(CustodyEvent).where(
            CustodyEvent.request_key == request_key)).first()
        if earlier is None:
            raise
        return _replay(session, earlier, case_named(session, entries, coi_text), entries,
                       step_name)
    if outcome.event is not None:  # recorded (an accepted partial scan is not)
        metrics.count_scan(session, [reason.code for reason in outcome.verdict.refusals])
    return outcome


def _scan(
    session: Session, now: datetime, actor: Actor, entries: list[Entry], step_name: str | None,
    coi_text: str | None, site_id: int | None, own_password: str | None,
    verifiers: list[Credential] | None, device: str | None, device_at: datetime | None,
    request_key: str | None, partial: bool, remote_addr: str | None,
) -> Outcome:
    case, route = _case_and_route(session, entries, coi_text, lock=True)
    read = _read(session, case, route, actor.timezone)
    state = read.state
    if not takes_part(session, actor, case, route, state):
        raise CaseNotKnown(UNKNOWN_CODE)
    step = route.step(step_name) if step_name and _has_step(route, step_name) else None
    if step is None and not step_name:
        step = next_step(route, state)
    if step is None:
        verdict = Verdict((Reason("unknown_step", f"'{step_name}' is not a step of this "
                                  f"product's route (version {route.version}).") if step_name else
                           Reason("route_complete", "Every step of this case's route is recorded."),))
        return _record(session, now, actor, case, route, None, None, entries, verdict, device,
                       device_at, request_key, read=read)
    receiving = step.handoff and state.pending is not None and state.pending.step == step.name
    site = _acting_site(session, actor, step, receiving, site_id)
    refusals: list[Reason] = []
    roles_here = frozenset(role for sid, role in actor.grants if sid == site.id)
    people: list[Person] = []
    signers: list[tuple[User, str]] = []  # (who, meaning), signed once the verdict is known
    signing = step.sign is not None or step.verifiers > 0
    if not partial and signing:
        user, reason = _check_password(session, now, actor.username, own_password or "", "your",
                                       remote_addr)
        if reason:
            refusals.append(reason)
        elif user is not None:
            signers.append((user, step.sign or "authored"))
        for credential in verifiers or []:
            user, reason = _check_password(session, now, credential.username,
                                           credential.password, "the verifier's", remote_addr)
            if reason:
                refusals.append(reason)
            elif user is not None:
                grants = users.actor_for(session=session, user=user).grants
                roles = frozenset(role for sid, role in grants if sid == site.id)
                people.append(Person(user.id, roles))  # type: ignore[arg-type]
                signers.append((user, "verified"))
    # QA release and infusion: their preconditions, checked here and passed to the pure judge
    # as holds of their own (each failed check a refusal), and listed in what is signed.
    checks = [] if receiving else holds.preconditions(
        session=session, case=case, route=route, step_name=step.name, step_sign=step.sign,
        now=now, last_step_at=state.last_step_at, found=read.holds, max_hours=step.max_hours,
        zone=actor.timezone)
    failed = tuple(check.held(step.name) for check in checks if not check.ok and check.message)
    if failed:
        state = replace(state, holds=(*state.holds, *failed))
    attempt = ScanAttempt(step=step.name, entries=tuple(entries), actor_id=actor.user_id,
                          actor_roles=roles_here, site_id=site.id,  # type: ignore[arg-type]
                          site_kinds=frozenset(site.kinds.split()),
                          verifiers=tuple(people), now=now)
    verdict = judge(route, state, attempt, partial=partial)
    if refusals:
        verdict = Verdict((*refusals, *verdict.refusals), verdict.alarms, verdict.units,
                          verdict.phase, verdict.expected, verdict.missing)
    # An accepted partial scan is never recorded, even when it completes the step: the step
    # is proposed, and recorded when the person says so (Record, or Enter on the empty
    # field), the same for a one-label and a two-label step. A scanner that fires twice must
    # not hand a bag over to the step after the one just done either.
    if partial and verdict.accepted:
        return Outcome(verdict, case, route, step, site, None, holds=read.holds)
    return _record(session, now, actor, case, route, step, site, entries, verdict, device,
                   device_at, request_key, signers=signers, read=read, checks=checks)


def _check_input(entries: list[Entry]) -> None:
    if not entries:
        raise InvalidInput("Nothing was scanned.", [{"field": "scans", "message": "Scan a code."}])
    if len(entries) > MAX_ENTRIES:
        raise InvalidInput(f"At most {MAX_ENTRIES} codes can be scanned for one step.",
                           [{"field": "scans", "message": "Too many codes."}])
    for number, entry in enumerate(entries):
        if len(entry.text) > MAX_TEXT or (entry.again and len(entry.again) > MAX_TEXT):
            raise InvalidInput(f"Code {number + 1} is longer than {MAX_TEXT} characters: not a "
                               "label of this platform.",
                               [{"field": f"scans[{number}].text", "message": "Too long."}])


def _has_step(route: Route, name: str) -> bool:
    return any(step.name == name for step in route.steps)


def _request_key(actor: Actor, key: str | None) -> str | None:
    if key is None:
        return None
    if not 8 <= len(key) <= 100 or not key.isprintable():
        raise InvalidInput("An idempotency key is 8 to 100 printable characters (a UUID is "
                           "best).", [{"field": "idempotency_key", "message": "8-100 characters."}])
    return hashlib.sha256(f"{actor.user_id}\x00{key}".encode()).hexdigest()


def _replay(session: Session, event: CustodyEvent, case: Case, entries: list[Entry],
            step_name: str | None) -> Outcome:
    """The answer to a request already recorded: the same verdict, nothing new written."""
    body = json.loads(event.body)
    if event.case_id != case.id or [s["text"] for s in body["scans"]] != [e.text for e in entries] \
            or (step_name and body.get("step") != step_name):
        raise Conflict("This idempotency key was already used for a different scan; send a new "
                       "key for a new scan.", code="idempotency_key_reused")
    route = masterdata.route_of_case(session=session, case=case)
    step = route.step(body["step"]) if body.get("step") and _has_step(route, body["step"]) else None
    verdict = Verdict(tuple(Reason(r["code"], r["message"]) for r in body.get("refusals", [])),
                      tuple(Reason(r["code"], r["message"]) for r in body.get("alarms", [])),
                      tuple(body.get("units", [])), body.get("phase", "complete"))
    alarms = list(session.exec(select(Alarm).where(Alarm.event_id == event.id)))
    return Outcome(verdict, case, route, step, session.get(Site, event.site_id) if event.site_id
                   else None, event, alarms, replayed=True,
                   holds=holds.holds_of(session=session, case=case, route=route))


def _acting_site(session: Session, actor: Actor, step: Step, receiving: bool,
                 site_id: int | None) -> Site:
    """The site the actor scans at: the one asked for (it must be one of theirs), else their
    one site where this side of the step may be done, else their first site (and the judge
    says what is wrong with it)."""
    sites = {sid for sid, _role in actor.grants}
    if site_id is not None:
        if site_id not in sites:
            raise InvalidInput("You have no role at that site.",
                               [{"field": "site", "message": "Choose one of your sites."}])
        site = session.get(Site, site_id)
        assert site is not None
        return site
    if not sites:
        raise InvalidInput("You have no role at any site, so you cannot scan.")
    roles = step.to_roles if receiving else step.roles
    kind = step.to_site_kind if receiving else step.site_kind
    # Found in the session without a query when users.actor_for loaded them (the request's
    # actor); one read per site otherwise.
    rows = [row for sid in sorted(sites) if (row := session.get(Site, sid)) is not None]
    fitting = [site for site in rows if kind in site.kinds.split()
               and any((site.id, role) in actor.grants for role in roles)]
    if len(fitting) > 1:
        raise InvalidInput("You work at several sites where this step can be done: say which "
                           "one you are scanning at.",
                           [{"field": "site", "message": "Choose the site."}])
    return fitting[0] if fitting else rows[0]


def _check_password(session: Session, now: datetime, username: str, password: str, whose: str,
                    remote_addr: str | None) -> tuple[User | None, Reason | None]:
    """Check a signer's password through the login throttle (the same counters as logins,
    recorded as a signing attempt, kept even if this scan is rolled back), so the signature
    fields cannot be used to guess passwords. The throttle attached to the session has the
    policy (coi.throttle)."""
    try:
        return users.authenticate(session=session, now=now, username=username, password=password,
                                  remote_addr=remote_addr, kind="signing"), None
    except Throttled as error:
        # The code is older than the delays that replaced the lock; clients know it.
        return None, Reason("signer_locked", f"{error.message} Nothing was signed ({whose} "
                                             "signature).")
    except AuthenticationFailed:
        return None, Reason("signature_failed", f"The username or password is wrong ({whose} "
                                                "signature): nothing was signed.")


def _record(
    session: Session, now: datetime, actor: Actor, case: Case, route: Route, step: Step | None,
    site: Site | None, entries: list[Entry], verdict: Verdict, device: str | None,
    device_at: datetime | None, request_key: str | None, *,
    signers: list[tuple[User, str]] | None = None, read: _Read,
    checks: list[holds.Check] | None = None,
) -> Outcome:
    state = read.state
    coi = coi_of(case)
    body: dict[str, Any] = {
        "step": step.name if step else None,
        "route_version": route.version,
        "phase": verdict.phase,
        "scans": [{"text": e.text, "method": e.method} for e in entries],
        "units": list(verdict.units),
    }
    if actor.via:  # the session or token the scan came through, on the chain
        body["via"] = actor.via
    if checks:  # QA release, infusion: what was checked, with results (signed with the step)
        body["checks"] = [check.document() for check in checks]
    if verdict.accepted and step is not None and site is not None:
        kind = {"give": "handoff_give", "receive": "handoff_receive"}.get(verdict.phase, "step")
        if step.makes:
            kind = "transform"
            body["parents"] = [s for s in verdict.units if _kind(s, state) != step.makes]
            body["children"] = [s for s in verdict.units if _kind(s, state) == step.makes]
        content = signed_content(coi.text, body, site.id, actor.user_id, now)  # type: ignore[arg-type]
        signed = [signature_service.sign_checked(
            session=session, now=now, signer=user, meaning=meaning, subject_type="custody",
            subject_id=f"{coi.text}:{step.name}:{verdict.phase}", content=content)
            for user, meaning in signers or []]
        if signed:
            body["signatures"] = [{"id": s.id, "signer": s.signer_name, "meaning": s.meaning}
                                  for s in signed]
            body["signed_sha256"] = signed[0].content_sha256
    else:
        kind = "scan_refused"
        body["refusals"] = [{"code": r.code, "message": r.message} for r in verdict.refusals]
    if verdict.alarms:
        body["alarms"] = [{"code": r.code, "message": r.message} for r in verdict.alarms]
    # The case row is locked and its chain read (scan()): append after its last event. The
    # event, the units and the case are written in one flush (a reused idempotency key is
    # refused by it, inside scan()).
    event = ledger.append_after(session=session, now=now, case=case, last=read.last, kind=kind,
                                body=body, actor_id=actor.user_id,
                                site_id=site.id if site else None, device=device,
                                device_at=device_at, request_key=request_key, flush=False)
    unlogged = None
    if kind != "scan_refused" and step is not None and site is not None:
        unlogged = _apply(session, now, case, route, step, site, verdict, kind, read.units)
    session.flush()
    alarms = [_raise_alarm(session, now, case, route, step, site, event, reason, actor)
              for reason in verdict.alarms]
    if unlogged:
        alarms += [alarm for alarm in [_no_temperature_data(session, now, case, route, site, event,
                                                            actor, unlogged)] if alarm]
    return Outcome(verdict, case, route, step, site, event, alarms, holds=read.holds)


# What `_record` adds to an event's body after its signers signed it.
ADDED_AFTER_SIGNING = ("signatures", "signed_sha256", "alarms")


def signed_content(coi_text: str, body: dict[str, Any], site_id: int, actor_id: int | None,
                   at: datetime) -> dict[str, Any]:
    """What the signers of a scan sign: the case, the event's body as it is before the
    signatures are added to it, where, by whom and when. Rebuilt from the event to re-check
    the signatures (coi.services.integrity)."""
    signed = {key: value for key, value in body.items() if key not in ADDED_AFTER_SIGNING}
    return {"case": coi_text, **signed, "site": site_id, "actor": actor_id, "at": at.isoformat()}


def _kind(serial: str, state: CaseState) -> str:
    return state.units[serial].kind


def _apply(session: Session, now: datetime, case: Case, route: Route, step: Step, site: Site,
           verdict: Verdict, kind: str, units: dict[str, Unit]) -> str | None:
    """Keep the current-state rows (unit custody, the case's place on its route) in step with
    the event just written; the ledger stays the evidence. Returns the leg a courier just
    delivered without a shipment (and so without temperature data), if the route ships it."""
    for unit in (units[serial] for serial in verdict.units):
        shelf = route.shelf_life.get(unit.kind)
        if shelf and shelf.from_step == step.name and unit.expires_at is None and kind != "handoff_give":
            # The step that fills or makes the unit starts its shelf life.
            unit.expires_at = now + timedelta(hours=shelf.hours)
            unit.expiry_check_at = unit.expires_at - timedelta(hours=shelf.warn_hours)
        if kind == "handoff_receive":
            unit.custodian_site_id = site.id  # type: ignore[assignment]
        if kind == "transform" and unit.kind != step.makes:
            unit.state = "consumed"
        else:
            unit.state = step.name
        if unit.state == "consumed" or step.name == route.steps[-1].name:
            unit.expiry_check_at = None  # used up: its expiry no longer matters
        session.add(unit)
    if kind == "handoff_give":
        return None
    names = [s.name for s in route.steps]
    following = route.steps[names.index(step.name) + 1] if step.name != names[-1] else None
    case.last_step, case.last_step_at = step.name, now
    case.next_step = following.name if following else None
    case.next_due_at = (now + timedelta(hours=following.max_hours)
                        if following and following.max_hours else None)
    case.overdue_alarm_id = None  # the new due time is watched by the overdue sweep
    case.state = "complete" if following is None else "in_progress"
    session.add(case)
    if kind == "handoff_receive":  # its update flushes the event, units and case first
        moved = shipments.on_handoff(session=session, now=now, case_id=case.id,  # type: ignore[arg-type]
                                     giver_roles=step.roles, receiver_roles=step.to_roles)
        leg = shipments.leg_into(case, site.id) if "courier" in step.roles else None  # type: ignore[arg-type]
        if leg and not moved and route.shipping.get(leg):
            return leg
    return None


def _raise_alarm(session: Session, now: datetime, case: Case, route: Route, step: Step | None,
                 site: Site | None, event: CustodyEvent, reason: Reason, actor: Actor) -> Alarm:
    rule: dict[str, Any] = {"rule": f"custody.{reason.code}", "route": route.product,
                            "route_version": route.version}
    if step is not None:
        rule["step"] = {"name": step.name, "title": step.title, "roles": list(step.roles),
                        "site_kind": step.site_kind, "scan": list(step.scan),
                        "verifiers": step.verifiers, "max_hours": step.max_hours,
                        "to_roles": list(step.to_roles), "to_site_kind": step.to_site_kind}
    patient_facing = step is not None and WRISTBAND in step.scan
    severity = "critical" if reason.code == "other_case" and patient_facing else "major"
    alarm = alarms.raise_alarm(session=session, now=now, kind="custody", code=reason.code,
                               severity=severity, summary=reason.message, rule=rule, case_id=case.id,
                               site_id=site.id if site else None, event_id=event.id, actor=actor)
    assert alarm is not None  # no fingerprint: always raised
    return alarm


def _no_temperature_data(session: Session, now: datetime, case: Case, route: Route,
                         site: Site | None, event: CustodyEvent, actor: Actor,
                         leg: str) -> Alarm | None:
    """A leg the route ships under a temperature profile was delivered without a shipment
    and its loggers: nothing shows what temperature the material travelled at. A hold of its
    own (the route's holds, coi.services.holds) until QA decides; raised once per leg."""
    profile = route.shipping[leg]
    return alarms.raise_alarm(
        session=session, now=now, kind="temperature", code="no_temperature_data", severity="major",
        summary=f"No temperature data for the {leg} leg: it was delivered without a shipment "
                f"and its loggers, so nothing shows it travelled within {profile}. QA must decide.",
        rule={"rule": "shipment.no_temperature_data", "leg": leg, "profile": profile,
              "route": route.product, "route_version": route.version},
        case_id=case.id, site_id=site.id if site else None, event_id=event.id, actor=actor,
        fingerprint=shipments.no_data_fingerprint(case.id, leg))  # type: ignore[arg-type]


def signatures_of(session: Session, event: CustodyEvent) -> list[Signature]:
    ids = [s["id"] for s in json.loads(event.body).get("signatures", [])]
    return list(session.exec(select(Signature).where(col(Signature.id).in_(ids)))) if ids else []
