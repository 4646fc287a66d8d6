"""The scan page (handheld scanners that type and press Enter, typed entry, the camera) and
the one scan handler it shares with the device API: same input, same verdict, same JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request
from sqlmodel import Session, col, select

from coi.core.access import Actor, permission
from coi.core.display import local_text
from coi.core.errors import InvalidInput, NotFound
from coi.core.identifiers import IdentifierError, UnitSerial
from coi.core.workflow import WRISTBAND, Entry
from coi.labels import payload
from coi.labels.decoders import decode_image
from coi.labels.photo import PhotoError, open_photo
from coi.models import UNIT_KINDS, Site
from coi.schemas import CustodyScanIn, validate
from coi.services import custody
from coi.services.cases import coi_of, visible_case
from coi.services.custody import Credential, Outcome
from coi.web import actor, json_body, now, request_session

blueprint = Blueprint("scan", __name__)


@blueprint.route("/scan")
@permission("scan")
def page() -> Any:
    me = actor()
    sites = list(request_session().exec(
        select(Site).where(col(Site.id).in_({site for site, _role in me.grants}))
        .order_by(col(Site.name))))
    coi_text = (request.args.get("case") or "").strip()[:20]
    return render_template("scan/page.html", sites=sites, case=coi_text,
                           waiting=_waiting_for(coi_text, me.timezone) if coi_text else None)


@blueprint.route("/scan/judge", methods=["POST"])
@permission("scan")
def judge() -> Any:
    return jsonify(perform(json_body()))


@blueprint.route("/scan/decode", methods=["POST"])
@permission("scan")
def decode() -> Any:
    """A camera frame (or photo) in, the codes read from it out: zxing-cpp, then pyzbar and
    image preprocessing where zxing-cpp alone reads nothing. A label's signed QR code is left
    out: the Data Matrix carries the identifier the step needs."""
    upload = request.files.get("frame")
    if upload is None:
        raise InvalidInput("Send the camera frame as the form field 'frame'.")
    try:
        image = open_photo(upload.read(), max_pixels=current_app.config["LABEL_IMAGE_MAX_PIXELS"])
    except PhotoError as error:
        raise InvalidInput(error.message) from None
    symbols = decode_image(image, expect=("DataMatrix",))
    texts = [s.text for s in symbols if not payload.token_from_text(s.text)]
    return jsonify({"texts": texts, "read": len(symbols)})


def _waiting_for(coi_text: str, zone: str) -> dict[str, Any] | None:
    """What the case waits for and by when (the thaw-to-infusion clock, for one), for a case
    the reader may see; nothing otherwise."""
    db = request_session()
    try:
        case = visible_case(session=db, actor=actor(), coi_text=coi_text)
    except (NotFound, IdentifierError):
        return None
    if not case.next_step:
        return {"title": "Every step of the route is recorded", "due_at": None, "due_local": None}
    route = custody.route_of_case(db, case)
    return {"title": route.step(case.next_step).title, "since": case.last_step,
            "since_at": _local(case.last_step_at, zone),
            "due_at": case.next_due_at.isoformat() if case.next_due_at else None,
            "due_local": _local(case.next_due_at, zone)}


def upload_limit() -> None:
    """Camera frames need more than the global request limit; photos of labels do too."""
    if request.endpoint == "scan.decode":
        request.max_content_length = current_app.config["LABEL_UPLOAD_MAX_BYTES"]


def perform(raw: Any) -> dict[str, Any]:
    """Validate, judge, record, commit; the verdict as JSON (refusals are answers, not errors:
    the refused scan is recorded and its reasons returned)."""
    data = validate(CustodyScanIn, raw)
    db = request_session()
    me = actor()
    site_id = None
    if data.site:
        site = db.exec(select(Site).where(Site.code == data.site)).first()
        if site is None:
            raise InvalidInput(f"No site with code {data.site!r}.",
                               [{"field": "site", "message": "Unknown code."}])
        site_id = site.id
    entries = [Entry(s.text, s.method, s.again) for s in data.scans]
    try:
        outcome = _scan(db, me, data, entries, site_id)
    except custody.NoCaseNamed as error:
        db.rollback()
        custody.record_unplaced(session=db, now=now(), actor=me, entries=entries,
                                step_name=data.step, error=error)
        db.commit()
        raise
    answer = describe(outcome, me.timezone)
    db.commit()
    return answer


def _scan(db: Session, me: Actor, data: CustodyScanIn, entries: list[Entry],
          site_id: int | None) -> Outcome:
    return custody.scan(
        session=db, now=now(), actor=me, entries=entries,
        step_name=data.step, coi_text=data.case, site_id=site_id, own_password=data.password,
        verifiers=[Credential(v.username, v.password) for v in data.verifiers],
        device=data.device, device_at=data.device_at, idempotency_key=data.idempotency_key,
        partial=data.partial, remote_addr=request.remote_addr,
        max_failures=current_app.config["LOGIN_MAX_FAILURES"],
        lock_minutes=current_app.config["LOGIN_LOCK_MINUTES"])


def describe(outcome: Outcome, zone: str) -> dict[str, Any]:
    verdict, step, route = outcome.verdict, outcome.step, outcome.route
    coi = coi_of(outcome.case)
    case = outcome.case
    following = route.step(case.next_step) if case.next_step else None
    return {
        "accepted": verdict.accepted,
        "recorded": outcome.recorded,
        "replayed": outcome.replayed,
        "case": coi.text,
        "case_display": coi.display,
        "step": step.name if step else None,
        "step_title": step.title if step else None,
        "phase": verdict.phase,
        "completes_step": verdict.completes_step and outcome.recorded,
        # Everything is scanned and judged right: the step is recorded on request (with the
        # signatures the step asks for).
        "ready": verdict.accepted and not outcome.recorded and step is not None
        and not verdict.missing,
        "refusals": [{"code": r.code, "message": r.message} for r in verdict.refusals],
        "alarms": [{"id": a.id, "code": a.code, "severity": a.severity, "message": a.summary}
                   for a in outcome.alarms],
        "units": list(verdict.units),
        "checklist": [{"item": item, "label": _label(item), "done": item not in verdict.missing}
                      for item in verdict.expected],
        "signing": {"doer": step.sign if step else None,
                    "verifiers": step.verifiers if step else 0},
        "site": outcome.site.code if outcome.site else None,
        "event": ({"seq": outcome.event.seq, "kind": outcome.event.kind,
                   "hash": outcome.event.hash, "at": outcome.event.at.isoformat()}
                  if outcome.event else None),
        "next": ({"step": following.name, "title": following.title,
                  "due_at": case.next_due_at.isoformat() if case.next_due_at else None,
                  "due_local": _local(case.next_due_at, zone),
                  "since": case.last_step, "since_at": _local(case.last_step_at, zone)}
                 if following else None),
    }


def _label(item: str) -> str:
    """A missing item as people read it: a unit's grouped serial, else the kind's words."""
    if item == WRISTBAND or item in UNIT_KINDS:  # ("drug_product_bag" is 16 characters too)
        return item.replace("_", " ")
    return UnitSerial.from_compact(item).display


def _local(value: datetime | None, zone: str) -> str | None:
    return local_text(value, zone) if value is not None else None
