"""The scan page: handheld scanners that type and press Enter, typed entry, the camera. Its
scans are judged by `coi.handlers.perform_scan`, the same judge as the device API's: same
input, same verdict, same JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request
from flask_wtf.csrf import generate_csrf

from coi import handlers
from coi.core.access import permission
from coi.core.errors import InvalidInput, NotFound
from coi.core.identifiers import CoiId, IdentifierError, UnitSerial, parse_scan
from coi.labels import payload
from coi.labels.decoders import decode_image
from coi.labels.photo import PhotoError, open_photo
from coi.services import holds, masterdata
from coi.services.cases import visible_case
from coi.web import actor, json_body, request_session

blueprint = Blueprint("scan", __name__)


@blueprint.route("/scan")
@permission("scan")
def page() -> Any:
    me = actor()
    sites = masterdata.sites_with_ids(session=request_session(), ids={site for site, _role in me.grants})
    coi_text = (request.args.get("case") or "").strip()[:20]
    return render_template("scan/page.html", sites=sites, case=coi_text,
                           waiting=_waiting_for(coi_text, me.timezone) if coi_text else None,
                           holds=_holds_for(coi_text, me.timezone) if coi_text else [])


@blueprint.route("/scan/token")
@permission("scan")
def token() -> Any:
    """A CSRF token for the scan page after its person logged in again in another tab: the
    page goes on with the scans it holds."""
    return jsonify({"csrf": generate_csrf()})


@blueprint.route("/scan/signed-in")
@permission("scan")
def signed_in() -> Any:
    """Where a login from the scan page's "log in again" link leads: back to the page."""
    return render_template("scan/signed_in.html")


@blueprint.route("/scan/judge", methods=["POST"])
@permission("scan")
def judge() -> Any:
    return jsonify(handlers.perform_scan(json_body()))


@blueprint.route("/scan/decode", methods=["POST"])
@permission("scan")
def decode() -> Any:
    """A camera frame (or photo) in, the codes read from it out, of every symbology we parse
    (Data Matrix, QR with GS1 Digital Link, Code 128 / GS1-128, and the product codes we name
    as such): zxing-cpp, then pyzbar and image preprocessing where zxing-cpp alone reads
    nothing. Identity codes first (a COI identifier or a unit serial, then anything else that
    parses), so that with several codes in view the page takes the one the step needs. A
    label's signed QR code is left out: the Data Matrix beside it carries the identifier."""
    upload = request.files.get("frame")
    if upload is None:
        raise InvalidInput("Send the camera frame as the form field 'frame'.")
    try:
        image = open_photo(upload.read(), max_pixels=current_app.config["LABEL_IMAGE_MAX_PIXELS"])
    except PhotoError as error:
        raise InvalidInput(error.message) from None
    symbols = [s for s in decode_image(image) if not payload.token_from_text(s.text)]
    symbols.sort(key=lambda symbol: _identity_rank(symbol.text))  # stable: read order otherwise
    return jsonify({"texts": [s.text for s in symbols],
                    "codes": [{"text": s.text, "symbology": s.symbology} for s in symbols],
                    "read": len(symbols)})


def _identity_rank(text: str) -> int:
    """0: one of our identifiers (a COI identifier, a unit serial); 1: another code we parse
    (GS1 data, an ISBT 128 DIN); 2: a code we cannot read as an identifier."""
    try:
        parsed = parse_scan(text)
    except IdentifierError:
        return 2
    return 0 if isinstance(parsed, (CoiId, UnitSerial)) else 1


def _holds_for(coi_text: str, zone: str) -> list[dict[str, Any]]:
    """The holds of a case the reader may see (the page opened from the case); none otherwise."""
    db = request_session()
    try:
        case = visible_case(session=db, actor=actor(), coi_text=coi_text)
    except (NotFound, IdentifierError):
        return []
    return [hold.document(zone) for hold in holds.holds_of(session=db, case=case)]


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
    return handlers.next_step_document(case, masterdata.route_of_case(session=db, case=case), zone)
