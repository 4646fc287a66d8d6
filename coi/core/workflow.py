"""Judging a scan against a product's route: a pure function of (route, case state, scan
attempt), so every rule can be tested exhaustively. No session, no clock: the service
around it gathers the state, records the verdict and commits (ARCHITECTURE sections 5, 7).

A verdict either accepts the step, refuses it with reasons (nothing changes, the refusal
itself is recorded), or accepts it with alarms (a late step still happened and must be
followed up: refusing it would only hide it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from coi.core.identifiers import CoiId, IdentifierError, UnitSerial, foreign_description, parse_scan
from coi.core.route import Route, Step
from coi.core.words import in_sentence

# What a route step may ask to be scanned, besides unit kinds: the patient's wristband
# carries the COI identifier itself.
WRISTBAND = "wristband"
ENTRY_METHODS = ("scanned", "typed", "camera")

# Refusals that are not slips of the hand but signs that material or a patient may be
# mixed up or out of control: they also raise a custody alarm.
ALARMING = frozenset({"other_case", "not_in_custody", "wrong_person"})


@dataclass(frozen=True, slots=True)
class UnitState:
    kind: str
    custodian_site_id: int
    consumed: bool = False  # transformed into other units (manufacturing)
    destroyed: bool = False  # QA decided it is destroyed: consumed for good


@dataclass(frozen=True, slots=True)
class Held:
    """A hold on the case: an alarm QA has not decided yet stops these steps; `message`
    says what holds it, since when, and what would lift it."""

    steps: frozenset[str]
    message: str
    # The refusal code: "on_hold" for an alarm's hold; a release or infusion precondition
    # that failed (coi.services.holds.preconditions) is passed in as a hold of its own code.
    code: str = "on_hold"


@dataclass(frozen=True, slots=True)
class Pending:
    """A handoff given and not yet received."""

    step: str
    giver_id: int
    giver_site_id: int
    units: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class CaseState:
    coi: CoiId
    completed: tuple[str, ...]  # step names done so far, in order
    last_step_at: datetime | None
    units: dict[str, UnitState]  # unit serial (16 data characters) -> state
    pending: Pending | None = None
    holds: tuple[Held, ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """One scanned or typed text. A typed text is typed twice: `again` must equal it."""

    text: str
    method: str = "scanned"
    again: str | None = None


@dataclass(frozen=True, slots=True)
class Person:
    user_id: int
    roles: frozenset[str]  # their roles at the site of the attempt


@dataclass(frozen=True, slots=True)
class ScanAttempt:
    step: str
    entries: tuple[Entry, ...]
    actor_id: int
    actor_roles: frozenset[str]  # the actor's roles at `site_id`
    site_id: int
    site_kinds: frozenset[str]
    verifiers: tuple[Person, ...]  # people whose password was checked, with their roles here
    now: datetime


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Verdict:
    refusals: tuple[Reason, ...] = ()
    alarms: tuple[Reason, ...] = ()
    units: tuple[str, ...] = field(default=())  # the case's units this step acts on
    phase: str = "complete"  # "give" (a handoff offered), "receive" or "complete"
    expected: tuple[str, ...] = ()  # what the step wants scanned (kinds, wristband, serials)
    missing: tuple[str, ...] = ()  # what of it is not scanned yet

    @property
    def accepted(self) -> bool:
        return not self.refusals

    @property
    def completes_step(self) -> bool:
        return self.accepted and self.phase != "give"


def judge(route: Route, state: CaseState, attempt: ScanAttempt, *, partial: bool = False) -> Verdict:
    """The verdict on `attempt`. Refusals say what was checked and what is wrong.

    With `partial`, the attempt is a step still being scanned: what is missing (scans,
    verifiers) is listed, not refused, and no deadline is judged; every scan so far must
    be right. Refusals in ALARMING also come back as alarms."""
    try:
        step = route.step(attempt.step)
    except KeyError:
        return Verdict((Reason("unknown_step", f"'{attempt.step}' is not a step of this "
                               f"product's route (version {route.version})."),))
    receiving = step.handoff and state.pending is not None and state.pending.step == step.name
    refusals = [*_order(route, state, step, receiving)]
    if not receiving:  # the receiver of a handoff already holds the material: it must land
        refusals += [Reason(held.code, held.message) for held in state.holds
                     if step.name in held.steps]
    refusals += _receiver(step, state.pending, attempt) if receiving else _who_and_where(step, attempt)
    scanned, scan_refusals = _scanned(state, attempt.entries)
    refusals += scan_refusals
    expected, missing, kind_refusals = _expected(step, state, scanned, receiving)
    refusals += kind_refusals
    if missing and not partial:
        refusals += [Reason("missing_scan", f"'{step.title}' needs the {_item(item)} scanned.")
                     for item in missing]
    refusals += _custody(state, scanned, attempt, receiving)
    refusals += _verifiers(step, state.pending if receiving else None, attempt, partial)
    alarms = [reason for reason in refusals if reason.code in ALARMING]
    if not refusals and not partial:
        alarms += _deadline(step, state, attempt.now, receiving)
    units = tuple(sorted(s for s in scanned if s != WRISTBAND))
    phase = "receive" if receiving else "give" if step.handoff else "complete"
    return Verdict(tuple(refusals), tuple(alarms), units, phase, tuple(expected), tuple(missing))


def _order(route: Route, state: CaseState, step: Step, receiving: bool) -> list[Reason]:
    names = [s.name for s in route.steps]
    if step.name in state.completed:
        return [Reason("already_done", f"'{step.title}' is already recorded for this case.")]
    if state.pending is not None and not receiving:
        given = route.step(state.pending.step)
        return [Reason("handoff_pending", f"'{given.title}' was handed over and is waiting for "
                                          "the receiver's scan.")]
    expected = next((name for name in names if name not in state.completed), None)
    if expected != step.name:
        title = route.step(expected).title if expected else "nothing (the route is complete)"
        return [Reason("out_of_order", f"'{step.title}' is out of order: the next step is "
                                       f"'{title}'.")]
    return []


def _who_and_where(step: Step, attempt: ScanAttempt) -> list[Reason]:
    return _rights(step.title, step.roles, step.site_kind, attempt, "")


def _receiver(step: Step, pending: Pending | None, attempt: ScanAttempt) -> list[Reason]:
    assert pending is not None and step.to_site_kind is not None
    found = _rights(step.title, step.to_roles, step.to_site_kind, attempt, "received ")
    if attempt.actor_id == pending.giver_id:
        found.append(Reason("wrong_person", "You handed these units over: the receiver must "
                                            "scan them, not the giver."))
    return found


def _rights(title: str, roles: tuple[str, ...], site_kind: str, attempt: ScanAttempt,
            verb: str) -> list[Reason]:
    found = []
    if not attempt.actor_roles & set(roles):
        found.append(Reason("wrong_role", f"'{title}' is {verb or 'done '}by {_roles(roles)}; your "
                                          "roles at this site do not include it."))
    if site_kind not in attempt.site_kinds:
        found.append(Reason("wrong_site", f"'{title}' is {verb or 'done '}at a "
                                          f"{_item(site_kind)} site; this site is not one."))
    return found


def _scanned(state: CaseState, entries: tuple[Entry, ...]) -> tuple[dict[str, str], list[Reason]]:
    """{unit serial or WRISTBAND: kind} for what was scanned, and refusals for the rest."""
    found: dict[str, str] = {}
    refusals = []
    for entry in entries:
        if entry.method not in ENTRY_METHODS:
            refusals.append(Reason("bad_entry", f"'{entry.method}' is not a way of entering a "
                                                f"code; use {_or(ENTRY_METHODS)}."))
            continue
        if entry.method == "typed" and entry.again != entry.text:
            refusals.append(Reason("typed_mismatch", "A typed code must be typed twice, the same "
                                                     "both times: the two entries differ."))
            continue
        try:
            parsed = parse_scan(entry.text)
        except IdentifierError as error:
            refusals.append(Reason(error.code, error.message))
            continue
        if isinstance(parsed, CoiId):
            if parsed != state.coi:
                refusals.append(Reason("other_case", f"Wristband {parsed.display} belongs to "
                                                     f"another case than {state.coi.display}."))
            elif WRISTBAND in found:
                refusals.append(Reason("scanned_twice", "The wristband is already scanned for "
                                                        "this step."))
            else:
                found[WRISTBAND] = WRISTBAND
        elif isinstance(parsed, UnitSerial):
            if parsed.coi != state.coi:
                refusals.append(Reason("other_case", f"Unit {parsed.display} belongs to case "
                                                     f"{parsed.coi.display}, not "
                                                     f"{state.coi.display}."))
            elif parsed.compact not in state.units:
                refusals.append(Reason("unknown_unit", f"Unit {parsed.display} is not registered "
                                                       "for this case."))
            elif parsed.compact in found:
                refusals.append(Reason("scanned_twice", f"Unit {parsed.display} is already "
                                                        "scanned for this step."))
            else:
                found[parsed.compact] = state.units[parsed.compact].kind
        else:
            refusals.append(Reason("not_ours", foreign_description(parsed)))
    return found, refusals


def _expected(step: Step, state: CaseState, scanned: dict[str, str],
              receiving: bool) -> tuple[list[str], list[str], list[Reason]]:
    """(what the step expects, what of it is still missing, refusals for what does not
    belong). A receiver confirms each unit handed over; otherwise each named kind (and the
    wristband) must be scanned at least once."""
    refusals = []
    if receiving:
        assert state.pending is not None
        expected = list(state.pending.units)
        missing = [serial for serial in expected if serial not in scanned]
        for serial in scanned:
            if serial == WRISTBAND:
                refusals.append(Reason("wrong_kind", f"The wristband is not scanned at "
                                                     f"'{step.title}': scan the units."))
            elif serial not in expected:
                refusals.append(Reason("not_handed_over", f"Unit {_unit(serial)} was not part of "
                                                          "this handoff."))
        return expected, missing, refusals
    expected = list(step.scan)
    kinds = set(scanned.values())
    missing = [item for item in expected if item not in kinds]
    for serial, kind in scanned.items():
        if kind not in step.scan:
            refusals.append(Reason("wrong_kind", f"A {_item(kind)} is not scanned at "
                                                 f"'{step.title}'" + ("" if serial == WRISTBAND
                                                                      else f" ({_unit(serial)})")
                                   + f"; it needs {_or([_item(i) for i in step.scan])}."))
        elif serial != WRISTBAND and state.units[serial].destroyed:
            refusals.append(Reason("destroyed", f"Unit {_unit(serial)} was destroyed by QA "
                                                "decision: it can never be used."))
        elif serial != WRISTBAND and state.units[serial].consumed:
            refusals.append(Reason("consumed", f"Unit {_unit(serial)} was transformed in "
                                               "manufacturing and is no longer in use."))
    return expected, missing, refusals


def _custody(state: CaseState, scanned: dict[str, str], attempt: ScanAttempt,
             receiving: bool) -> list[Reason]:
    if receiving:  # the units are still with the giver until the receiver's scan is recorded
        assert state.pending is not None
        holder, where = state.pending.giver_site_id, "the giver's"
    else:
        holder, where = attempt.site_id, "this site's"
    return [Reason("not_in_custody", f"Unit {_unit(serial)} is not in {where} custody.")
            for serial in scanned if serial != WRISTBAND
            and state.units[serial].custodian_site_id != holder]


def _verifiers(step: Step, pending: Pending | None, attempt: ScanAttempt,
               partial: bool) -> list[Reason]:
    found = []
    ids = [person.user_id for person in attempt.verifiers]
    if attempt.actor_id in ids:
        found.append(Reason("self_verified", "You cannot verify your own scan: a second person "
                                             "must."))
    if pending is not None and pending.giver_id in ids:
        found.append(Reason("wrong_person", "The giver of a handoff cannot also verify it."))
    roles = set(step.to_roles if pending is not None else step.roles)
    for person in attempt.verifiers:
        if not person.roles & roles:
            found.append(Reason("verifier_role", f"A verifier of '{step.title}' must be "
                                                 f"{_roles(sorted(roles))} at this site."))
    others = set(ids) - {attempt.actor_id}
    if not partial and not found and len(others) < step.verifiers:
        found.append(Reason("missing_verifier", f"'{step.title}' needs {step.verifiers} other "
                                                f"{'person' if step.verifiers == 1 else 'people'} "
                                                "to verify."))
    return found


def _deadline(step: Step, state: CaseState, now: datetime, receiving: bool) -> list[Reason]:
    if step.max_hours is None or state.last_step_at is None:
        return []
    due = state.last_step_at + timedelta(hours=step.max_hours)
    if receiving and state.pending is not None and state.pending.at > due:
        return []  # the giver's scan was late already, and raised the alarm
    if now > due:
        late = now - due
        return [Reason("late", f"'{step.title}' is {_duration(late)} past its limit of "
                               f"{step.max_hours:g} h after the previous step.")]
    return []


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def _item(name: str) -> str:
    return name.replace("_", " ")


def _or(words: list[str] | tuple[str, ...]) -> str:
    return " or ".join(_item(word) for word in words)


def _roles(roles: list[str] | tuple[str, ...]) -> str:
    return " or ".join(in_sentence(role, "role") for role in roles)


def _unit(serial: str) -> str:
    return UnitSerial.from_compact(serial).display
