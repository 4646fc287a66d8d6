"""Label printing for a case, reprints and revocations, and the public verify pages."""

from __future__ import annotations

import io
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from coi.core.access import PUBLIC, permission
from coi.core.errors import DomainError
from coi.core.vocabulary import REVOCATION_CATEGORIES
from coi.labels.layout import SIZES
from coi.labels.photo import PhotoError
from coi.labels.printer import PrinterError, send_zpl
from coi.labels.writers import MEDIA_TYPES, WRITERS
from coi.services import keys, labels
from coi.services.cases import case_detail
from coi.web import actor, carry_out, cipher, now, request_session, signer

blueprint = Blueprint("labels", __name__)


@blueprint.route("/cases/<coi>/labels")
@permission("label.print")
def case_labels(coi: str) -> Any:
    db = request_session()
    detail = case_detail(session=db, actor=actor(), cipher=cipher(), coi_text=coi)
    return render_template("labels/case.html", detail=detail, sizes=labels.UNIT_SIZES,
                           outputs=labels.OUTPUTS, size_info=SIZES,
                           printer=current_app.config["ZPL_PRINTERS"].get(detail.site.code),
                           categories=REVOCATION_CATEGORIES,
                           issued=labels.labels_of(session=db, actor=actor(), coi_text=coi))


@blueprint.route("/cases/<coi>/labels", methods=["POST"])
@permission("label.print")
def print_labels(coi: str) -> Any:
    db, form = request_session(), request.form
    try:
        job = labels.print_set(session=db, now=now(), actor=actor(), signer=signer(),
                               coi_text=coi, output=form.get("output", ""),
                               size=form.get("size", ""),
                               include_wristband=form.get("wristband") == "1",
                               reason=form.get("reason"))
        return _deliver(job, f"labels-{coi}", send=form.get("send") == "printer", coi=coi)
    except (DomainError, PrinterError) as error:
        db.rollback()
        flash(f"Nothing was printed: {_message(error)}", "error")
        return redirect(url_for("labels.case_labels", coi=coi))


@blueprint.route("/cases/<coi>/labels/again", methods=["POST"])
@permission("label.print")
def print_again(coi: str) -> Any:
    """Labels already printed, in another output (or once more): no new record, no reprint."""
    db, form = request_session(), request.form
    try:
        label_ids = [int(value) for value in form.getlist("label") if value.isdigit()]
        job = labels.render(session=db, now=now(), actor=actor(), signer=signer(), coi_text=coi,
                            label_ids=label_ids, output=form.get("output", ""))
        return _deliver(job, f"labels-{coi}", send=form.get("send") == "printer", coi=coi)
    except (DomainError, PrinterError) as error:
        db.rollback()
        flash(f"Nothing was printed: {_message(error)}", "error")
        return redirect(url_for("labels.case_labels", coi=coi))


@blueprint.route("/labels/<bigint:label_id>/reprint", methods=["POST"])
@permission("label.print")
def reprint(label_id: int) -> Any:
    db, form = request_session(), request.form
    coi = form.get("coi", "")
    try:
        job = labels.reprint(session=db, now=now(), actor=actor(), signer=signer(),
                             label_id=label_id, output=form.get("output", ""),
                             reason=form.get("reason", ""))
        return _deliver(job, f"reprint-{label_id}", send=form.get("send") == "printer", coi=coi)
    except (DomainError, PrinterError) as error:
        db.rollback()
        flash(f"Nothing was printed: {_message(error)}", "error")
        return redirect(url_for("labels.case_labels", coi=coi) if coi else url_for("home.index"))


@blueprint.route("/labels/<bigint:label_id>/revoke", methods=["POST"])
@permission("label.revoke")
def revoke(label_id: int) -> Any:
    coi = request.form.get("coi", "")

    def revoke_it() -> None:
        labels.revoke(session=request_session(), now=now(), actor=actor(), label_id=label_id,
                      category=request.form.get("category", ""), reason=request.form.get("reason", ""))

    return carry_out(revoke_it, back=url_for("labels.case_labels", coi=coi) if coi else url_for("home.index"),
                     refused="Not revoked", done=f"Label {label_id} revoked: its QR now verifies as REVOKED.")


@blueprint.route("/cases/<coi>/labels/preview.png")
@permission("label.print")
def preview(coi: str) -> Any:
    found = labels.preview(session=request_session(), actor=actor(), coi_text=coi,
                           size=request.args.get("size", "4x2"),
                           include_wristband=request.args.get("wristband", "1") == "1")
    out = io.BytesIO()
    WRITERS["png"](found, out, 300)
    out.seek(0)
    return send_file(out, mimetype="image/png", max_age=0)


@blueprint.route("/V/<token>")
@blueprint.route("/v/<token>")
@permission(PUBLIC)
def verify(token: str) -> Any:
    result = labels.verify(session=request_session(), token=token)
    return render_template("labels/verify.html", results=[result], photo=None)


@blueprint.route("/verify", methods=["GET", "POST"])
@permission(PUBLIC)
def verify_photo() -> Any:
    if request.method == "GET":
        return render_template("labels/verify.html", results=None, photo=None)
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        return _photo_refused("Choose a photo of the label to upload.")
    try:
        report = labels.verify_photo(session=request_session(), data=upload.read(),
                                     max_pixels=current_app.config["LABEL_IMAGE_MAX_PIXELS"])
    except PhotoError as error:
        return _photo_refused(error.message)
    return render_template("labels/verify.html", results=report.verifications, photo=report)


def _photo_refused(message: str) -> Any:
    """The verify page again, saying what is wrong with the photo, ready for another."""
    return render_template("labels/verify.html", results=None, photo=None, refused=message), 422


@blueprint.route("/labels/keys.json")
@permission(PUBLIC)
def public_keys() -> Any:
    recorded = keys.public_keys(session=request_session())
    current = signer()
    return jsonify({
        "algorithm": "Ed25519",
        "current_key_id": current.key_id.hex(),
        "keys": [{"key_id": k.key_id, "public_key": k.public_key,
                  "first_used_at": k.first_used_at.isoformat()} for k in recorded],
        "format": "token = base32(header | key id (2) | label id (4) | identifier | signature "
                  "(64)); signature over b'coi-label-v1\\\\x00' + everything before it",
    })


def _deliver(job: labels.PrintJob, name: str, *, send: bool, coi: str) -> Any:
    """The labels as a download, or sent to the Zebra printer of the case's site; the print
    is recorded (committed) only once the file is made or the printer has taken the job."""
    db = request_session()
    out = io.BytesIO()
    WRITERS[job.writer](job.labels, out, job.dpi)
    if send:
        address = labels.printer_for(session=db, job=job, printers=current_app.config["ZPL_PRINTERS"])
        send_zpl(address, out.getvalue())
        db.commit()
        flash(f"{len(job.rows)} label(s) sent to the printer at {address[0]}:{address[1]}.",
              "success")
        return redirect(url_for("labels.case_labels", coi=coi))
    db.commit()
    out.seek(0)
    return send_file(out, mimetype=MEDIA_TYPES[job.writer], as_attachment=True,
                     download_name=f"{name}-{job.dpi}dpi.{job.writer}")


def _message(error: Exception) -> str:
    return error.message if isinstance(error, DomainError) else str(error)
