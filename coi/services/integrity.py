"""Everything `flask coi ledger verify` checks, in one read: the custody chains and the latest
checkpoint (coi.services.ledger), the identity chain and every row it covers
(coi.services.seals), every e-signature against the content it binds, rebuilt from the
records it was given for, and optionally an exported head kept outside the system."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from coi.core.phi import SEALED, PhiCipher, PhiKeyError
from coi.models import (
    Alarm,
    AlarmEvent,
    AuditEntry,
    Case,
    CustodyEvent,
    LabelKey,
    Signature,
    coi_of,
)
from coi.services import alarms, custody, ledger, seals
from coi.services.ledger import Chains, Problem
from coi.services.patients import correction_content
from coi.services.seals import Finding
from coi.services.signatures import content_hash


@dataclass
class Report:
    findings: list[Problem | Finding]
    events: int  # custody events
    seals: int
    rows: int  # covered rows compared with their seals
    signatures: int  # re-checked against their rebuilt content
    unchecked: dict[str, int] = field(default_factory=dict)  # why not: how many


def verify(*, session: Session, cipher: PhiCipher | None = None,
           head: dict[str, Any] | None = None, installation_key: str | None = None) -> Report:
    """Run every check. `cipher`: the PHI keys, without which a patient correction's signature
    cannot be rebuilt. `head`: an exported head (ledger.export_head) kept outside, which the
    history must still contain (raises ledger.HeadRefused for a document that is not one).
    `installation_key`: the configured signing key's public half; the latest checkpoint
    must be signed with it, not merely with a key the database lists (a planted key row
    would otherwise sign a rewritten chain)."""
    chains = ledger.read_chains(session)
    findings = ledger.verify(session=session, chains=chains)
    checked = seals.check(session=session)
    findings += checked.findings
    rechecked = _Rechecked()
    findings += list(_recheck(session, chains, cipher, rechecked))
    if installation_key is not None:
        findings += _checkpoint_key(session, installation_key)
    if head is not None:
        findings += ledger.check_head(session=session, head=head, chains=chains)
    return Report(findings, sum(len(events) for events in chains.values()), checked.seals,
                  checked.rows, rechecked.count, rechecked.unchecked)


def _checkpoint_key(session: Session, installation_key: str) -> list[Finding]:
    latest = ledger.latest_checkpoint(session)
    if latest is None:
        return []
    keys = {row.public_key for row in session.exec(select(LabelKey).where(
        LabelKey.key_id == latest.key_id))}
    if installation_key in keys:
        return []
    return [Finding(f"checkpoint {latest.id}", "signed with a key that is not this "
                    "installation's signing key: after a key rotation, sign a new checkpoint "
                    "(flask coi ledger checkpoint); otherwise a key was planted")]


@dataclass
class _Rechecked:
    count: int = 0
    unchecked: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.unchecked[why] = self.unchecked.get(why, 0) + 1


@dataclass(frozen=True)
class _Rebuilt:
    """What a signature was given for, rebuilt from its record."""

    subject: str
    content: dict[str, Any]
    signer: dict[str, object]  # the signature's own fields that its record states too


def _recheck(session: Session, chains: Chains, cipher: PhiCipher | None,
             tally: _Rechecked) -> Iterator[Finding]:
    """Each signature's content_sha256 against its content rebuilt from what it was given for
    (a scan's custody event, an alarm's resolution, a patient's correction), and who signed
    with what meaning against what that record says."""
    carried = _custody_signatures(chains)
    resolutions = {event.signature_id: event for event in session.exec(
        select(AlarmEvent).where(col(AlarmEvent.signature_id).is_not(None)))}
    cois = {case.id: coi_of(case).text for case in session.exec(select(Case))}
    for signature in session.exec(select(Signature).order_by(col(Signature.id))):
        where = f"signature {signature.id}"
        # Rebuilt; a text says why it cannot be (a finding); None: not re-checkable.
        rebuilt: _Rebuilt | str | None
        if signature.subject_type == "custody":
            rebuilt = _custody_content(carried.get(signature.id or 0), signature.id, cois)
        elif signature.subject_type == "alarm":
            rebuilt = _resolution_content(session, resolutions.get(signature.id))
        elif signature.subject_type == "patient":
            if cipher is None:
                tally.skip("patient corrections need the PHI keys")
                continue
            rebuilt = _correction_content(session, cipher, signature)
            if rebuilt is None:
                tally.skip("patient corrections under a retired PHI key")
                continue
        else:
            tally.skip(f"no record rebuilds a {signature.subject_type!r} signature's content")
            continue
        if isinstance(rebuilt, str):
            yield Finding(where, rebuilt)
            continue
        tally.count += 1
        if rebuilt.subject != signature.subject_id:
            yield Finding(where, f"bound to {signature.subject_type} {signature.subject_id}, "
                                 f"but given for {rebuilt.subject}")
        elif content_hash(rebuilt.content) != signature.content_sha256:
            yield Finding(where, "does not match what was signed: the record it binds, or "
                                 "its content hash, was changed")
        for name, stated in rebuilt.signer.items():
            if getattr(signature, name) != stated:
                yield Finding(where, f"its {name} is {getattr(signature, name)!r}, but the "
                                     f"record it was given for says {stated!r}")


def _custody_signatures(chains: Chains) -> dict[int, CustodyEvent]:
    carried: dict[int, CustodyEvent] = {}
    for events in chains.values():
        for event in events:
            if '"signatures"' in event.body:
                for entry in json.loads(event.body).get("signatures", []):
                    carried[entry["id"]] = event
    return carried


def _custody_content(event: CustodyEvent | None, signature_id: int | None,
                     cois: dict[int | None, str]) -> _Rebuilt | str:
    if event is None or event.site_id is None or event.case_id not in cois:
        return "no custody event carries it"
    body = json.loads(event.body)
    coi = cois[event.case_id]
    entry = next(entry for entry in body["signatures"] if entry["id"] == signature_id)
    return _Rebuilt(f"{coi}:{body.get('step')}:{body.get('phase')}",
                    custody.signed_content(coi, body, event.site_id, event.actor_id, event.at),
                    {"signer_name": entry["signer"], "meaning": entry["meaning"]})


def _resolution_content(session: Session, event: AlarmEvent | None) -> _Rebuilt | str:
    alarm = session.get(Alarm, event.alarm_id) if event is not None else None
    if event is None or alarm is None or event.action not in ("resolved", "decided") \
            or event.outcome is None:
        return "no alarm resolution carries it"
    deviation = alarms.deviations_of(session, [alarm.id]).get(event.id)  # type: ignore[list-item, arg-type]
    return _Rebuilt(str(alarm.id),
                    alarms.resolution_content(alarm, event.outcome, event.comment, event.at,
                                              deviation=deviation, action=event.action),
                    {"signer_id": event.actor_id, "meaning": event.action})


def _correction_content(session: Session, cipher: PhiCipher,
                        signature: Signature) -> _Rebuilt | str | None:
    """The audit entries written with the correction (same patient, same moment) keep each
    field's old and new value sealed under the PHI key, and the reason."""
    entries = list(session.exec(select(AuditEntry).where(
        AuditEntry.entity == "patient", AuditEntry.entity_id == signature.subject_id,
        AuditEntry.action == "update", AuditEntry.at == signature.signed_at)
        .order_by(col(AuditEntry.id))))
    if not entries or any(entry.field is None for entry in entries):
        return "no audit entry of a patient correction goes with it"
    try:
        changes = {entry.field: (_unseal(cipher, entry.old_value), _unseal(cipher, entry.new_value))
                   for entry in entries if entry.field is not None}
    except PhiKeyError:
        return None
    # One reason was signed, written on each field's entry: entries that disagree (one was
    # changed) rebuild a reason nobody signed, whichever entry was changed.
    reason = "\n".join(sorted({entry.reason for entry in entries}))
    return _Rebuilt(signature.subject_id,
                    correction_content(int(signature.subject_id), changes, reason),
                    {"signer_id": entries[0].actor_id, "meaning": "corrected"})


def _unseal(cipher: PhiCipher, value: str | None) -> str:
    if value is None or not value.startswith(SEALED):
        return str(value)
    return cipher.decrypt_text(value[len(SEALED):])
