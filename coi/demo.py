"""The demo data set `make run` loads on first start: sites, people, one product with its
route, and six cases at different points on that route. Fictional people; facility ids
from the range reserved for validation (A9990-A9999), so no demo identifier can be
mistaken for a real one.

The cases are driven through the real scan service (`coi.services.custody.scan`), one
scan at a time, so their custody ledgers, signatures and alarms are genuine and
`flask coi ledger verify` checks them (a signed ledger checkpoint is made at the end).
Every event lies in the past: the set-up 30 days before `now`; what happened on earlier
days happened in working hours on Boston's clock (Berlin's for the Berlin enrolment); the
newest scans are minutes before `now`. In enrolment order (COI numbers count up with it):

1. Harriet Vance, Boston: needle to needle, infused yesterday morning. The whole timeline:
   collection signed by nurse.boston and verified by nurse2.boston, four handoffs (clinic
   to courier, courier to manufacturing and back, courier to clinic), the manufacturing
   step that turned the apheresis bag into the drug product bag, QA's signed release,
   thaw and the signed, verified infusion. Her labels were printed at enrolment (the bag
   label reprinted before collection, the original revoked), and at manufacturing a
   typed serial with a misread check character was refused before the bag was scanned.
   Her outbound shipper stood open at the clinic (40 min above 8 C): QA quarantined the
   bag on arrival and accepted it under deviation DEV-2026-0117 by a second decision the
   same day; the product was made the next morning, and the release names that decision.
2. Marisol Reyes, Boston: thawed 30 minutes before `now`, waiting for infusion, due 1.5 h
   after the thaw (an hour after `now`). Eight minutes before `now`, at her bedside, the
   wristband of another patient (Jun Takahashi) was scanned: refused, with a critical
   `other_case` alarm, which holds the infusion until QA resolves it.
3. Ivan Petrov, Boston: collected three days ago, at manufacturing now, waiting for the
   manufacturing step. The courier came late: the clinic's handoff was recorded 35 min
   past the 4 h limit after packing, with a `late` alarm.
4. Jun Takahashi, Boston: collected 80 and packed 45 minutes before `now`; the clinic
   handed the apheresis bag over 20 minutes before `now` and it waits for the courier's
   scan, due 4 h after packing (a receipt after that is recorded with a `late` alarm).
5. Katrin Vogel, Berlin: enrolled three days ago.
6. Omar Haddad, Boston: enrolled yesterday, collected six hours before `now` and not packed:
   packing was due 4 h after collection, so the scheduler's sweep raised a `step_overdue`
   alarm.

Alarms (the Alarms page, the dashboard): besides those above, Ivan Petrov's late handoff
was acknowledged at the clinic and resolved by QA with a signature; his excursion was
acknowledged at manufacturing and quarantined by QA, so his case is on hold and waits for
QA's second decision; his apheresis bag is close to (or past) its 72 h shelf life. Alarms
nobody acknowledged have escalated to QA (and on to QA at every site), as the scheduler
does when it first runs.

Shipments and their loggers (the Shipments page): Harriet Vance's and Marisol Reyes's two
legs, each with its logger file (a plain CSV export from a logger on Boston's clock
outbound, JSON readings from the liquid-nitrogen dry shipper back), Harriet Vance's
outbound leg with its 40 minutes above 8 C; Ivan Petrov's outbound leg, where the late
courier left the shipper warm: 50 minutes above 8 C, shaded on the chart, with a critical
`excursion_single` alarm and a minor pre-alarm; Jun Takahashi's shipment packed with its
logger, waiting for the courier's scan to dispatch it.

What to try (password for all: `demo-password-1`):
- courier: on /scan, type Jun Takahashi's bag serial (printed with the logins) to receive
  the handoff.
- nurse.boston: Marisol Reyes's case page shows when her infusion is due, and the hold the
  wrong wristband put on it; once qa.mfg has resolved that alarm, on /scan her wristband
  and drug product bag, signed by you and verified by nurse2.boston, record the infusion.
  Harriet Vance's case page shows the complete timeline; Omar Haddad waits for
  collection.
- coord.mfg: Ivan Petrov's case waits for manufacturing and is on hold (its case page says
  why): register a drug product bag on the case page, scan both bags on /scan, and the
  step is refused with what holds it.
- courier: Shipments, then Ivan Petrov's shipment: the chart and its excursion; drop any
  logger export on the upload box to see the preview (it is refused, and the refusal
  logged, when its logger is not the shipment's).
- qa.mfg: the Alarms inbox: Ivan Petrov's quarantined excursion waits for the second
  decision (accepted, under a deviation, or destroyed), which lifts the hold; resolve
  Marisol Reyes's wrong-wristband alarm; the audit trail.
- coord.mfg: the Dashboard, refreshing on its own: open alarms, cases by step with their
  next deadline, shipments in transit.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from importlib import resources
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from coi import jobs
from coi.core import alerting
from coi.core.access import Actor
from coi.core.phi import PatientIdentity, PhiCipher
from coi.core.workflow import Entry
from coi.models import Alarm, Case, Shipment, Site, coi_of, serial_of
from coi.services import (
    alarms,
    custody,
    enrolment,
    labels,
    ledger,
    masterdata,
    shipments,
    users,
)
from coi.services.custody import Credential, Outcome
from coi.services.keys import Signer
from coi.services.loggers import clocks, intake
from coldchain import Profile, load_profiles

PASSWORD = "demo-password-1"  # noqa: S105 - published demo logins, development mode only
REASON = "demo data set"
SET_UP_DAYS_AGO = 30  # sites, people and the product exist this long before `now`
ROUTE_VERSIONS = ("cartx-v1.toml", "cartx-v2.toml")

SITES = [
    # code, name, kinds, timezone, facility id
    ("BOS", "St. Brigid's Hospital, Boston", ["collection", "treatment"], "America/New_York", "A9998"),
    ("BER", "Spree University Hospital, Berlin", ["collection", "treatment"], "Europe/Berlin", "A9997"),
    ("MFG", "Northfield Cell Therapy Manufacturing", ["manufacturing"], "America/Chicago", None),
    ("DEP", "Swiftline Bio Logistics, Newark depot", ["courier_depot"], "America/New_York", None),
]

PEOPLE = [
    # username, full name, [(site code, role)], what they show
    ("nurse.boston", "Alice Moreno", [("BOS", "site_staff")],
     "Boston staff: infuse the thawed case on /scan (clock running), collect, enrol"),
    ("nurse2.boston", "Ben Okafor", [("BOS", "site_staff")],
     "second person in Boston: verifies collection and infusion"),
    ("pflege.berlin", "Clara Schulz", [("BER", "site_staff")], "site staff in Berlin"),
    ("coord.mfg", "Dev Patel", [("MFG", "coordinator")],
     "manufacturing: one case waits to be manufactured (no PHI)"),
    ("qa.mfg", "Eva Lindqvist", [("MFG", "qa")], "QA: audit trail, signed releases, alarms"),
    ("courier", "Femi Adeyemi", [("DEP", "courier")],
     "courier: receive the bag handed over in Boston, on /scan"),
    ("admin", "Grace Kim", [], "global administrator: every site's accounts, roles, tokens"),
    ("admin.berlin", "Hanna Weber", [("BER", "admin")], "administers Berlin's accounts only"),
]
GLOBAL_ADMINS = {"admin"}  # global administration is its own role, not a grant at each site

# When something happened: (days before today, "HH:MM") on the clock of the case's site (a
# working day's hour, whatever time `now` is), or an int: minutes before `now`.
Moment = tuple[int, str] | int

# In enrolment order: (site, identity, when the patient was enrolled, where the case stands
# now; see the module docstring).
PATIENTS = [
    ("BOS", PatientIdentity("Harriet Vance", date(1961, 3, 14), "BOS-100234"), (24, "10:15"), "infused"),
    ("BOS", PatientIdentity("Marisol Reyes", date(1984, 8, 21), "BOS-102113"), (22, "11:30"), "thawed"),
    ("BOS", PatientIdentity("Ivan Petrov", date(1978, 11, 2), "BOS-100871"), (9, "14:00"),
     "at_manufacturing"),
    ("BOS", PatientIdentity("Jun Takahashi", date(1990, 6, 30), "BOS-101502"), (6, "09:30"),
     "handed_over"),
    ("BER", PatientIdentity("Katrin Vogel", date(1955, 1, 9), "BER-55-0192"), (3, "10:00"), "enrolled"),
    ("BOS", PatientIdentity("Omar Haddad", date(1969, 4, 17), "BOS-102347"), (1, "16:40"), "collected"),
]

UNITS = {"infused": ("apheresis_bag", "sample", "sample"), "handed_over": ("apheresis_bag",),
         "enrolled": ("apheresis_bag", "sample")}  # others: an apheresis bag and one sample
STAFF = {"BOS": "nurse.boston", "BER": "pflege.berlin"}

# Route steps as each case went through them ("<step>.give" is the giving side of a
# handoff, "<step>" alone its receipt), on Boston's clock (manufacturing's is an hour
# behind). Each keeps within its step's max_hours unless the docstring says otherwise.
Plan = list[tuple[str, Moment]]

INFUSED: Plan = [
    ("collect", (20, "08:40")), ("pack", (20, "09:45")),
    ("pickup.give", (20, "10:35")), ("pickup", (20, "10:38")),
    ("deliver_manufacturing.give", (19, "07:50")), ("deliver_manufacturing", (19, "08:05")),
    ("manufacture", (18, "09:00")), ("release", (5, "15:30")),
    ("pickup_return.give", (3, "08:00")), ("pickup_return", (3, "08:12")),
    ("deliver_treatment.give", (2, "10:20")), ("deliver_treatment", (2, "10:26")),
    ("thaw", (1, "09:40")), ("infuse", (1, "10:25")),
]
THAWED: Plan = [
    ("collect", (18, "08:15")), ("pack", (18, "09:35")),
    ("pickup.give", (18, "10:15")), ("pickup", (18, "10:18")),
    ("deliver_manufacturing.give", (17, "08:20")), ("deliver_manufacturing", (17, "08:40")),
    ("manufacture", (17, "13:30")), ("release", (5, "10:00")),
    ("pickup_return.give", (2, "08:30")), ("pickup_return", (2, "08:55")),
    ("deliver_treatment.give", (1, "09:10")), ("deliver_treatment", (1, "09:18")),
    ("thaw", 30),
]
AT_MANUFACTURING: Plan = [  # the clinic hands over 4 h 35 min after packing: late
    ("collect", (3, "08:30")), ("pack", (3, "09:35")),
    ("pickup.give", (3, "14:10")), ("pickup", (3, "14:13")),
    ("deliver_manufacturing.give", (2, "09:00")), ("deliver_manufacturing", (2, "09:20")),
]
HANDED_OVER: Plan = [("collect", 80), ("pack", 45), ("pickup.give", 20)]
COLLECTED: Plan = [("collect", 360)]  # packing was due 4 h later: overdue, found by the sweep
PLANS = {"infused": INFUSED, "thawed": THAWED, "at_manufacturing": AT_MANUFACTURING,
         "handed_over": HANDED_OVER, "collected": COLLECTED}
WRONG_WRISTBAND: Moment = 8  # scanned at the thawed case's infusion
LATE = {("at_manufacturing", "pickup.give")}  # (story, step) recorded with a late alarm

# Who does each step (each side of a handoff), and what they scan.
DOERS = {
    "collect": ("nurse.boston", ("wristband", "bag")),
    "pack": ("nurse2.boston", ("bag",)),
    "pickup.give": ("nurse2.boston", ("bag",)),
    "pickup": ("courier", ("bag",)),
    "deliver_manufacturing.give": ("courier", ("bag",)),
    "deliver_manufacturing": ("coord.mfg", ("bag",)),
    "manufacture": ("coord.mfg", ("bag", "product")),
    "release": ("qa.mfg", ("product",)),
    "pickup_return.give": ("coord.mfg", ("product",)),
    "pickup_return": ("courier", ("product",)),
    "deliver_treatment.give": ("courier", ("product",)),
    "deliver_treatment": ("nurse.boston", ("product",)),
    "thaw": ("nurse.boston", ("product",)),
    "infuse": ("nurse.boston", ("wristband", "product")),
}
SIGNED = ("collect", "release", "infuse")  # the doer signs with their password
VERIFIED = ("collect", "infuse")  # and a second person verifies:
VERIFIER = "nurse2.boston"


def moment(now: datetime, when: Moment, timezone: str = "America/New_York") -> datetime:
    """The instant a Moment names (never after `now`: "days before today" is at least 1)."""
    if isinstance(when, int):
        return now - timedelta(minutes=when)
    days, clock = when
    zone = ZoneInfo(timezone)
    day = now.astimezone(zone).date() - timedelta(days=days)
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=zone).astimezone(UTC)


@dataclass
class _Case:
    site: str
    identity: PatientIdentity
    story: str
    coi: str = ""
    bag: str = ""  # the apheresis bag's serial
    product: str = ""  # the drug product bag's serial


class _Loader:
    """Collects what happens when, then does it in time order, so the audit trail, the
    login attempts of the signatures and the ledgers read as they would have happened."""

    def __init__(self, session: Session, now: datetime, cipher: PhiCipher, signer: Signer,
                 accounts: dict[str, Actor]) -> None:
        self.session, self.now, self.cipher, self.signer = session, now, cipher, signer
        self.accounts = accounts
        self.actions: list[tuple[datetime, int, Callable[[datetime], object]]] = []

    def at(self, when: datetime, action: Callable[[datetime], object]) -> None:
        if when > self.now:
            raise ValueError(f"demo event at {when} is after now ({self.now})")
        self.actions.append((when, len(self.actions), action))

    def run(self) -> None:
        for when, _order, action in sorted(self.actions, key=lambda item: (item[0], item[1])):
            action(when)

    def enrol(self, case: _Case, when: datetime) -> None:
        staff = self.accounts[STAFF[case.site]]

        def enrol(now: datetime) -> None:
            row = enrolment.enrol(session=self.session, now=now, actor=staff, cipher=self.cipher,
                                  site_code=case.site, product_code="CARTX",
                                  manufacturing_site_code="MFG", identity=case.identity)
            case.coi = coi_of(row).text

        self.at(when, enrol)
        for number, kind in enumerate(UNITS.get(case.story, ("apheresis_bag", "sample"))):
            self.at(when + timedelta(minutes=5 * (number + 1)),
                    partial(self.register, case, kind, actor=staff))

    def register(self, case: _Case, kind: str, now: datetime, actor: Actor) -> None:
        unit = enrolment.register_unit(session=self.session, now=now, actor=actor,
                                       coi_text=case.coi, kind=kind)
        if kind == "apheresis_bag":
            case.bag = serial_of(unit).text
        elif kind == "drug_product_bag":
            case.product = serial_of(unit).text

    def follow(self, case: _Case, plan: Plan) -> dict[str, datetime]:
        """Schedule the steps of `plan`; returns when each happens."""
        times: dict[str, datetime] = {}
        for name, when in plan:
            times[name] = moment(self.now, when)
            if len(times) > 1 and times[name] <= list(times.values())[-2]:
                raise ValueError(f"demo step {name} of a {case.story} case is not after the one "
                                 "before it")
            self.at(times[name], partial(self.step, case, name))
        if "manufacture" in times:  # the drug product bag is labelled before it is filled
            self.at(times["manufacture"] - timedelta(hours=2), partial(
                self.register, case, "drug_product_bag", actor=self.accounts["coord.mfg"]))
        return times

    def step(self, case: _Case, name: str, now: datetime) -> None:
        """One step of the route, done right (as `tests/test_custody.py` drives it)."""
        who, items = DOERS[name]
        codes = {"wristband": case.coi, "bag": case.bag, "product": case.product}
        self.scan(now, who, [Entry(codes[item]) for item in items], name.split(".")[0],
                  alarms=["late"] if (case.story, name) in LATE else [])

    def scan(self, now: datetime, who: str, entries: list[Entry], step: str, *,
             refused: str | None = None, alarms: list[str] | None = None,
             case: str | None = None) -> Outcome:
        """A final scan; it must come out as planned, or the demo stops (a changed route
        should change the demo too)."""
        outcome = custody.scan(session=self.session, now=now, actor=self.accounts[who],
                               entries=entries, step_name=step, coi_text=case,
                               own_password=PASSWORD if step in SIGNED else None,
                               verifiers=[Credential(VERIFIER, PASSWORD)] if step in VERIFIED
                               else [])
        codes = [reason.code for reason in outcome.verdict.refusals]
        raised = [alarm.code for alarm in outcome.alarms]
        if (refused not in codes if refused else codes) or raised != (alarms or []):
            raise RuntimeError(f"demo scan of '{step}' by {who}: expected "
                               f"{refused or 'acceptance'} with alarms {alarms or []}, got "
                               f"refusals {codes} and alarms {raised}: "
                               + " ".join(r.message for r in outcome.verdict.refusals))
        return outcome


def _print_labels(loader: _Loader, case: _Case, printed: datetime, replaced: datetime) -> None:
    """The first Boston case: its label set at enrolment, then one reprint just before
    collection, which revokes the smudged original."""
    nurse, session, signer = loader.accounts["nurse.boston"], loader.session, loader.signer
    first: list[labels.PrintJob] = []

    def print_set(now: datetime) -> None:
        first.append(labels.print_set(session=session, now=now, actor=nurse, signer=signer,
                                      coi_text=case.coi, output="zpl300", size="4x2",
                                      include_wristband=True, reason=None))

    def replace(now: datetime) -> None:
        label_id = first[0].rows[0].id
        labels.reprint(session=session, now=now, actor=nurse, signer=signer,
                       label_id=label_id, output="zpl300",  # type: ignore[arg-type]
                       reason="bag label smudged during collection")  # revokes it

    loader.at(printed, print_set)
    loader.at(replaced, replace)


def is_loaded(session: Session) -> bool:
    return session.exec(select(Site)).first() is not None


def load(*, session: Session, now: datetime, cipher: PhiCipher, signer: Signer,
         profiles: dict[str, Profile] | None = None,
         alerting_settings: alerting.Alerting | None = None) -> list[tuple[str, str, str]]:
    """Create the demo data set; returns (username, password, what they show) for each login."""
    set_up = now - timedelta(days=SET_UP_DAYS_AGO)
    sites = {code: masterdata.create_site(session=session, now=set_up, actor=None, code=code,
                                          name=name, kinds=kinds, timezone=tz, facility_id=fid,
                                          reason=REASON)
             for code, name, kinds, tz, fid in SITES}
    masterdata.create_product(session=session, now=set_up, actor=None, code="CARTX",
                              name="Autologous anti-CD19 CAR-T (demo)",
                              description="Fresh apheresis 2-8 C to manufacturing; "
                                          "cryopreserved drug product back (<= -150 C).",
                              reason=REASON)
    for version in ROUTE_VERSIONS:  # the cases follow the newest
        definition = resources.files("coi.route_definitions").joinpath(version).read_text()
        masterdata.add_route_version(session=session, now=set_up, actor=None,
                                     definition=definition, reason=REASON)
    accounts = {}
    for username, full_name, grants, _shows in PEOPLE:
        user = users.create_user(session=session, now=set_up, actor=None, username=username,
                                 full_name=full_name, password=PASSWORD, reason=REASON,
                                 email=f"{username}@demo.example.org")
        for code, role in grants:
            users.grant_role(session=session, now=set_up, actor=None, user_id=user.id,  # type: ignore[arg-type]
                             site_id=sites[code].id, role=role, reason=REASON)  # type: ignore[arg-type]
        if username in GLOBAL_ADMINS:
            users.set_global_admin(session=session, now=set_up, actor=None, user_id=user.id,  # type: ignore[arg-type]
                                   value=True, reason=REASON)
        accounts[username] = users.actor_for(session=session, user=user)
    loader = _Loader(session, now, cipher, signer, accounts)
    demo = {story: _Case(site, identity, story) for site, identity, _when, story in PATIENTS
            if story != "enrolled"}
    zones = {code: tz for code, _name, _kinds, tz, _fid in SITES}
    for site, identity, when, story in PATIENTS:
        case = demo.get(story) or _Case(site, identity, story)
        enrolled = moment(now, when, zones[site])
        loader.enrol(case, enrolled)
        times = loader.follow(case, PLANS[story]) if story in PLANS else {}
        if story == "infused":
            _print_labels(loader, case, enrolled + timedelta(minutes=30),
                          times["collect"] - timedelta(minutes=20))
            _refused_typed_serial(loader, case, times["deliver_manufacturing"])
        if story in SHIPPED:
            _shipments(loader, case, times, profiles or load_profiles())
        if story == "at_manufacturing":
            _followed_up(loader, case, times)
        if story == "infused":
            _quarantined_then_accepted(loader, case, times)
    _wrong_wristband(loader, demo["thawed"], demo["handed_over"], moment(now, WRONG_WRISTBAND))
    _scheduler(loader, alerting_settings or alerting.DEFAULT)
    loader.run()
    ledger.checkpoint(session=session, now=now, signer=signer)
    waiting = demo["handed_over"].bag
    return [(username, PASSWORD, f"{shows} (bag {waiting})" if username == "courier" else shows)
            for username, _n, _g, shows in PEOPLE]


def _alarm_of(loader: _Loader, case: _Case, code: str) -> int:
    row = loader.session.exec(select(Case).where(Case.coi == case.coi[:13])).one()
    alarm = loader.session.exec(select(Alarm).where(Alarm.case_id == row.id, Alarm.code == code)).one()
    assert alarm.id is not None
    return alarm.id


def _acknowledge(loader: _Loader, case: _Case, now: datetime, code: str, who: str,
                 comment: str) -> None:
    alarms.acknowledge(session=loader.session, now=now, actor=loader.accounts[who],
                       alarm_id=_alarm_of(loader, case, code), comment=comment)


def _resolve(loader: _Loader, case: _Case, now: datetime, code: str, outcome: str,
             comment: str) -> None:
    alarms.resolve(session=loader.session, now=now, actor=loader.accounts["qa.mfg"],
                   alarm_id=_alarm_of(loader, case, code), outcome=outcome, password=PASSWORD,
                   comment=comment)


def _followed_up(loader: _Loader, case: _Case, times: dict[str, datetime]) -> None:
    """Ivan Petrov's alarms, taken in hand: the late handoff acknowledged at the clinic and
    resolved by QA with a signature; the excursion acknowledged at manufacturing and the bag
    quarantined by QA, waiting for QA's second decision (qa.mfg sees the decision form; the
    hold refuses the manufacturing step meanwhile)."""
    # The scheduler found the pickup overdue 5 minutes after its limit; the courier's late
    # handoff followed. Both are acknowledged at the clinic and resolved by QA.
    for code in ("step_overdue", "late"):
        loader.at(times["pickup.give"] + timedelta(minutes=25), partial(
            _acknowledge, loader, case, code=code, who="nurse2.boston",
            comment="Courier held up in traffic; the sealed shipper waited in the clinic's 2-8 C fridge."))
        loader.at(times["deliver_manufacturing"] + timedelta(hours=3), partial(
            _resolve, loader, case, code=code, outcome="accepted",
            comment="35 min past the pickup limit, shipper sealed throughout: within the "
                    "validated hold time, no impact on the apheresis material."))
    loader.at(times["deliver_manufacturing"] + timedelta(minutes=50), partial(
        _acknowledge, loader, case, code="excursion_single", who="coord.mfg",
        comment="Apheresis bag set aside on receipt; stability data requested from QA."))
    loader.at(times["deliver_manufacturing"] + timedelta(hours=3, minutes=10), partial(
        _resolve, loader, case, code="excursion_single", outcome="quarantined",
        comment="50 min above 8 C, past the 30 min allowance: quarantined until the stability "
                "study for warm holds is reviewed."))


DEVIATION = "DEV-2026-0117"  # the deviation Harriet Vance's apheresis bag was accepted under


def _quarantined_then_accepted(loader: _Loader, case: _Case, times: dict[str, datetime]) -> None:
    """Harriet Vance's outbound shipper stood open in the clinic for 40 minutes (above 8 C,
    past the 30 min allowance): the bag was quarantined by QA on arrival, then accepted under
    a deviation by QA's second decision, the afternoon before manufacturing. The release
    names that decision and its deviation."""
    delivered = times["deliver_manufacturing"]
    for code in ("excursion_single", "pre_alarm"):
        loader.at(delivered + timedelta(minutes=40), partial(
            _acknowledge, loader, case, code=code, who="coord.mfg",
            comment="Shipper found warm on arrival; bag set aside in the quarantine fridge."))
    loader.at(delivered + timedelta(hours=1, minutes=30), partial(
        _resolve, loader, case, code="excursion_single", outcome="quarantined",
        comment="40 min above 8 C, past the 30 min allowance: quarantined pending the "
                "stability assessment."))
    loader.at(delivered + timedelta(hours=1, minutes=35), partial(
        _resolve, loader, case, code="pre_alarm", outcome="accepted",
        comment="The pre-alarm of the same warm-up; decided with the excursion."))

    def decide(now: datetime) -> None:
        alarms.decide(session=loader.session, now=now, actor=loader.accounts["qa.mfg"],
                      alarm_id=_alarm_of(loader, case, "excursion_single"),
                      outcome="accepted_with_deviation", password=PASSWORD, deviation=DEVIATION,
                      comment="Stability data cover 60 min at up to 10 C for fresh apheresis "
                              "material: accepted; the clinic's packing to be retrained.")

    loader.at(delivered + timedelta(hours=6), decide)


SCHEDULER_DAYS, SCHEDULER_EVERY = 4, timedelta(minutes=15)


def _scheduler(loader: _Loader, settings: alerting.Alerting) -> None:
    """The scheduler as if it had been running for the last days (every 15 minutes): it
    found Omar Haddad's packing overdue and, when nobody acknowledged, told QA; it warned of
    Ivan Petrov's apheresis bag nearing its 72 h shelf life. Notifications are written, not
    sent (no mail server is configured in development; see the README)."""

    def run(now: datetime) -> None:
        for job in jobs.deadline_jobs(settings).values():
            job(loader.session, now)
        alarms.notify(loader.session, now, settings=settings)

    when = loader.now - timedelta(days=SCHEDULER_DAYS)
    while when <= loader.now:
        loader.at(when, run)
        when += SCHEDULER_EVERY


def _refused_typed_serial(loader: _Loader, case: _Case, received: datetime) -> None:
    """Manufacturing receives a bag whose frosted label will not scan; the serial is typed
    (twice, the same) on the case's scan page with the check character misread: refused,
    then scanned right."""

    def typed(now: datetime) -> None:
        wrong = case.bag[:-1] + ("8" if case.bag[-1] != "8" else "B")
        loader.scan(now, "coord.mfg", [Entry(wrong, "typed", wrong)], "deliver_manufacturing",
                    refused="bad_check", case=case.coi)  # the scan page's case

    loader.at(received - timedelta(minutes=6), typed)


def _wrong_wristband(loader: _Loader, case: _Case, other: _Case, when: datetime) -> None:
    """At the bedside, from the case's scan page, another patient's wristband scanned with
    the right product bag: the infusion is refused and a critical `other_case` alarm raised."""
    loader.at(when, lambda now: loader.scan(now, "nurse.boston", [Entry(other.coi),
                                                                   Entry(case.product)],
                                            "infuse", refused="other_case",
                                            alarms=["other_case"], case=case.coi))


# Shipments: (leg, opened after this step, by whom, logger serial, logger zone or None,
# received at this step (None: not yet), the readings' shape, the file's format).
Shipped = tuple[str, str, str, str, str | None, str | None, str, str]
SHIPPED: dict[str, list[Shipped]] = {
    "infused": [("outbound", "pack", "nurse2.boston", "FT2L-130500109", "America/New_York",
                 "deliver_manufacturing", "door_open", "csv"),
                ("return", "release", "coord.mfg", "LN2-DS-4471", None, "deliver_treatment",
                 "steady_ln2", "json")],
    "thawed": [("outbound", "pack", "nurse2.boston", "FT2L-130500150", "America/New_York",
                "deliver_manufacturing", "steady_cold", "csv"),
               ("return", "release", "coord.mfg", "LN2-DS-4472", None, "deliver_treatment",
                "steady_ln2", "json")],
    "at_manufacturing": [("outbound", "pack", "nurse2.boston", "FT2L-130500217", "America/New_York",
                          "deliver_manufacturing", "warm_wait", "csv")],
    "handed_over": [("outbound", "pack", "nurse2.boston", "FT2L-130500388", "America/New_York",
                     None, "", "")],
}
READING_MINUTES = 5
# This logger's clock runs 40 s fast: its file's times are 40 s ahead, and the courier reads
# its display at the receipt scan (a clock check), which corrects the file stored after it.
FAST_LOGGER, FAST_BY = "FT2L-130500109", timedelta(seconds=40)


def _celsius(shape: str, minute: float) -> float:
    """A logger's reading `minute` minutes after its shipment was opened. warm_wait: the
    shipper warms while the courier is late (50 min above 8 C from 4 h after packing), then
    cools again; door_open: the shipper left open in the clinic, 40 min above 8 C an hour
    after packing."""
    wobble = 0.4 * math.sin(minute / 37)
    if shape == "steady_ln2":
        return round(-186.0 + 3 * wobble, 1)
    if shape == "warm_wait" and 240 <= minute <= 285:
        return round(8.6 + 1.2 * math.sin((minute - 240) / 45 * math.pi), 1)
    if shape == "door_open" and 60 <= minute <= 100:  # 40 min above 8 C in the clinic
        return round(8.5 + 0.6 * math.sin((minute - 60) / 40 * math.pi), 1)
    if shape == "door_open" and 50 <= minute < 60:  # warming through the pre-alarm
        return round(7.4 + (minute - 50) / 12, 1)
    if shape == "warm_wait" and 200 <= minute < 240:
        return round(5.0 + (minute - 200) / 40 * 2.4, 1)  # drifting up through the pre-alarm
    return round(4.8 + wobble, 1)


def _logger_file(shape: str, fmt: str, serial: str, zone: str | None, opened: datetime,
                 received: datetime) -> bytes:
    minutes = range(0, int((received - opened).total_seconds() / 60) + 1, READING_MINUTES)
    if fmt == "json":
        return json.dumps({"logger": serial, "readings": [
            {"at": (opened + timedelta(minutes=m)).isoformat(), "celsius": _celsius(shape, m)}
            for m in minutes]}, indent=1).encode()
    local = ZoneInfo(zone or "UTC")
    rows = ["Date Time,Temperature (°C)"] + [
        f"{(opened + timedelta(minutes=m)).astimezone(local):%Y-%m-%d %H:%M:%S},{_celsius(shape, m):.1f}"
        for m in minutes]
    return ("\r\n".join(rows) + "\r\n").encode()


def _shipments(loader: _Loader, case: _Case, times: dict[str, datetime],
               profiles: dict[str, Profile]) -> None:
    """Open each shipment a few minutes after its packing step and, once received, upload
    its logger file (the courier, 15 minutes after the receipt)."""
    for leg, after, who, serial, zone, received_at, shape, fmt in SHIPPED[case.story]:
        opened = times[after] + timedelta(minutes=3)
        made: dict[str, int] = {}

        # Expected: two hours after the planned delivery; 30 h from packing for one not yet
        # picked up.
        eta = times[received_at] + timedelta(hours=2) if received_at else opened + timedelta(hours=30)

        def open_(now: datetime, leg: str = leg, who: str = who, serial: str = serial,
                  zone: str | None = zone, made: dict[str, int] = made, eta: datetime = eta) -> None:
            shipment = shipments.open_shipment(
                session=loader.session, now=now, actor=loader.accounts[who], profiles=profiles,
                coi_text=case.coi, leg=leg, loggers=[shipments.LoggerSpec(serial, zone)],
                shipper_id=f"SHP-{serial[-3:]}", profile_name=None, eta=eta)
            made["id"] = shipment.id  # type: ignore[assignment]

        loader.at(opened, open_)
        if received_at is None:
            continue
        received = times[received_at]
        fast = FAST_BY if serial == FAST_LOGGER else timedelta(0)
        data = _logger_file(shape, fmt, serial, zone, opened + fast, received + fast)

        def check_clock(now: datetime, made: dict[str, int] = made, serial: str = serial,
                        zone: str | None = zone, fast: timedelta = fast) -> None:
            shipment = loader.session.get(Shipment, made["id"])
            assert shipment is not None and shipment.received_at is not None
            shown = (shipment.received_at + fast).astimezone(ZoneInfo(zone or "UTC")).replace(tzinfo=None)
            clocks.check_clock(session=loader.session, now=now, actor=loader.accounts["courier"],
                                shipment_id=made["id"], serial=serial, handoff="receive",
                                shown=shown.isoformat(sep=" "), zone=zone or "UTC")

        if fast:
            loader.at(received + timedelta(minutes=2), check_clock)

        def upload(now: datetime, made: dict[str, int] = made, data: bytes = data,
                   name: str = f"{serial}.{fmt}") -> None:
            intake.store(session=loader.session, now=now, actor=loader.accounts["courier"],
                          shipment_id=made["id"], stream=io.BytesIO(data), filename=name,
                          via="json" if name.endswith(".json") else "web")

        loader.at(received + timedelta(minutes=15), upload)
