from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from coi import kept
from coi.core.access import allowed, permission, sites_for
from coi.core.errors import DomainError, InvalidInput
from coi.core.phi import PatientIdentity
from coi.models import CASE_STATES, OUTCOMES, UNIT_KINDS, Unit, coi_of, serial_of
from coi.schemas import EnrolmentIn, PatientCorrectionIn, UnitIn, validate
from coi.services import cases, enrolment, holds, masterdata, patients, shipments
from coi.web import actor, carry_out, cipher, now, request_session, whole_number

blueprint = Blueprint("cases", __name__, url_prefix="/cases")


@blueprint.route("")
@permission("case.list")
def index() -> Any:
    db, me = request_session(), actor()
    filters = {name: request.args.get(name) or None for name in ("state", "site", "product")}
    refused = "The site and product filters take an id from the lists."
    site_id = whole_number(filters["site"], field="site", message=refused) if filters["site"] else None
    product_id = (whole_number(filters["product"], field="product", message=refused)
                  if filters["product"] else None)
    if filters["state"] and filters["state"] not in CASE_STATES:
        raise InvalidInput(f"'{filters['state']}' is not a case state.")
    visible = sites_for(me, "case.list")
    rows = cases.list_cases(session=db, actor=me, state=filters["state"], site_id=site_id,
                            product_id=product_id)
    return render_template(
        "cases/list.html", rows=rows, filters=filters, states=CASE_STATES,
        sites=[s for s in masterdata.active_sites(session=db) if s.id in visible],
        products=masterdata.active_products(session=db))


@blueprint.route("/new", methods=["GET", "POST"])
@permission("case.enrol")
def enrol() -> Any:
    db, me = request_session(), actor()
    enrol_sites = sites_for(me, "case.enrol")
    choices = {
        "sites": [s for s in masterdata.active_sites(session=db)
                  if s.id in enrol_sites and "collection" in s.kind_set],
        "manufacturing_sites": [s for s in masterdata.active_sites(session=db)
                                if "manufacturing" in s.kind_set],
        "products": masterdata.active_products(session=db),
    }
    if request.method == "GET":
        return render_template("cases/new.html", values=_kept("cases.enrol"), errors={}, **choices)
    form = request.form
    values = {name: form.get(name, "") for name in
              ("site", "product", "manufacturing_site", "name", "birth_date", "mrn")}
    try:
        data = validate(EnrolmentIn, {
            "site": values["site"], "product": values["product"],
            "manufacturing_site": values["manufacturing_site"],
            "patient": {"name": values["name"], "birth_date": values["birth_date"] or None,
                        "mrn": values["mrn"]}})
        case = enrolment.enrol(
            session=db, now=now(), actor=me, cipher=cipher(), site_code=data.site,
            product_code=data.product, manufacturing_site_code=data.manufacturing_site,
            identity=PatientIdentity(data.patient.name, data.patient.birth_date, data.patient.mrn))
    except DomainError as error:
        db.rollback()
        flash(error.message, "error")
        return render_template("cases/new.html", values=values, errors=_field_errors(error),
                               **choices), error.status
    db.commit()
    coi = coi_of(case)
    flash(f"Enrolled. COI identifier {coi.display}.", "success")
    return redirect(url_for("cases.show", coi=coi.text))


@blueprint.route("/<coi>")
@permission("case.view")
def show(coi: str) -> Any:
    db, me = request_session(), actor()
    detail = cases.case_detail(session=db, actor=me, cipher=cipher(), coi_text=coi)
    legs = shipments.legs_of(detail.case)
    # Every time in the reader's own zone, named (a coordinator in Chicago reads a Boston
    # case in Chicago time); the treating site's zone is stated beside its name.
    return render_template("cases/detail.html", detail=detail, unit_kinds=UNIT_KINDS, zone=me.timezone,
                           holds=holds.holds_of(session=db, case=detail.case, route=detail.route),
                           decisions=holds.decisions_of(session=db, case=detail.case),
                           outcomes=OUTCOMES,
                           shipment_rows=shipments.of_case(session=db, case=detail.case),
                           profiles=sorted(current_app.extensions["coi.profiles"]),
                           correction=_kept("cases.correct_patient"),
                           open_legs=[leg for leg, (origin, _to) in legs.items()
                                      if allowed(me, "shipment.open", origin)])


@blueprint.route("/<coi>/units", methods=["POST"])
@permission("unit.register")
def register_unit(coi: str) -> Any:
    def register() -> Unit:
        data = validate(UnitIn, {"kind": request.form.get("kind", "")})
        return enrolment.register_unit(session=request_session(), now=now(), actor=actor(),
                                       coi_text=coi, kind=data.kind)

    return carry_out(register, back=url_for("cases.show", coi=coi), refused="The unit was not registered",
                     done=lambda unit: f"Registered {unit.kind.replace('_', ' ')} {serial_of(unit).display}.")


@blueprint.route("/<coi>/patient", methods=["POST"])
@permission("patient.correct")
def correct_patient(coi: str) -> Any:
    form = request.form

    def correct() -> None:
        data = validate(PatientCorrectionIn, {
            "name": form.get("name") or None, "birth_date": form.get("birth_date") or None,
            "mrn": form.get("mrn") or None, "reason": form.get("reason", ""),
            "password": form.get("password", "")})
        patients.correct(session=request_session(), now=now(), actor=actor(), cipher=cipher(),
                         coi_text=coi, name=data.name, birth_date=data.birth_date, mrn=data.mrn,
                         reason=data.reason, password=data.password)

    return carry_out(correct, back=url_for("cases.show", coi=coi), refused="Not corrected",
                     done="Patient data corrected and signed.")


def _field_errors(error: DomainError) -> dict[str, str]:
    if not isinstance(error, InvalidInput):
        return {}
    return {item["field"].removeprefix("patient."): item["message"] for item in error.errors}


def _kept(form: str) -> dict[str, str]:
    """What was typed into `form` when the session ended, given back once after the login."""
    entries = kept.take(form=form, user_id=actor().user_id)
    if entries is None:
        return {}
    flash(kept.NOTE, "info")
    return entries
