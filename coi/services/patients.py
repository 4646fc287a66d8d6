"""Correcting a patient's identifying data: a reason, an e-signature, an audit entry per field.
Old and new values are PHI, so the audit trail keeps them encrypted."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from coi.core.access import Actor, require
from coi.core.errors import Conflict, InvalidInput
from coi.core.phi import PhiCipher
from coi.models import Patient, Signature
from coi.services import audit, signatures
from coi.services.cases import visible_case
from coi.services.enrolment import check_identity


def correct(
    *, session: Session, now: datetime, actor: Actor, cipher: PhiCipher, coi_text: str,
    name: str | None, birth_date: date | None, mrn: str | None, reason: str, password: str,
) -> Signature:
    case = visible_case(session=session, actor=actor, coi_text=coi_text, lock=True)
    require(actor, "patient.correct", case.site_id, doing="correct this patient's data")
    patient = session.get(Patient, case.patient_id)
    assert patient is not None
    old = cipher.decrypt(patient.phi)
    new = dataclasses.replace(
        old, name=name if name is not None else old.name,
        birth_date=birth_date if birth_date is not None else old.birth_date,
        mrn=mrn if mrn is not None else old.mrn)
    changed = {field: (getattr(old, field), getattr(new, field))
               for field in ("name", "birth_date", "mrn") if getattr(old, field) != getattr(new, field)}
    if not changed:
        raise InvalidInput("Nothing was changed: the values are the ones on record.")
    if not reason.strip():
        raise InvalidInput("A reason is required for a correction.",
                           [{"field": "reason", "message": "Say why the data is corrected."}])
    check_identity(new, now)
    new_index = cipher.mrn_index(new.mrn)
    if "mrn" in changed and session.exec(select(Patient).where(
            Patient.site_id == patient.site_id, Patient.mrn_index == new_index,
            Patient.id != patient.id)).first():
        raise Conflict("Another patient at this site has that medical record number.",
                       code="duplicate_mrn")
    signature = signatures.sign(
        session=session, now=now, signer=actor, password=password, meaning="corrected",
        subject_type="patient", subject_id=patient.id,
        content=correction_content(patient.id, {f: (str(o), str(n)) for f, (o, n) in changed.items()},  # type: ignore[arg-type]
                                   reason))
    audit.record(session=session, now=now, actor=actor, entity="patient", entity_id=patient.id,
                 action="update", reason=reason,
                 changes={field: (cipher.seal(o), cipher.seal(n))
                          for field, (o, n) in changed.items()})
    patient.phi = cipher.encrypt(new)
    patient.mrn_index = new_index
    session.add(patient)
    session.flush()
    return signature


def correction_content(patient_id: int, changes: dict[str, tuple[str, str]],
                       reason: str) -> dict[str, Any]:
    """What is signed for a correction: the patient, each changed field's old and new text,
    and the reason. Rebuilt from the audit entries of the correction (their values sealed
    under the PHI key) to re-check the signature (coi.services.integrity)."""
    return {"patient": patient_id, "changes": {field: [old, new] for field, (old, new) in
                                               changes.items()}, "reason": reason.strip()}
