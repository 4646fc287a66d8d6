"""The demo data set `make run` loads on first start: sites, people, one product with its
route, and a few cases. Fictional people; facility ids from the range reserved for
validation (A9990-A9999), so no demo identifier can be mistaken for a real one."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from importlib import resources

from sqlmodel import Session, select

from coi.access import Actor
from coi.models import Site
from coi.phi import PatientIdentity, PhiCipher
from coi.services import cases, enrolment, labels, masterdata, users

PASSWORD = "demo-password-1"  # noqa: S105 - published demo logins, development mode only
REASON = "demo data set"

SITES = [
    # code, name, kinds, timezone, facility id
    ("BOS", "St. Brigid's Hospital, Boston", ["collection", "treatment"], "America/New_York", "A9998"),
    ("BER", "Spree University Hospital, Berlin", ["collection", "treatment"], "Europe/Berlin", "A9997"),
    ("MFG", "Northfield Cell Therapy Manufacturing", ["manufacturing"], "America/Chicago", None),
    ("DEP", "Swiftline Bio Logistics, Newark depot", ["courier_depot"], "America/New_York", None),
]

PEOPLE = [
    # username, full name, [(site code, role)], what they show
    ("nurse.boston", "Alice Moreno", [("BOS", "site_staff")], "enrols and registers units in Boston"),
    ("nurse2.boston", "Ben Okafor", [("BOS", "site_staff")], "second person in Boston"),
    ("pflege.berlin", "Clara Schulz", [("BER", "site_staff")], "site staff in Berlin"),
    ("coord.mfg", "Dev Patel", [("MFG", "coordinator")], "lists cases at manufacturing (no PHI)"),
    ("qa.mfg", "Eva Lindqvist", [("MFG", "qa")], "QA: audit trail, later releases"),
    ("courier", "Femi Adeyemi", [("DEP", "courier")], "courier (custody issue)"),
    ("admin", "Grace Kim", [(code, "admin") for code, *_ in SITES], "accounts, roles, tokens"),
]

PATIENTS = [
    ("BOS", PatientIdentity("Harriet Vance", date(1961, 3, 14), "BOS-100234")),
    ("BOS", PatientIdentity("Ivan Petrov", date(1978, 11, 2), "BOS-100871")),
    ("BOS", PatientIdentity("Jun Takahashi", date(1990, 6, 30), "BOS-101502")),
    ("BER", PatientIdentity("Katrin Vogel", date(1955, 1, 9), "BER-55-0192")),
]


def _print_labels(session: Session, now: datetime, nurse: Actor, signer: labels.Signer,
                  coi: str) -> None:
    """The first Boston case: its label set, one reprint, and one label revoked."""
    first = labels.print_set(session=session, now=now, actor=nurse, signer=signer, coi_text=coi,
                             output="zpl300", size="4x2", include_wristband=True, reason=None)
    later = now + timedelta(minutes=20)
    labels.reprint(session=session, now=later, actor=nurse, signer=signer,
                   label_id=first.rows[0].id, output="zpl300",  # type: ignore[arg-type]
                   reason="bag label smudged during collection")
    labels.revoke(session=session, now=later, actor=nurse, label_id=first.rows[0].id,  # type: ignore[arg-type]
                  reason="replaced by the reprint")


def is_loaded(session: Session) -> bool:
    return session.exec(select(Site)).first() is not None


def load(*, session: Session, now: datetime, cipher: PhiCipher,
         signer: labels.Signer) -> list[tuple[str, str, str]]:
    """Create the demo data set; returns (username, password, what they show) for each login."""
    sites = {code: masterdata.create_site(session=session, now=now, actor=None, code=code,
                                          name=name, kinds=kinds, timezone=tz, facility_id=fid,
                                          reason=REASON)
             for code, name, kinds, tz, fid in SITES}
    masterdata.create_product(session=session, now=now, actor=None, code="CARTX",
                              name="Autologous anti-CD19 CAR-T (demo)",
                              description="Fresh apheresis 2-8 C to manufacturing; "
                                          "cryopreserved drug product back (<= -150 C).",
                              reason=REASON)
    definition = resources.files("coi.route_definitions").joinpath("cartx-v1.toml").read_text()
    masterdata.add_route_version(session=session, now=now, actor=None, definition=definition,
                                 reason=REASON)
    accounts = {}
    for username, full_name, grants, _shows in PEOPLE:
        user = users.create_user(session=session, now=now, actor=None, username=username,
                                 full_name=full_name, password=PASSWORD, reason=REASON)
        for code, role in grants:
            users.grant_role(session=session, now=now, actor=None, user_id=user.id,  # type: ignore[arg-type]
                             site_id=sites[code].id, role=role, reason=REASON)  # type: ignore[arg-type]
        accounts[username] = users.actor_for(session=session, user=user)
    staff = {"BOS": accounts["nurse.boston"], "BER": accounts["pflege.berlin"]}
    cois = []
    for number, (site, identity) in enumerate(PATIENTS):
        case = enrolment.enrol(session=session, now=now, actor=staff[site], cipher=cipher,
                               site_code=site, product_code="CARTX", manufacturing_site_code="MFG",
                               identity=identity)
        coi = cases.coi_of(case).text
        for kind in ("apheresis_bag", "sample", "sample")[: 3 - number % 3]:
            enrolment.register_unit(session=session, now=now, actor=staff[site], coi_text=coi,
                                    kind=kind)
        cois.append(coi)
    _print_labels(session, now, staff["BOS"], signer, cois[0])
    return [(username, PASSWORD, shows) for username, _n, _g, shows in PEOPLE]

