"""Reading cases: lists filtered to what the reader may see, and the case page's contents."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from coi.core.access import Actor, allowed, allowed_at_any, sites_for
from coi.core.errors import NotFound
from coi.core.identifiers import CoiId, UnitSerial
from coi.core.phi import PatientIdentity, PhiCipher
from coi.core.route import Route
from coi.models import (
    COMPLETING_KINDS,
    AuditEntry,
    Case,
    CustodyEvent,
    Patient,
    Product,
    ProductRoute,
    Signature,
    Site,
    Unit,
    User,
    case_sites,
    coi_of,
    serial_of,
)
from coi.services import audit, masterdata
from coi.services import signatures as signature_service


@dataclass(frozen=True)
class CaseRow:
    case: Case
    coi: CoiId
    product: Product
    site: Site
    manufacturing_site: Site


@dataclass(frozen=True)
class CaseDetail:
    case: Case
    coi: CoiId
    product: Product
    route: Route
    route_row: ProductRoute
    site: Site
    manufacturing_site: Site
    units: list[tuple[Unit, UnitSerial, Site]]
    identity: PatientIdentity | None  # None unless the reader may see PHI
    may_register_units: bool
    may_correct_patient: bool
    history: list[PatientChange]  # empty unless the reader may see PHI
    signatures: list[Signature]
    timeline: list[TimelineEntry]

    @property
    def completed(self) -> set[str]:
        """The route steps this case has done, as its ledger says."""
        return {"enrol"} | {t.body["step"] for t in self.timeline
                            if t.event.kind in COMPLETING_KINDS}


@dataclass(frozen=True)
class PatientChange:
    """One audited change of the patient's record, its values decrypted for the reader."""

    entry: AuditEntry
    old: str | None
    new: str | None


@dataclass(frozen=True)
class TimelineEntry:
    """One custody event as people read it: the ledger row, who, where, and its content."""

    event: CustodyEvent
    actor: User | None
    site: Site | None
    body: dict[str, Any]
    title: str = ""  # what happened, in words: the step's title and the side of a handoff
    signatures: list[Signature] = field(default_factory=list)


def list_cases(
    *, session: Session, actor: Actor, state: str | None = None, site_id: int | None = None,
    product_id: int | None = None, limit: int = 100, offset: int = 0,
) -> list[CaseRow]:
    """Cases at the reader's sites (as treating or manufacturing site), newest first."""
    visible = sites_for(actor, "case.list")
    manufacturing = aliased(Site)
    query = (
        select(Case, Product, Site, manufacturing)
        .join(Product, col(Product.id) == Case.product_id)
        .join(Site, col(Site.id) == Case.site_id)
        .join(manufacturing, col(manufacturing.id) == Case.manufacturing_site_id)
        .where(or_(col(Case.site_id).in_(visible), col(Case.manufacturing_site_id).in_(visible)))
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
        .limit(limit).offset(offset)
    )
    if state:
        query = query.where(Case.state == state)
    if site_id:
        query = query.where(or_(col(Case.site_id) == site_id,
                                col(Case.manufacturing_site_id) == site_id))
    if product_id:
        query = query.where(Case.product_id == product_id)
    return [CaseRow(case, coi_of(case), product, site, mfg)
            for case, product, site, mfg in session.exec(query).all()]


def visible_case(*, session: Session, actor: Actor, coi_text: str, lock: bool = False) -> Case:
    """The case named by `coi_text` if the reader may see it; NotFound otherwise, so that
    outsiders cannot even learn that a case exists."""
    coi = CoiId.parse(coi_text)
    query = select(Case).where(Case.coi == coi.compact)
    if lock:
        query = query.with_for_update()
    case = session.exec(query).first()
    if case is None or not allowed_at_any(actor, "case.view", case_sites(case)):
        raise NotFound(f"No case {coi.text} that you may see.")
    return case


def case_detail(*, session: Session, actor: Actor, cipher: PhiCipher, coi_text: str) -> CaseDetail:
    case = visible_case(session=session, actor=actor, coi_text=coi_text)
    product = session.get(Product, case.product_id)
    route_row = session.get(ProductRoute, case.route_id)
    site = session.get(Site, case.site_id)
    manufacturing = session.get(Site, case.manufacturing_site_id)
    assert product and route_row and site and manufacturing
    units = [(unit, serial_of(unit), custodian) for unit, custodian in session.exec(
        select(Unit, Site).join(Site, col(Site.id) == Unit.custodian_site_id)
        .where(Unit.case_id == case.id).order_by(col(Unit.kind), col(Unit.sequence))).all()]
    identity = None
    if allowed(actor, "patient.view", case.site_id):
        patient = session.get(Patient, case.patient_id)
        assert patient is not None
        identity = cipher.decrypt(patient.phi)
    return CaseDetail(
        case=case, coi=coi_of(case), product=product, route=masterdata.route_of(route_row),
        route_row=route_row, site=site, manufacturing_site=manufacturing, units=units,
        identity=identity,
        may_register_units=allowed_at_any(actor, "unit.register", case_sites(case)),
        may_correct_patient=allowed(actor, "patient.correct", case.site_id),
        history=[PatientChange(entry, cipher.unseal(entry.old_value), cipher.unseal(entry.new_value))
                 for entry in audit.history(session=session, entity="patient", entity_id=case.patient_id)]
        if identity else [],
        signatures=signature_service.for_subject(session=session, subject_type="patient",
                                                 subject_id=case.patient_id) if identity else [],
        timeline=timeline(session=session, case=case),
    )


# How each kind of ledger event reads on the timeline ({step}: the step's title).
EVENT_TITLES = {
    "enrol": "Enrolled",
    "register_unit": "Unit registered",
    "step": "{step}",
    "handoff_give": "{step}: handed over (waiting for the receiver)",
    "handoff_receive": "{step}: received (custody passed)",
    "transform": "{step}: transformation",
    "scan_refused": "Refused scan ({step})",
}


def timeline(*, session: Session, case: Case) -> list[TimelineEntry]:
    """Every custody event of the case, needle to needle, oldest first, refused scans too,
    with the signatures each event carries."""
    rows = session.exec(
        select(CustodyEvent, User, Site)
        .join(User, col(User.id) == CustodyEvent.actor_id, isouter=True)
        .join(Site, col(Site.id) == CustodyEvent.site_id, isouter=True)
        .where(CustodyEvent.case_id == case.id).order_by(col(CustodyEvent.seq))).all()
    route_row = session.get(ProductRoute, case.route_id)
    titles = {step.name: step.title for step in masterdata.route_of(route_row).steps} \
        if route_row else {}
    bodies = [json.loads(event.body) for event, _user, _site in rows]
    ids = [s["id"] for body in bodies for s in body.get("signatures", [])]
    signed = {sig.id: sig for sig in session.exec(select(Signature).where(
        col(Signature.id).in_(ids)))} if ids else {}
    entries = []
    for (event, user, site), body in zip(rows, bodies, strict=True):
        step = titles.get(body.get("step") or "", body.get("step") or "no step")
        title = EVENT_TITLES.get(event.kind, event.kind.replace("_", " ")).format(step=step)
        entries.append(TimelineEntry(event, user, site, body, title,
                                     [signed[s["id"]] for s in body.get("signatures", [])
                                      if s["id"] in signed]))
    return entries


def unit_by_serial(*, session: Session, actor: Actor, serial_text: str) -> tuple[Unit, Case]:
    serial = UnitSerial.parse(serial_text)
    case = visible_case(session=session, actor=actor, coi_text=serial.coi.text)
    unit = session.exec(select(Unit).where(Unit.serial == serial.compact)).first()
    if unit is None:
        raise NotFound(f"No unit {serial.text}.")
    return unit, case


def counts_by_state(*, session: Session, actor: Actor) -> dict[str, int]:
    visible = sites_for(actor, "case.list")
    rows = session.exec(select(Case.state, func.count()).where(
        or_(col(Case.site_id).in_(visible), col(Case.manufacturing_site_id).in_(visible))
    ).group_by(Case.state)).all()
    return dict(rows)
