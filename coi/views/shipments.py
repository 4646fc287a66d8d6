"""Shipments: open one from the case page, follow it, upload its logger files (drag and
drop, progress, a preview before committing), and see its temperature chart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import IO, Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlmodel import Session
from werkzeug.datastructures import FileStorage

from coi.core.access import permission
from coi.core.display import local_text, zone_abbreviation
from coi.core.errors import DomainError, InvalidInput, NotFound
from coi.models import LoggerFile
from coi.services import loggers, shipments
from coi.web import actor, now, request_session
from coldchain import chart
from coldchain.profiles import Profile

blueprint = Blueprint("shipments", __name__)

CHART_BUCKETS = 400
UPLOAD_ENDPOINTS = {"shipments.preview_file", "shipments.commit_file", "api.post_logger_file",
                    "api.post_readings"}


def profiles() -> dict[str, Profile]:
    return current_app.extensions["coi.profiles"]  # type: ignore[no-any-return]


def upload_limit() -> None:
    """Logger files are larger than the global request limit (1 MiB): a hook registered
    before CSRF protection, which reads the form (and so the limit) first."""
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = current_app.config["LOGGER_UPLOAD_MAX_BYTES"]


@blueprint.route("/shipments")
@permission("shipment.view")
def index() -> Any:
    return render_template("shipments/list.html",
                           rows=shipments.under_way(session=request_session(), actor=actor()))


@blueprint.route("/cases/<coi>/shipments", methods=["POST"])
@permission("shipment.open")
def open_shipment(coi: str) -> Any:
    db, form = request_session(), request.form
    try:
        eta = _eta(form.get("eta_hours", ""))
        shipment = shipments.open_shipment(
            session=db, now=now(), actor=actor(), profiles=profiles(), coi_text=coi,
            leg=form.get("leg", ""), loggers=_loggers(form.get("loggers", ""), form.get("zone", "")),
            shipper_id=form.get("shipper_id", "").strip() or None,
            profile_name=form.get("profile") or None, eta=eta)
    except DomainError as error:
        db.rollback()
        flash(f"The shipment was not opened: {error.message}", "error")
        return redirect(url_for("cases.show", coi=coi))
    db.commit()
    flash(f"Shipment {shipment.id} opened ({shipment.leg}, {shipment.profile}).", "success")
    return redirect(url_for("shipments.show", shipment_id=shipment.id))


def _eta(text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        hours = float(text)
    except ValueError:
        raise InvalidInput("The expected transit time is a number of hours.",
                           [{"field": "eta", "message": "A number of hours."}]) from None
    if not 0 < hours <= 24 * 14:
        raise InvalidInput("The expected transit time is between 0 and 336 hours.",
                           [{"field": "eta", "message": "Between 0 and 336 hours."}])
    return now() + timedelta(hours=hours)


def _loggers(text: str, zone: str) -> list[shipments.LoggerSpec]:
    serials = [s.strip() for s in text.replace(";", ",").split(",") if s.strip()]
    return [shipments.LoggerSpec(serial, zone.strip() or None) for serial in serials]


@blueprint.route("/shipments/<int:shipment_id>")
@permission("shipment.view")
def show(shipment_id: int) -> Any:
    db, me = request_session(), actor()
    view = shipments.visible_shipment(session=db, actor=me, shipment_id=shipment_id)
    found = loggers.evaluate(session=db, now=now(), view=view, buckets=CHART_BUCKETS)
    svg = _chart(found, me.timezone)
    return render_template("shipments/show.html", v=view, e=found, svg=svg,
                           alarms=loggers.alarms_of(session=db, shipment_id=shipment_id),
                           clock_checks=loggers.clock_checks(session=db, shipment_id=shipment_id),
                           max_bytes=current_app.config["LOGGER_UPLOAD_MAX_BYTES"])


def _chart(found: loggers.ShipmentEvaluation, zone_name: str) -> str:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    series = [(s.serial, [p for bucket in (s.buckets or []) for p in bucket.points()])
              for s in found.series]
    excursions = [(x.start, x.end) for s in found.series for x in s.evaluation.excursions]
    gaps = [(g.start, g.end) for s in found.series for g in s.evaluation.gaps]
    start, end = found.window
    return chart.svg(series, profile=found.profile, excursions=excursions, gaps=gaps, window=(start, end),
                     zone=zone, zone_label=f"{zone_name} ({zone_abbreviation(end, zone_name)})",
                     title=f"Shipment {found.view.shipment.id}, {found.view.coi}: temperature")


@blueprint.route("/shipments/<int:shipment_id>/chart.svg")
@permission("shipment.view")
def chart_svg(shipment_id: int) -> Any:
    db, me = request_session(), actor()
    view = shipments.visible_shipment(session=db, actor=me, shipment_id=shipment_id)
    found = loggers.evaluate(session=db, now=now(), view=view, buckets=CHART_BUCKETS)
    return Response(_chart(found, me.timezone), mimetype="image/svg+xml")


@blueprint.route("/shipments/<int:shipment_id>/clock-checks", methods=["POST"])
@permission("logger.upload")
def check_clock(shipment_id: int) -> Any:
    """What a logger's display showed at a handoff scan: its clock offset, which corrects
    its files stored from now on."""
    db, me, form = request_session(), actor(), request.form
    try:
        check = loggers.check_clock(session=db, now=now(), actor=me, shipment_id=shipment_id,
                                    serial=form.get("serial", ""), handoff=form.get("handoff", ""),
                                    shown=form.get("shown", ""), zone=me.timezone)
    except InvalidInput as error:  # refusals of access (403, 404) are answered as such
        db.rollback()
        flash(f"The clock check was not recorded: {error.message}", "error")
        return redirect(url_for("shipments.show", shipment_id=shipment_id, _anchor="clocks"))
    db.commit()
    flash(f"Clock check recorded: logger {check.serial} runs {check.runs}. Its files stored from now on "
          "are corrected by it.", "success")
    return redirect(url_for("shipments.show", shipment_id=shipment_id, _anchor="clocks"))


def _upload() -> tuple[IO[bytes], str]:
    upload = request.files.get("file")
    if not isinstance(upload, FileStorage) or not upload.filename:
        raise InvalidInput("Choose a logger file to upload.", [{"field": "file", "message": "Required."}])
    return upload.stream, upload.filename


@blueprint.route("/shipments/<int:shipment_id>/logger-files/preview", methods=["POST"])
@permission("logger.upload")
def preview_file(shipment_id: int) -> Any:
    """Read the file and say what it holds; nothing is stored (a refusal is logged)."""
    db, me = request_session(), actor()
    stream, filename = _upload()
    try:
        shown = loggers.preview(session=db, now=now(), actor=me, shipment_id=shipment_id,
                                stream=stream, filename=filename,
                                logger_serial=request.form.get("logger") or None,
                                max_bytes=current_app.config["LOGGER_UPLOAD_MAX_BYTES"])
    except loggers.LoggerFileRefused as error:
        log_refusal(shipment_id, stream, filename, error)
        raise
    return jsonify(preview_document(shown, me.timezone))


@blueprint.route("/shipments/<int:shipment_id>/logger-files", methods=["POST"])
@permission("logger.upload")
def commit_file(shipment_id: int) -> Any:
    db, me = request_session(), actor()
    stream, filename = _upload()
    try:
        stored = loggers.store(session=db, now=now(), actor=me, shipment_id=shipment_id,
                               stream=stream, filename=filename, via="web",
                               logger_serial=request.form.get("logger") or None,
                               expected_sha256=request.form.get("sha256") or None,
                               max_bytes=current_app.config["LOGGER_UPLOAD_MAX_BYTES"])
    except loggers.LoggerFileRefused as error:
        log_refusal(shipment_id, stream, filename, error)
        raise
    db.commit()
    return jsonify(stored_document(stored, shipment_id)), 201 if stored.created else 200


def log_refusal(shipment_id: int, stream: IO[bytes], filename: str, error: DomainError) -> None:
    """Roll the upload back, then keep the refused attempt in the audit trail."""
    db = request_session()
    db.rollback()
    loggers.record_refusal(session=db, now=now(), actor=actor(), shipment_id=shipment_id,
                           filename=filename, stream=stream, reason=error.message)
    db.commit()


def preview_document(shown: loggers.Preview, zone: str) -> dict[str, Any]:
    span = shown.span

    def reading(pair: tuple[datetime, float] | None) -> dict[str, Any] | None:
        return None if pair is None else {"at": pair[0].isoformat(), "local": local_text(pair[0], zone),
                                          "celsius": pair[1]}

    return {
        "filename": shown.filename, "size": shown.size, "sha256": shown.sha256,
        "format": shown.format, "logger": shown.logger, "zone": shown.zone,
        "interval_s": shown.interval.total_seconds() if shown.interval else None,
        "clock_offset_s": shown.clock_offset.total_seconds() if shown.clock_offset else None,
        "count": span.count, "first": reading(span.first_reading), "last": reading(span.last_reading),
        "min_celsius": span.low, "max_celsius": span.high,
        "outside_window": span.outside_window, "before_window": span.before_window,
        "after_window": span.after_window, "duplicates": shown.duplicates,
        "window": {"start": local_text(shown.window[0], zone), "end": local_text(shown.window[1], zone)},
        "skipped_count": shown.skipped_count,
        "skipped": [{"line": p.line, "column": p.column, "why": p.why} for p in shown.skipped[:20]],
        "meta": shown.meta,
        "already": _already(shown.already, zone),
    }


def _already(file: LoggerFile | None, zone: str) -> dict[str, Any] | None:
    if file is None:
        return None
    return {"file": file.id, "shipment": file.shipment_id,
            "uploaded_at": local_text(file.uploaded_at, zone)}


def stored_document(stored: loggers.Stored, shipment_id: int) -> dict[str, Any]:
    file, result = stored.file, stored.result
    return {
        "created": stored.created,
        "message": (f"Stored {result.reading_count if result else 0:,} readings from {file.filename}."
                    if stored.created else
                    f"This file was stored before (file {file.id}, shipment {file.shipment_id}): "
                    "nothing changed."),
        "file": {"id": file.id, "sha256": file.sha256, "filename": file.filename,
                 "size": file.size, "format": file.format, "logger": file.logger_serial,
                 "shipment": file.shipment_id,
                 "readings": result.reading_count if result else None},
        "alarms": [{"id": a.id, "code": a.code, "severity": a.severity, "summary": a.summary}
                   for a in stored.alarms],
        "shipment_url": url_for("shipments.show", shipment_id=shipment_id),
    }


@blueprint.route("/logger-files/<int:file_id>/raw")
@permission("shipment.view")
def raw_file(file_id: int) -> Any:
    """The file exactly as uploaded."""
    db = request_session()
    file = db.get(LoggerFile, file_id)
    if file is None:
        raise NotFound(f"No logger file {file_id}.")
    shipments.visible_shipment(session=db, actor=actor(), shipment_id=file.shipment_id)
    engine = current_app.extensions["coi.engine"]

    def body() -> Iterator[bytes]:
        # The request's session is closed when the view returns, before the body is sent:
        # the chunks are read in a session of their own, closed when the last is sent.
        with Session(engine) as own:
            yield from loggers.raw_bytes(session=own, file_id=file_id)

    name = file.filename.replace('"', "")
    return Response(body(), mimetype="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Content-SHA256": file.sha256})

