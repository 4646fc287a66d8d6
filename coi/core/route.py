"""A product's route as data: the ordered steps from enrolment to infusion, read from TOML.

Pure: text in, a validated `Route` out; `coi.core.workflow` gives the steps their meaning at scan
time. Stored per version, so that every case keeps the version it started with.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from coi.core.vocabulary import ROLES, SHIPMENT_LEGS, SITE_KINDS, UNIT_KINDS

STEP_KEYS = {"name", "title", "roles", "site_kind", "scan", "verifiers", "max_hours", "sign",
             "to_roles", "to_site_kind", "makes", "overdue_alarm", "overdue_severity"}
SHELF_LIFE_KEYS = {"hours", "warn_hours", "from_step"}
HOLD_KEYS = {"kind", "codes", "steps"}
ALARM_KINDS = ("custody", "temperature", "deadline")  # what may hold material (coi.models.alarm)
OVERDUE_SEVERITIES = ("critical", "major", "minor")
SCAN_ITEMS = ("wristband", *UNIT_KINDS)  # what a step may ask to be scanned
SIGN_MEANINGS = ("collected", "released", "verified", "approved", "administered")  # the doer's own signature


class RouteError(ValueError):
    """The route definition is not valid; the message says where."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    title: str
    roles: tuple[str, ...]
    site_kind: str
    scan: tuple[str, ...]  # what must be scanned, e.g. ("wristband", "apheresis_bag")
    verifiers: int
    max_hours: float | None  # time allowed since the previous step
    sign: str | None = None  # the doer e-signs with this meaning (verifiers always sign)
    # A handoff: the doer gives, and custody passes only when a receiver with one of these
    # roles, at a site of this kind, has scanned the same units.
    to_roles: tuple[str, ...] = ()
    to_site_kind: str | None = None
    # A transformation: the step turns the other units it scans into units of this kind,
    # recorded as one event linking parents and children.
    makes: str | None = None
    # The alarm raised by the scheduler when this step is not done by its due time (e.g.
    # infusion: "thaw_window", critical).
    overdue_alarm: str = "step_overdue"
    overdue_severity: str = "major"

    @property
    def handoff(self) -> bool:
        return bool(self.to_roles)


@dataclass(frozen=True, slots=True)
class ShelfLife:
    hours: float
    warn_hours: float  # "close to expiry" this long before it
    from_step: str  # the step that fills or makes the unit starts its clock


@dataclass(frozen=True, slots=True)
class HoldRule:
    """Open alarms of `kind` with one of `codes` hold the case: `steps` are refused until QA
    decides (a minor alarm holds nothing)."""

    kind: str
    codes: tuple[str, ...]
    steps: tuple[str, ...]


# The alarm codes that hold material when a route says nothing: a unit of another case, a
# unit out of custody, the wrong person at a handoff (coi.core.workflow.ALARMING); a
# temperature excursion or a used-up stability budget (coldchain.evaluate), a leg delivered
# without a shipment and its loggers (coi.services.shipments); an expired unit
# and a missed thaw window (coi.jobs.sweeps). `late` and the reminders hold nothing.
DEFAULT_HOLD_CODES: dict[str, tuple[str, ...]] = {
    "custody": ("other_case", "not_in_custody", "wrong_person"),
    "temperature": ("excursion_single", "excursion_cumulative", "stability_budget",
                    "no_temperature_data"),
    "deadline": ("expired", "thaw_window"),
}


def default_holds(steps: tuple[Step, ...]) -> tuple[HoldRule, ...]:
    """The safe default: each default code stops every step that moves material on (consumes,
    releases, packs and ships, thaws, infuses): every step after the first that scans a unit,
    except a delivery by a courier, so that held material in transit still reaches a site
    that can keep it in quarantine."""
    first = next((number for number, step in enumerate(steps)
                  if any(item in UNIT_KINDS for item in step.scan)), len(steps))
    held = tuple(step.name for step in steps[first + 1:]
                 if any(item in UNIT_KINDS for item in step.scan)
                 and not (step.handoff and step.site_kind == "courier_depot"))
    return tuple(HoldRule(kind, codes, held) for kind, codes in DEFAULT_HOLD_CODES.items())


@dataclass(frozen=True, slots=True)
class Route:
    product: str
    version: int
    steps: tuple[Step, ...]
    # The temperature profile each leg ships under ("outbound", "return" -> profile name).
    shipping: dict[str, str] = field(default_factory=dict, compare=False)
    # How long each kind of unit keeps, from the step that fills or makes it.
    shelf_life: dict[str, ShelfLife] = field(default_factory=dict, compare=False)

    # Which open alarms hold a case, and the steps they stop until QA decides. A route
    # without a `[[hold]]` section gets `default_holds(steps)`: holding is the safe side.
    holds: tuple[HoldRule, ...] = field(default=(), compare=False)

    def held_steps(self, kind: str, code: str, severity: str) -> tuple[str, ...]:
        """The steps an alarm of this kind, code and severity stops while it holds: none for
        a minor alarm, whatever the route says."""
        if severity == "minor":
            return ()
        steps: list[str] = []
        for rule in self.holds:
            if rule.kind == kind and code in rule.codes:
                steps += [name for name in rule.steps if name not in steps]
        return tuple(name for name in (s.name for s in self.steps) if name in steps)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


def parse_route(text: str) -> Route:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RouteError(f"the route is not valid TOML: {exc}") from exc
    product = data.get("product")
    version = data.get("version")
    if not isinstance(product, str) or not product:
        raise RouteError("the route needs `product = \"CODE\"`")
    if not isinstance(version, int) or version < 1:
        raise RouteError("the route needs `version = N` with N a whole number from 1")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise RouteError("the route needs at least one [[step]]")
    steps = tuple(_parse_step(number, raw) for number, raw in enumerate(raw_steps, start=1))
    names = [step.name for step in steps]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RouteError(f"step names must be unique; repeated: {', '.join(duplicates)}")
    if steps[0].name != "enrol":
        raise RouteError("the first step must be `enrol`")
    shipping = data.get("shipping", {})
    if not isinstance(shipping, dict) or not all(
            leg in SHIPMENT_LEGS and isinstance(name, str) and name for leg, name in shipping.items()):
        raise RouteError("[shipping] maps legs (" + ", ".join(SHIPMENT_LEGS)
                         + ") to temperature profile names")
    unknown = sorted(set(data) - {"product", "version", "step", "shipping", "shelf_life", "hold"})
    if unknown:
        raise RouteError(f"the route has unknown keys: {', '.join(unknown)}")
    shelf_life = _parse_shelf_life(data.get("shelf_life", {}), steps)
    holds = _parse_holds(data["hold"], steps) if "hold" in data else default_holds(steps)
    return Route(product=product, version=version, steps=steps, shipping=dict(shipping),
                 shelf_life=shelf_life, holds=holds)


def _parse_holds(raw: object, steps: tuple[Step, ...]) -> tuple[HoldRule, ...]:
    """`[[hold]]` tables: {kind, codes, steps}. `hold = []` says, explicitly, that nothing
    holds (a route that omits the key gets `default_holds`)."""
    if not isinstance(raw, list):
        raise RouteError("[[hold]] tables say which alarms hold the case: {kind, codes, steps}")
    names = [step.name for step in steps]
    rules = []
    for number, entry in enumerate(raw, start=1):
        where = f"hold {number}"
        if not isinstance(entry, dict) or set(entry) != HOLD_KEYS:
            raise RouteError(f"{where} needs exactly: kind, codes, steps")
        kind, codes, held = entry["kind"], entry["codes"], entry["steps"]
        if kind not in ALARM_KINDS:
            raise RouteError(f"{where}: `kind` must be one of {', '.join(ALARM_KINDS)}")
        if not isinstance(codes, list) or not codes or not all(
                isinstance(code, str) and code.isidentifier() and len(code) <= 40 for code in codes):
            raise RouteError(f"{where}: `codes` must list alarm codes (letters, digits, _)")
        if "late" in codes:
            raise RouteError(f"{where}: a late step does not hold material; it is followed up "
                             "as an alarm")
        if not isinstance(held, list) or not held or any(name not in names for name in held):
            raise RouteError(f"{where}: `steps` must list steps of this route")
        if names[0] in held:
            raise RouteError(f"{where}: `{names[0]}` cannot be held (there is no material yet)")
        rules.append(HoldRule(kind, tuple(codes), tuple(held)))
    return tuple(rules)


def _parse_shelf_life(raw: object, steps: tuple[Step, ...]) -> dict[str, ShelfLife]:
    if not isinstance(raw, dict):
        raise RouteError("[shelf_life] maps unit kinds to {hours, warn_hours, from_step}")
    found = {}
    for kind, entry in raw.items():
        where = f"[shelf_life.{kind}]"
        if kind not in UNIT_KINDS:
            raise RouteError(f"{where}: not a unit kind; use one of {', '.join(UNIT_KINDS)}")
        if not isinstance(entry, dict) or set(entry) != SHELF_LIFE_KEYS:
            raise RouteError(f"{where} needs exactly: hours, warn_hours, from_step")
        hours, warn = entry["hours"], entry["warn_hours"]
        if not isinstance(hours, int | float) or hours <= 0 or not isinstance(warn, int | float) \
                or not 0 <= warn < hours:
            raise RouteError(f"{where}: `hours` must be positive and `warn_hours` from 0 to "
                             "less than `hours`")
        step = next((s for s in steps if s.name == entry["from_step"]), None)
        if step is None or kind not in step.scan:
            raise RouteError(f"{where}: `from_step` must name a step that scans {kind}")
        found[kind] = ShelfLife(float(hours), float(warn), step.name)
    return found


def _parse_step(number: int, raw: object) -> Step:
    where = f"step {number}"
    if not isinstance(raw, dict):
        raise RouteError(f"{where} is not a table")
    unknown = sorted(set(raw) - STEP_KEYS)
    if unknown:
        raise RouteError(f"{where} has unknown keys: {', '.join(unknown)}")
    name, title = raw.get("name"), raw.get("title")
    if not isinstance(name, str) or not name.isidentifier():
        raise RouteError(f"{where} needs a `name` made of letters, digits and _")
    where = f"step {number} ({name})"
    if not isinstance(title, str) or not title:
        raise RouteError(f"{where} needs a `title`")
    roles = raw.get("roles")
    if not isinstance(roles, list) or not roles or any(role not in ROLES for role in roles):
        raise RouteError(f"{where}: `roles` must list some of {', '.join(ROLES)}")
    site_kind = raw.get("site_kind")
    if site_kind not in SITE_KINDS:
        raise RouteError(f"{where}: `site_kind` must be one of {', '.join(SITE_KINDS)}")
    scan = raw.get("scan", [])
    if not isinstance(scan, list) or any(item not in SCAN_ITEMS for item in scan):
        raise RouteError(f"{where}: `scan` must list some of {', '.join(SCAN_ITEMS)}")
    verifiers = raw.get("verifiers", 0)
    if not isinstance(verifiers, int) or not 0 <= verifiers <= 3:
        raise RouteError(f"{where}: `verifiers` must be 0 to 3")
    max_hours = raw.get("max_hours")
    if max_hours is not None and (not isinstance(max_hours, int | float) or max_hours <= 0):
        raise RouteError(f"{where}: `max_hours` must be a positive number")
    sign = raw.get("sign")
    if sign is not None and sign not in SIGN_MEANINGS:
        raise RouteError(f"{where}: `sign` must be one of {', '.join(SIGN_MEANINGS)}")
    to_roles, to_site_kind = raw.get("to_roles", []), raw.get("to_site_kind")
    if not isinstance(to_roles, list) or any(role not in ROLES for role in to_roles):
        raise RouteError(f"{where}: `to_roles` must list some of {', '.join(ROLES)}")
    if bool(to_roles) != (to_site_kind is not None) or (to_site_kind is not None
                                                        and to_site_kind not in SITE_KINDS):
        raise RouteError(f"{where}: a handoff needs both `to_roles` and `to_site_kind` (one of "
                         f"{', '.join(SITE_KINDS)})")
    if to_roles and not any(item in UNIT_KINDS for item in scan):
        raise RouteError(f"{where}: a handoff must scan the units it hands over")
    makes = raw.get("makes")
    if makes is not None and (makes not in UNIT_KINDS or makes not in scan
                              or not any(item in UNIT_KINDS and item != makes for item in scan)):
        raise RouteError(f"{where}: `makes` must be a unit kind the step scans, beside the "
                         "kinds it is made from")
    overdue_alarm = raw.get("overdue_alarm", "step_overdue")
    if not isinstance(overdue_alarm, str) or not overdue_alarm.isidentifier() or len(overdue_alarm) > 40:
        raise RouteError(f"{where}: `overdue_alarm` must be a short name (letters, digits, _)")
    overdue_severity = raw.get("overdue_severity", "major")
    if overdue_severity not in OVERDUE_SEVERITIES:
        raise RouteError(f"{where}: `overdue_severity` must be one of {', '.join(OVERDUE_SEVERITIES)}")
    if "overdue_alarm" in raw and max_hours is None:
        raise RouteError(f"{where}: `overdue_alarm` needs `max_hours`")
    return Step(
        name=name,
        title=title,
        roles=tuple(roles),
        site_kind=str(site_kind),
        scan=tuple(scan),
        verifiers=verifiers,
        max_hours=float(max_hours) if max_hours is not None else None,
        sign=sign,
        to_roles=tuple(to_roles),
        to_site_kind=to_site_kind,
        makes=makes,
        overdue_alarm=overdue_alarm,
        overdue_severity=overdue_severity,
    )
