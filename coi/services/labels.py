"""Labels as records: printing a case's label set, reprints, revocations, and verification of
a label's signed QR code by anyone (public, no patient data)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from coi.core.access import Actor, allowed_at_any, require
from coi.core.errors import Conflict, InvalidInput, NotFound
from coi.core.identifiers import CoiId, UnitSerial
from coi.core.vocabulary import REVOCATION_CATEGORIES
from coi.labels import layout, payload
from coi.labels.decoders import decode_image
from coi.labels.photo import open_photo
from coi.models import (
    Case,
    Label,
    LabelKey,
    LabelRevocation,
    Product,
    Site,
    Unit,
    User,
    case_sites,
    coi_of,
    serial_of,
)
from coi.services import audit
from coi.services.cases import visible_case
from coi.services.keys import Signer, register_key

# output choice -> (writer kind, printer resolution)
OUTPUTS = {"zpl203": ("zpl", 203), "zpl300": ("zpl", 300), "pdf": ("pdf", 300), "png": ("png", 300)}
UNIT_SIZES = ("2x1", "4x2")
PREVIEW_QR = "PREVIEW - NOT A LABEL - NOT FOR USE"
# A printed preview must not pass a handheld scan at the bedside: its Data Matrix names no unit.
PREVIEW_DATAMATRIX = "PREVIEW-NOT-FOR-USE"
# The words of the database's refusal of a second valid label (migration 0010's triggers).
ONE_VALID_LABEL = "one valid label per unit"


@dataclass(frozen=True)
class PrintJob:
    rows: list[Label]
    labels: list[layout.Label]
    writer: str
    dpi: int


@dataclass(frozen=True)
class Verification:
    status: str  # genuine, revoked, forged, unknown_key, unknown_label, malformed
    message: str
    label: Label | None = None
    identifier_display: str | None = None
    coi_display: str | None = None
    product: str | None = None
    site: Site | None = None
    revocation: LabelRevocation | None = None

    @property
    def genuine(self) -> bool:
        return self.status == "genuine"

    @property
    def revoked_as(self) -> str | None:
        """What the public page says of the revocation: its category in words, never its
        free-text reason; None when it has no category (revoked before categories were)."""
        category = self.revocation.category if self.revocation else None
        return REVOCATION_CATEGORIES.get(category) if category else None


# ---------------------------------------------------------------- printing
#
# A unit (and a case's wristband) has at most one valid label: one not revoked. The database
# refuses a second (a trigger of migration 0010, see there why not a unique index); the
# services below never try: a print issues labels only where none is valid, a reprint revokes
# the label it replaces first, and every writer of a case's labels holds the case's row lock
# so that they take turns and the refusal is a message, not a crash.

def print_set(
    *, session: Session, now: datetime, actor: Actor, signer: Signer, coi_text: str,
    output: str, size: str, include_wristband: bool, reason: str | None,
) -> PrintJob:
    """The labels the case lacks: one for every unit (and the patient's wristband, if asked)
    that has no valid label, so a unit registered after the set was printed gets its label
    alone. When none lacks one, the case's valid labels again, in this output and in the
    template each was printed with: another output of the same print, no new record. A
    label for a unit whose label was revoked replaces it (REPRINT) and needs a reason."""
    writer, dpi = _output(output)
    if size not in UNIT_SIZES:
        raise InvalidInput(f"Unit labels come in {' or '.join(UNIT_SIZES)} inches.",
                           [{"field": "size", "message": "Choose a label size."}])
    case = visible_case(session=session, actor=actor, coi_text=coi_text, lock=True)
    _require_print(actor, case)
    units = list(session.exec(select(Unit).where(Unit.case_id == case.id)
                              .order_by(col(Unit.kind), col(Unit.sequence))))
    targets: list[tuple[Unit | None, str]] = [(unit, f"unit-{size}") for unit in units]
    if include_wristband:
        targets.append((None, "wristband"))
    if not targets:
        raise InvalidInput("This case has no units yet: register them first.")
    valid = _valid_labels(session, case)
    lacking = [(unit, template) for unit, template in targets
               if _holder(unit) not in valid]
    if not lacking:
        rows = [valid[_holder(unit)] for unit, _template in targets]
        _printed_again(session, now, actor, rows, output)
        return PrintJob(rows, [_content(session, row, signer) for row in rows], writer, dpi)
    previous = [_last(session, case, unit) for unit, _template in lacking]
    if any(previous) and not (reason or "").strip():
        raise InvalidInput("Some of these labels were revoked: give a reason for their "
                           "reprint.", [{"field": "reason", "message": "Why is it reprinted?"}])
    rows = [_issue(session, now, actor, signer, case, unit, template, writer, dpi,
                   reprint_of=before, reason=reason if before else None)
            for (unit, template), before in zip(lacking, previous, strict=True)]
    return PrintJob(rows, [_content(session, row, signer) for row in rows], writer, dpi)


def render(*, session: Session, now: datetime, actor: Actor, signer: Signer, coi_text: str,
           label_ids: list[int], output: str) -> PrintJob:
    """Labels already printed, again, in any output: the same labels (no new label, no
    reprint), each output on the audit trail. Only valid labels: a revoked one must not be
    stuck on anything."""
    writer, dpi = _output(output)
    case = visible_case(session=session, actor=actor, coi_text=coi_text)
    _require_print(actor, case)
    if not label_ids:
        raise InvalidInput("Choose the labels to print.",
                           [{"field": "label", "message": "Choose at least one label."}])
    valid = {row.id: row for row in _valid_labels(session, case).values()}
    rows = []
    for label_id in dict.fromkeys(label_ids):
        if label_id not in valid:
            known = session.get(Label, label_id)
            if known is None or known.case_id != case.id:
                raise NotFound(f"No label {label_id} of this case.")
            raise Conflict(f"Label {label_id} was revoked: it must not be printed again.")
        rows.append(valid[label_id])
    _printed_again(session, now, actor, rows, output)
    return PrintJob(rows, [_content(session, row, signer) for row in rows], writer, dpi)


def _printed_again(session: Session, now: datetime, actor: Actor, rows: list[Label],
                   output: str) -> None:
    """Each output of a label already printed, on the audit trail (label reconciliation
    counts every copy that could end up on a bag): who, when, in which output."""
    for row in rows:
        audit.record(session=session, now=now, actor=actor, entity="label", entity_id=row.id,
                     action="print", changes={"output": (None, output)},
                     reason="Printed again: the same label in another output, not a reprint")


def reprint(
    *, session: Session, now: datetime, actor: Actor, signer: Signer, label_id: int,
    output: str, reason: str,
) -> PrintJob:
    """A replacement for one label: marked REPRINT, recorded with who, when and why. The label
    it replaces is revoked ("replaced") in the same transaction, before the new one exists.
    Refused when the unit has another valid label (reprint that one)."""
    writer, dpi = _output(output)
    original = _label(session, actor, label_id, lock=True)
    if not reason.strip():
        raise InvalidInput("A reprint needs a reason.",
                           [{"field": "reason", "message": "Why is it reprinted?"}])
    case = session.get(Case, original.case_id)
    unit = session.get(Unit, original.unit_id) if original.unit_id else None
    assert case is not None
    _require_print(actor, case)
    current = _valid_labels(session, case).get(_holder(unit))
    if current is not None and current.id != original.id:
        raise Conflict(f"Label {original.id} was replaced by label {current.id}, which is "
                       "valid: reprint that one.")
    if current is not None:
        _add_revocation(session, now, actor, original, "replaced",
                        f"replaced by a reprint: {reason.strip()}")
    row = _issue(session, now, actor, signer, case, unit, original.template, writer, dpi,
                 reprint_of=original, reason=reason)
    return PrintJob([row], [_content(session, row, signer)], writer, dpi)


def revoke(*, session: Session, now: datetime, actor: Actor, label_id: int, category: str,
           reason: str) -> None:
    """Withdraw a label: its QR verifies as REVOKED from now on. `category` (one of
    REVOCATION_CATEGORIES) is what the public verify page says; `reason`, free text, is shown
    to signed-in users only."""
    label = _label(session, actor, label_id, lock=True)
    case = session.get(Case, label.case_id)
    assert case is not None
    if not allowed_at_any(actor, "label.revoke", case_sites(case)):
        require(actor, "label.revoke", case.site_id, doing="revoke labels of this case")
    if category not in REVOCATION_CATEGORIES:
        raise InvalidInput("Say why the label is revoked: choose one of "
                           f"{', '.join(REVOCATION_CATEGORIES)}.",
                           [{"field": "category", "message": "Choose one from the list."}])
    if not reason.strip():
        raise InvalidInput("A revocation needs a reason.",
                           [{"field": "reason", "message": "Why is it withdrawn?"}])
    if session.exec(select(LabelRevocation).where(LabelRevocation.label_id == label.id)).first():
        raise Conflict("This label is already revoked.")
    _add_revocation(session, now, actor, label, category, reason.strip())


def _add_revocation(session: Session, now: datetime, actor: Actor, label: Label, category: str,
                    reason: str) -> None:
    session.add(LabelRevocation(label_id=label.id, revoked_at=now,  # type: ignore[arg-type]
                                revoked_by_id=actor.user_id, reason=reason, category=category))
    # Now, not with the replacement's row: the flush would write the label first (the
    # revocation points at a label) and the database would refuse a second valid label.
    session.flush()


def revoke_destroyed(*, session: Session, now: datetime, actor: Actor, unit: Unit,
                     reason: str) -> int:
    """Revoke every label of a unit QA decided is destroyed (category "destroyed"), as part
    of that signed decision: no label of it may verify as genuine again. Returns how many."""
    revoked = select(LabelRevocation.label_id)
    labels = session.exec(select(Label).where(Label.unit_id == unit.id,
                                              col(Label.id).not_in(revoked))).all()
    for label in labels:
        session.add(LabelRevocation(label_id=label.id, revoked_at=now,  # type: ignore[arg-type]
                                    revoked_by_id=actor.user_id, reason=reason,
                                    category="destroyed"))
    session.flush()
    return len(labels)


def preview(*, session: Session, actor: Actor, coi_text: str, size: str,
            include_wristband: bool) -> list[layout.Label]:
    """The case's label set as it would print, marked PREVIEW, with no signed code and no
    record: nothing that could be stuck on a bag."""
    if size not in UNIT_SIZES:
        raise InvalidInput(f"Unit labels come in {' or '.join(UNIT_SIZES)} inches.")
    case = visible_case(session=session, actor=actor, coi_text=coi_text)
    _require_print(actor, case)
    product = session.get(Product, case.product_id)
    assert product is not None
    units = session.exec(select(Unit).where(Unit.case_id == case.id)
                         .order_by(col(Unit.kind), col(Unit.sequence))).all()
    targets: list[tuple[str, str, Unit | None]] = [
        (f"unit-{size}", serial_of(u).display, u) for u in units]
    if include_wristband:
        targets.append(("wristband", coi_of(case).display, None))
    return [layout.Label(template=template, datamatrix=PREVIEW_DATAMATRIX,
                         identifier_display=display, qr=PREVIEW_QR, lines=_lines(product, unit),
                         preview=True, footer="PREVIEW - NOT FOR USE")
            for template, display, unit in targets]


def labels_of(*, session: Session, actor: Actor,
              coi_text: str) -> list[tuple[Label, LabelRevocation | None, User]]:
    """The case's labels, oldest first, with their revocation (if any) and who printed them."""
    case = visible_case(session=session, actor=actor, coi_text=coi_text)
    rows = session.exec(
        select(Label, LabelRevocation, User)
        .join(LabelRevocation, col(LabelRevocation.label_id) == Label.id, isouter=True)
        .join(User, col(User.id) == Label.printed_by_id)
        .where(Label.case_id == case.id).order_by(col(Label.printed_at), col(Label.id))).all()
    return [(label, revocation, user) for label, revocation, user in rows]


def _output(output: str) -> tuple[str, int]:
    if output not in OUTPUTS:
        raise InvalidInput(f"'{output}' is not an output; choose one of: {', '.join(OUTPUTS)}.",
                           [{"field": "output", "message": "Choose an output."}])
    return OUTPUTS[output]


def _require_print(actor: Actor, case: Case) -> None:
    if not allowed_at_any(actor, "label.print", case_sites(case)):
        require(actor, "label.print", case.site_id, doing="print labels for this case")


def _holder(unit: Unit | None) -> int | None:
    """What a label is for, within its case: the unit's id, None for the wristband."""
    return unit.id if unit else None


def _valid_labels(session: Session, case: Case) -> dict[int | None, Label]:
    """The case's valid (unrevoked) labels by what they are for (_holder)."""
    rows = session.exec(
        select(Label).join(LabelRevocation, col(LabelRevocation.label_id) == Label.id,
                           isouter=True)
        .where(Label.case_id == case.id, col(LabelRevocation.id).is_(None))).all()
    return {row.unit_id: row for row in rows}


def _last(session: Session, case: Case, unit: Unit | None) -> Label | None:
    """The label a new one for `unit` replaces: the one no other label replaced (the newest,
    should older records hold more than one)."""
    replaced = select(Label.reprint_of_id).where(col(Label.reprint_of_id).is_not(None))
    query = select(Label).where(Label.case_id == case.id, col(Label.id).not_in(replaced))
    query = query.where(Label.unit_id == unit.id) if unit else query.where(
        col(Label.unit_id).is_(None))
    return session.exec(query.order_by(col(Label.printed_at).desc(), col(Label.id).desc())).first()


def _label(session: Session, actor: Actor, label_id: int, *, lock: bool = False) -> Label:
    """The label if the actor may see its case; with `lock`, the case's row is locked for the
    rest of the transaction (writers of a case's labels take turns)."""
    label = session.get(Label, label_id)
    if label is None:
        raise NotFound("No such label.")
    case = session.get(Case, label.case_id)
    assert case is not None
    visible_case(session=session, actor=actor, coi_text=coi_of(case).text, lock=lock)
    return label


def _issue(session: Session, now: datetime, actor: Actor, signer: Signer, case: Case,
           unit: Unit | None, template_name: str, writer: str, dpi: int, *,
           reprint_of: Label | None, reason: str | None) -> Label:
    register_key(session=session, now=now, signer=signer)
    template = layout.TEMPLATES[template_name]
    kind = "unit" if unit else "wristband"
    identifier = serial_of(unit).compact if unit else case.coi
    for _attempt in range(5):
        # The id is drawn, not counted: it is signed before the row is written (rows are
        # never updated), and it tells nobody how many labels a site prints.
        label_id = secrets.randbelow(2**32 - 1) + 1
        signed = payload.sign(payload.Claim(kind, identifier, label_id, signer.key_id),
                              signer.private_key)
        row = Label(id=label_id, case_id=case.id, unit_id=unit.id if unit else None,  # type: ignore[arg-type]
                    kind=kind, identifier=identifier, template=template.name,
                    template_version=template.version, key_id=signer.key_id.hex(),
                    signature=signed[-payload.SIGNATURE_BYTES:].hex(), output=writer, dpi=dpi,
                    printed_at=now, printed_by_id=actor.user_id,
                    reprint_of_id=reprint_of.id if reprint_of else None,
                    reason=(reason or "").strip() or None)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError as error:
            if ONE_VALID_LABEL in str(error.orig):
                raise Conflict(f"{identifier} has a valid label already: reprint that one, "
                               "or revoke it first.") from error
            continue
    raise Conflict("Could not allocate a label id; try again.")


def _content(session: Session, row: Label, signer: Signer) -> layout.Label:
    case = session.get(Case, row.case_id)
    product = session.get(Product, case.product_id) if case else None
    unit = session.get(Unit, row.unit_id) if row.unit_id else None
    assert case is not None and product is not None and row.id is not None
    signed = payload.assemble(
        payload.Claim(row.kind, row.identifier, row.id, bytes.fromhex(row.key_id)),
        bytes.fromhex(row.signature))
    text, display = ((serial_of(unit).text, serial_of(unit).display) if unit
                     else (coi_of(case).text, coi_of(case).display))
    return _layout(row.template, text, display, _lines(product, unit),
                   payload.verification_url(signer.base_url, signed), row.reprint_of_id is not None,
                   f"{row.template} v{row.template_version} · label {row.id}")


def _layout(template: str, text: str, display: str, lines: tuple[str, ...], qr: str,
            reprint: bool, footer: str) -> layout.Label:
    return layout.Label(template=template, datamatrix=text, identifier_display=display, qr=qr,
                        lines=lines, reprint=reprint, footer=footer)


def _lines(product: Product, unit: Unit | None) -> tuple[str, ...]:
    what = (f"{unit.kind.replace('_', ' ').capitalize()} {unit.sequence:02d}" if unit
            else "Patient wristband")
    return (f"{product.code} {product.name}"[:40], what)


def printer_for(*, session: Session, job: PrintJob,
                printers: Mapping[str, tuple[str, int]]) -> tuple[str, int]:
    """The Zebra printer (host, port) of the site that treats the job's case (a job is made
    only for someone allowed to print it, and all its labels are of one case)."""
    if job.writer != "zpl":
        raise InvalidInput("Only ZPL output can be sent to a Zebra printer.")
    case = session.get(Case, job.rows[0].case_id)
    site = session.get(Site, case.site_id) if case else None
    address = printers.get(site.code if site else "")
    if address is None:
        raise InvalidInput("No Zebra printer is configured for this site (COI_ZPL_PRINTERS).")
    return address


# ---------------------------------------------------------------- verification

def verify(*, session: Session, token: str) -> Verification:
    """What a label's token proves, in words for whoever scanned it. Never patient data."""
    try:
        claim = payload.verify(payload.decode_token(token), lambda key_id: _keys(session, key_id))
    except payload.PayloadError as error:
        status = {"bad_signature": "forged"}.get(error.code, error.code)
        return Verification(status, error.message)
    label = session.get(Label, claim.label_id)
    if label is None or label.identifier != claim.identifier or label.key_id != claim.key_id.hex():
        return Verification("unknown_label", "The signature is ours but no such label was ever "
                                             "recorded. Do not use it; report it to QA.")
    case = session.get(Case, label.case_id)
    assert case is not None
    product, site = session.get(Product, case.product_id), session.get(Site, case.site_id)
    coi = coi_of(case)
    display = (UnitSerial(coi, label.identifier[13], int(label.identifier[14:])).display
               if label.kind == "unit" else coi.display)
    revocation = session.exec(select(LabelRevocation)
                              .where(LabelRevocation.label_id == label.id)).first()
    common = {"label": label, "identifier_display": display, "coi_display": coi.display,
              "product": product.code if product else None, "site": site}
    if revocation:
        return Verification("revoked", "This label was REVOKED and must not be used.",
                            revocation=revocation, **common)  # type: ignore[arg-type]
    return Verification("genuine", "Genuine label, issued by this installation for this unit.",
                        **common)  # type: ignore[arg-type]


def _keys(session: Session, key_id: bytes) -> list[Ed25519PublicKey]:
    rows = session.exec(select(LabelKey).where(LabelKey.key_id == key_id.hex())).all()
    return [Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(row.public_key))
            for row in rows]


@dataclass(frozen=True)
class PhotoReport:
    verifications: list[Verification]
    datamatrix_texts: list[str]
    agrees: bool | None  # does the Data Matrix name what the QR's signature vouches for?


def verify_photo(*, session: Session, data: bytes, max_pixels: int) -> PhotoReport:
    """Read every code in a photo of a label and verify its QR. PhotoError for bad images."""
    # A label carries both codes: keep trying until both are read (or every variant failed).
    symbols = decode_image(open_photo(data, max_pixels=max_pixels),
                           expect=("QRCode", "DataMatrix"))
    tokens = [t for t in (payload.token_from_text(s.text) for s in symbols) if t]
    others = [s.text for s in symbols if not payload.token_from_text(s.text)]
    verifications = [verify(session=session, token=token) for token in dict.fromkeys(tokens)]
    identifiers = {v.label.identifier for v in verifications if v.label}
    scanned = {_data_characters(text) for text in others} - {None}
    agrees = bool(identifiers & scanned) if identifiers and scanned else None
    return PhotoReport(verifications, others, agrees)


def _data_characters(text: str) -> str | None:
    for parse in (UnitSerial.parse, CoiId.parse):
        try:
            return parse(text).compact
        except ValueError:
            continue
    return None

