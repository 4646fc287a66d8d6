"""Enrolment: a patient, their case with its COI identifier, and the case's units."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from coi.core.access import Actor, require
from coi.core.errors import Conflict, InvalidInput
from coi.core.identifiers import UNIT_KIND_CODES, CoiId
from coi.core.phi import PatientIdentity, PhiCipher
from coi.models import Case, CoiSequence, Patient, Product, Site, Unit, coi_of
from coi.services import audit, ledger, masterdata
from coi.services.cases import visible_case

MAX_UNITS_PER_KIND = 99


def enrol(
    *,
    session: Session,
    now: datetime,
    actor: Actor,
    cipher: PhiCipher,
    site_code: str,
    product_code: str,
    manufacturing_site_code: str,
    identity: PatientIdentity,
) -> Case:
    """Enrol a patient at a collection site: the patient (PHI encrypted), the case and its
    COI identifier, in the caller's transaction."""
    site = _site(session, site_code, "site")
    require(actor, "case.enrol", site.id, doing=f"enrol patients at {site.name}")
    if "collection" not in site.kind_set or not site.facility_id:
        raise InvalidInput(f"{site.name} is not a collection site with a facility id, so it "
                           "cannot enrol patients.", [{"field": "site", "message": "Not a collection site."}])
    manufacturing = _site(session, manufacturing_site_code, "manufacturing_site")
    if "manufacturing" not in manufacturing.kind_set:
        raise InvalidInput(f"{manufacturing.name} is not a manufacturing site.",
                           [{"field": "manufacturing_site", "message": "Not a manufacturing site."}])
    product = session.exec(select(Product).where(Product.code == product_code)).first()
    if product is None or not product.active:
        raise InvalidInput(f"There is no active product {product_code!r}.",
                           [{"field": "product", "message": "Choose an active product."}])
    route = masterdata.current_route(session=session, product=product)
    if route is None:
        raise InvalidInput(f"Product {product.code} has no route yet, so no case can start.")
    check_identity(identity, now)

    mrn_index = cipher.mrn_index(identity.mrn)
    duplicate = session.exec(select(Case).join(Patient).where(
        Patient.site_id == site.id, Patient.mrn_index == mrn_index)).first()
    if duplicate is not None:
        raise Conflict(f"A patient with this medical record number is already enrolled at "
                       f"{site.name} (case {coi_of(duplicate).text}).",
                       code="duplicate_mrn")
    # The year in the identifier is the enrolling site's calendar year, not UTC's: a case
    # enrolled on New Year's Eve evening in Boston belongs to the old year.
    year = now.astimezone(ZoneInfo(site.timezone)).year
    coi = CoiId.issue(site.facility_id, year, _next_number(session, site.facility_id, year))
    patient = Patient(site_id=site.id, phi=cipher.encrypt(identity),  # type: ignore[arg-type]
                      mrn_index=mrn_index, created_at=now, created_by_id=actor.user_id)
    try:
        with session.begin_nested():
            session.add(patient)
            session.flush()
    except IntegrityError as exc:
        # Another enrolment of the same MRN committed between our check and our insert.
        raise Conflict(f"A patient with this medical record number is already enrolled at "
                       f"{site.name}.", code="duplicate_mrn") from exc
    case = Case(coi=coi.compact, patient_id=patient.id, product_id=product.id,  # type: ignore[arg-type]
                route_id=route.id, site_id=site.id, manufacturing_site_id=manufacturing.id,  # type: ignore[arg-type]
                state="enrolled", created_at=now, created_by_id=actor.user_id,
                last_step="enrol", last_step_at=now)
    steps = masterdata.route_of(route).steps
    if len(steps) > 1:  # the first deadline: the step after enrolment
        case.next_step = steps[1].name
        case.next_due_at = now + timedelta(hours=steps[1].max_hours) if steps[1].max_hours else None
    session.add(case)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="patient", entity_id=patient.id,
                 action="create", reason=f"enrolment, case {coi.text}",
                 changes={"phi": (None, "encrypted"), "site": (None, site.code)})
    ledger.append(session=session, now=now, case=case, kind="enrol", actor_id=actor.user_id,
                  site_id=site.id, body={"coi": coi.text, "product": product.code,
                                         "route_version": route.version,
                                         "manufacturing_site": manufacturing.code} | _via(actor))
    return case


def register_unit(
    *, session: Session, now: datetime, actor: Actor, coi_text: str, kind: str,
) -> Unit:
    """Register a unit of `kind` against a case; its serial is the next of that kind.

    Drug-product units are registered by the manufacturing site, in its custody, before the
    manufacturing step links them to the apheresis units they are made from; every other
    kind by the treating site."""
    if kind not in UNIT_KIND_CODES:
        raise InvalidInput(f"'{kind}' is not a unit kind; use one of: "
                           f"{', '.join(UNIT_KIND_CODES)}.",
                           [{"field": "kind", "message": "Choose a unit kind."}])
    # Locked, so two registrations of the same kind cannot take one sequence number; a case
    # the actor may not see is "not found", as on the case page.
    case = visible_case(session=session, actor=actor, coi_text=coi_text, lock=True)
    coi = coi_of(case)
    holder = case.manufacturing_site_id if kind == "drug_product_bag" else case.site_id
    require(actor, "unit.register", holder, doing=f"register {kind.replace('_', ' ')} units for "
                                                  "this case")
    last = session.exec(select(func.max(Unit.sequence)).where(
        Unit.case_id == case.id, Unit.kind == kind)).one() or 0
    if last >= MAX_UNITS_PER_KIND:
        raise Conflict(f"Case {coi.text} already has {MAX_UNITS_PER_KIND} units of kind {kind}.")
    serial = coi.unit(kind, last + 1)
    unit = Unit(serial=serial.compact, case_id=case.id, kind=kind,  # type: ignore[arg-type]
                sequence=last + 1, state="registered", custodian_site_id=holder,
                created_at=now, created_by_id=actor.user_id)
    session.add(unit)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="unit", entity_id=serial.text,
                 action="create", reason=f"unit registered for case {coi.text}",
                 changes={"kind": (None, kind), "case": (None, coi.text)})
    # The unit starts in the custody of the registering site: the first link of its chain.
    ledger.append(session=session, now=now, case=case, kind="register_unit",
                  actor_id=actor.user_id, site_id=holder,
                  body={"unit": serial.text, "kind": kind, "custodian_site": holder} | _via(actor))
    return unit


def _via(actor: Actor) -> dict[str, str]:
    """The session or token a ledger event came through, in its (hashed) body."""
    return {"via": actor.via} if actor.via else {}


def _next_number(session: Session, facility_id: str, full_year: int) -> int:
    """The next COI serial number for a facility and year. The UPDATE takes a row lock
    (PostgreSQL) or the write lock (SQLite), so concurrent enrolments get distinct numbers."""
    year = f"{full_year % 100:02d}"
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(CoiSequence).values(facility_id=facility_id, year=year, last_number=0)
                    .on_conflict_do_nothing())
    number = session.execute(
        update(CoiSequence)
        .where(col(CoiSequence.facility_id) == facility_id, col(CoiSequence.year) == year)
        .values(last_number=col(CoiSequence.last_number) + 1)
        .returning(col(CoiSequence.last_number))
    ).scalar_one()
    return int(number)


def _site(session: Session, code: str, field: str) -> Site:
    site = session.exec(select(Site).where(Site.code == code)).first()
    if site is None or not site.active:
        raise InvalidInput(f"There is no active site {code!r}.",
                           [{"field": field, "message": "Choose an active site."}])
    return site


def check_identity(identity: PatientIdentity, now: datetime) -> None:
    errors = []
    if not identity.name.strip():
        errors.append({"field": "patient.name", "message": "The patient's name is required."})
    if identity.birth_date > now.date():
        errors.append({"field": "patient.birth_date", "message": "The date of birth is in the future."})
    if identity.birth_date < date(1900, 1, 1):
        errors.append({"field": "patient.birth_date", "message": "The date of birth is before 1900."})
    if not identity.mrn.strip():
        errors.append({"field": "patient.mrn", "message": "The medical record number is required."})
    if errors:
        raise InvalidInput("The patient was not enrolled: " + errors[0]["message"], errors)
