"""Judging a scan against a product's route: a pure function of (route, case state, scan
attempt), so every rule can be tested exhaustively. No session, no clock: the service
around it gathers the state, records the verdict and commits (ARCHITECTURE sections 5, 7).

A verdict either accepts the step, refuses it with reasons (nothing changes, the refusal
itself is recorded), or accepts it with alarms (a late step still happened and must be
followed up: refusing it would only hide it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from coi.identifiers import CoiId, IdentifierError, UnitSerial, parse_scan
from coi.route import Route, Step
from coi.vocabulary import UNIT_KINDS

# What a route step may ask to be scanned, besides unit kinds: the patient's wristband
# carries the COI identifier itself. (Shippers and loggers arrive with the cold-chain issue.)
WRISTBAND = "wristband"


@dataclass(frozen=True, slots=True)
class UnitState:
    kind: str
    custodian_site_id: int


@dataclass(frozen=True, slots=True)
class CaseState:
    coi: CoiId
    completed: tuple[str, ...]  # step names done so far, in order
    last_step_at: datetime | None
    units: dict[str, UnitState]  # unit serial (16 data characters) -> state


@dataclass(frozen=True, slots=True)
class ScanAttempt:
    step: str
    texts: tuple[str, ...]  # exactly as scanned or typed
    actor_id: int
    actor_roles: frozenset[str]  # the actor's roles at `site_id`
    site_id: int
    site_kinds: frozenset[str]
    verifier_ids: tuple[int, ...]  # people who verified (their signatures checked elsewhere)
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

    @property
    def accepted(self) -> bool:
        return not self.refusals


def judge(route: Route, state: CaseState, attempt: ScanAttempt) -> Verdict:
    """The verdict on `attempt`. Refusals say what was checked and what is wrong."""
    try:
        step = route.step(attempt.step)
    except KeyError:
        return Verdict((Reason("unknown_step", f"'{attempt.step}' is not a step of this "
                               f"product's route (version {route.version})."),))
    refusals = [*_order(route, state, step), *_who_and_where(step, attempt)]
    scanned, scan_refusals = _scanned(state, attempt.texts)
    refusals += scan_refusals
    refusals += _expected(step, state, scanned)
    refusals += _custody(state, scanned, attempt)
    refusals += _verifiers(step, attempt)
    alarms = _deadline(step, state, attempt.now) if not refusals else []
    units = tuple(sorted(s for s in scanned if s != WRISTBAND))
    return Verdict(tuple(refusals), tuple(alarms), units)


def _order(route: Route, state: CaseState, step: Step) -> list[Reason]:
    names = [s.name for s in route.steps]
    if step.name in state.completed:
        return [Reason("already_done", f"'{step.title}' is already recorded for this case.")]
    expected = next((name for name in names if name not in state.completed), None)
    if expected != step.name:
        title = route.step(expected).title if expected else "nothing (the route is complete)"
        return [Reason("out_of_order", f"'{step.title}' is out of order: the next step is "
                                       f"'{title}'.")]
    return []


def _who_and_where(step: Step, attempt: ScanAttempt) -> list[Reason]:
    found = []
    if not attempt.actor_roles & set(step.roles):
        found.append(Reason("wrong_role", f"'{step.title}' is done by {' or '.join(step.roles)}; "
                                          "your roles at this site do not include it."))
    if step.site_kind not in attempt.site_kinds:
        found.append(Reason("wrong_site", f"'{step.title}' happens at a {step.site_kind.replace('_', ' ')} "
                                          "site; this site is not one."))
    return found


def _scanned(state: CaseState, texts: tuple[str, ...]) -> tuple[dict[str, str], list[Reason]]:
    """{unit serial or WRISTBAND: kind} for what was scanned, and refusals for the rest."""
    found: dict[str, str] = {}
    refusals = []
    for text in texts:
        try:
            parsed = parse_scan(text)
        except IdentifierError as error:
            refusals.append(Reason(error.code, error.message))
            continue
        if isinstance(parsed, CoiId):
            if parsed != state.coi:
                refusals.append(Reason("other_case", f"Wristband {parsed.display} belongs to "
                                                     f"another case than {state.coi.display}."))
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
            else:
                found[parsed.compact] = state.units[parsed.compact].kind
        else:
            refusals.append(Reason("not_ours", "This code is not a COI identifier or unit "
                                               "serial of this platform."))
    return found, refusals


def _expected(step: Step, state: CaseState, scanned: dict[str, str]) -> list[Reason]:
    refusals = []
    # Shippers and loggers are judged once shipments exist (cold-chain issue); everything
    # else a step names must be scanned.
    wanted = [item for item in step.scan if item == WRISTBAND or item in UNIT_KINDS]
    kinds = set(scanned.values())
    for item in wanted:
        if item not in kinds:
            refusals.append(Reason("missing_scan", f"'{step.title}' needs the "
                                                   f"{item.replace('_', ' ')} scanned."))
    for serial, kind in scanned.items():
        if kind not in step.scan:
            refusals.append(Reason("wrong_kind", f"A {kind.replace('_', ' ')} is not scanned at "
                                                 f"'{step.title}'" + ("" if serial == WRISTBAND
                                                                      else f" ({serial})") + "."))
    return refusals


def _custody(state: CaseState, scanned: dict[str, str], attempt: ScanAttempt) -> list[Reason]:
    return [Reason("not_in_custody", f"Unit {serial} is not in this site's custody.")
            for serial in scanned if serial != WRISTBAND
            and state.units[serial].custodian_site_id != attempt.site_id]


def _verifiers(step: Step, attempt: ScanAttempt) -> list[Reason]:
    others = set(attempt.verifier_ids) - {attempt.actor_id}
    if attempt.actor_id in attempt.verifier_ids:
        return [Reason("self_verified", "You cannot verify your own scan: a second person must.")]
    if len(others) < step.verifiers:
        return [Reason("missing_verifier", f"'{step.title}' needs {step.verifiers} other "
                                           f"{'person' if step.verifiers == 1 else 'people'} to "
                                           "verify.")]
    return []


def _deadline(step: Step, state: CaseState, now: datetime) -> list[Reason]:
    if step.max_hours is None or state.last_step_at is None:
        return []
    due = state.last_step_at + timedelta(hours=step.max_hours)
    if now > due:
        late = now - due
        return [Reason("late", f"'{step.title}' is {_duration(late)} past its limit of "
                               f"{step.max_hours:g} h after the previous step.")]
    return []


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"
