from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, jsonify, request, url_for

from coi import handlers
from coi.api import openapi
from coi.core.access import AUTHENTICATED, PUBLIC, permission
from coi.core.errors import InvalidInput
from coi.core.identifiers import CoiId, Gs1Data, IsbtDin, UnitSerial, parse_scan
from coi.core.phi import PatientIdentity
from coi.models import CASE_STATES, coi_of, serial_of
from coi.schemas import EnrolmentIn, ScanIn, UnitIn, validate
from coi.services import cases, enrolment, masterdata
from coi.services.loggers import formats, rawfiles
from coi.web import actor, cipher, json_body, now, request_session
from coldchain import ColumnMapping

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


@blueprint.route("/openapi.json")
@permission(PUBLIC)
def openapi_document() -> Any:
    return jsonify(openapi.document())


@blueprint.route("/cases")
@permission("case.list")
def list_cases() -> Any:
    db = request_session()
    state = request.args.get("state") or None
    if state and state not in CASE_STATES:
        raise InvalidInput(f"'{state}' is not a case state; use one of: {', '.join(CASE_STATES)}.",
                           [{"field": "state", "message": "Unknown state."}])
    site_code, product_code = request.args.get("site"), request.args.get("product")
    site = masterdata.site_by_code(session=db, code=site_code) if site_code else None
    product = masterdata.product_by_code(session=db, code=product_code) if product_code else None
    rows = cases.list_cases(session=db, actor=actor(), state=state,
                            site_id=site.id if site else None,
                            product_id=product.id if product else None,
                            limit=_bounded_int("limit", 100, 1, 500),
                            offset=_bounded_int("offset", 0, 0, 10**9))
    return jsonify({"cases": [_case_summary(row) for row in rows]})


@blueprint.route("/cases", methods=["POST"])
@permission("case.enrol")
def enrol() -> Any:
    db = request_session()
    data = validate(EnrolmentIn, json_body())
    case = enrolment.enrol(
        session=db, now=now(), actor=actor(), cipher=cipher(), site_code=data.site,
        product_code=data.product, manufacturing_site_code=data.manufacturing_site,
        identity=PatientIdentity(data.patient.name, data.patient.birth_date, data.patient.mrn))
    db.commit()
    coi = coi_of(case)
    body = _case_document(coi.text)
    return jsonify(body), 201, {"Location": url_for("api.get_case", coi=coi.text)}


@blueprint.route("/cases/<coi>")
@permission("case.view")
def get_case(coi: str) -> Any:
    return jsonify(_case_document(coi))


@blueprint.route("/cases/<coi>/units", methods=["POST"])
@permission("unit.register")
def register_unit(coi: str) -> Any:
    db = request_session()
    data = validate(UnitIn, json_body())
    unit = enrolment.register_unit(session=db, now=now(), actor=actor(), coi_text=coi,
                                   kind=data.kind)
    db.commit()
    serial = serial_of(unit)
    return jsonify(_unit(unit, serial)), 201, {"Location": url_for("api.get_unit", serial=serial.text)}


@blueprint.route("/units/<serial>")
@permission("case.view")
def get_unit(serial: str) -> Any:
    unit, case = cases.unit_by_serial(session=request_session(), actor=actor(), serial_text=serial)
    return jsonify(_unit(unit, serial_of(unit)) | {"coi": coi_of(case).text})


@blueprint.route("/scans", methods=["POST"])
@permission("scan")
def post_scan() -> Any:
    """A device's scan for one route step, judged and recorded like the scan page's. The
    verdict is the answer (200), refused or not: a refused scan is recorded too."""
    return jsonify(handlers.perform_scan(json_body()))


@blueprint.route("/shipments/<int:shipment_id>/logger-files", methods=["POST"])
@permission("logger.upload")
def post_logger_file(shipment_id: int) -> Any:
    """A logger file as the request body (any content type), stored verbatim and evaluated.
    `?filename=` names it, `?logger=` picks the logger when the shipment has several and the
    file states no serial (a serial it states must be on the shipment and agree with it),
    `?zone=` confirms or sets the logger's zone (IANA name; kept for the logger, audited).
    `?mapping=` (JSON) reads it through a column mapping, `?format_name=` saves that mapping
    for files of its layout. 201 when stored (or attached to this shipment), 200 when the same
    file was stored before for it (nothing changed)."""
    return _store_body(shipment_id, request.args.get("filename") or "upload", "api",
                       mapping=formats.mapping_given(request.args.get("mapping")),
                       format_name=request.args.get("format_name") or None)


@blueprint.route("/shipments/<int:shipment_id>/readings", methods=["POST"])
@permission("logger.upload")
def post_readings(shipment_id: int) -> Any:
    """Readings as JSON: {"logger": "SN", "readings": [{"at": "...+01:00", "celsius": 5.1}]}.
    The body is kept verbatim like a file, so the same body twice changes nothing."""
    rawfiles.check_readings_document(request.get_data(cache=True))
    return _store_body(shipment_id, "readings.json", "json")


def _store_body(shipment_id: int, filename: str, via: str, mapping: ColumnMapping | None = None,
                format_name: str | None = None) -> Any:
    document, status = handlers.store_logger_file(
        shipment_id, io.BytesIO(request.get_data(cache=False)), filename, via=via,
        logger_serial=request.args.get("logger") or None, zone=request.args.get("zone") or None,
        mapping=mapping, format_name=format_name)
    return jsonify(document), status


@blueprint.route("/identifiers/parse", methods=["POST"])
@permission(AUTHENTICATED)
def parse_identifier() -> Any:
    data = validate(ScanIn, json_body())
    return jsonify(describe(parse_scan(data.text)))


def describe(parsed: CoiId | UnitSerial | IsbtDin | Gs1Data) -> dict[str, Any]:
    if isinstance(parsed, CoiId):
        return {"type": "coi", "text": parsed.text, "display": parsed.display}
    if isinstance(parsed, UnitSerial):
        return {"type": "unit", "text": parsed.text, "display": parsed.display,
                "coi": parsed.coi.text, "kind": parsed.kind, "sequence": parsed.sequence}
    if isinstance(parsed, IsbtDin):
        return {"type": "isbt128_din", "coi": parsed.coi.text, "flags": parsed.flags,
                "check_verified": parsed.check_verified}
    return {"type": "gs1", "source": parsed.source, "symbology": parsed.symbology,
            "elements": [{"ai": ai, "value": value} for ai, value in parsed.elements]}


def _case_document(coi_text: str) -> dict[str, Any]:
    detail = cases.case_detail(session=request_session(), actor=actor(), cipher=cipher(),
                               coi_text=coi_text)
    body: dict[str, Any] = {
        "coi": detail.coi.text, "coi_display": detail.coi.display, "state": detail.case.state,
        "product": detail.product.code, "route_version": detail.route_row.version,
        "site": detail.site.code, "manufacturing_site": detail.manufacturing_site.code,
        "enrolled_at": detail.case.created_at.isoformat(),
        "units": [_unit(unit, serial) | {"custodian_site": site.code}
                  for unit, serial, site in detail.units],
    }
    if detail.identity is not None:  # only for readers at the treating site
        body["patient"] = {"name": detail.identity.name, "birth_date": detail.identity.birth_date.isoformat(),
                           "mrn": detail.identity.mrn}
    return body


def _case_summary(row: cases.CaseRow) -> dict[str, Any]:
    return {"coi": row.coi.text, "state": row.case.state, "product": row.product.code,
            "site": row.site.code, "manufacturing_site": row.manufacturing_site.code,
            "enrolled_at": row.case.created_at.isoformat()}


def _unit(unit: Any, serial: UnitSerial) -> dict[str, Any]:
    return {"serial": serial.text, "serial_display": serial.display, "kind": unit.kind,
            "sequence": unit.sequence, "state": unit.state,
            "registered_at": unit.created_at.isoformat()}


def _bounded_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidInput(f"'{name}' must be a whole number from {low} to {high}.",
                           [{"field": name, "message": f"{low} to {high}."}])
    return value
