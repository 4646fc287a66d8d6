"""Shipments: open one from the case page, follow it, upload its logger files (drag and
drop, progress, a preview before committing), and see its temperature chart."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import FileStorage

from coi import handlers
from coi.core.access import permission
from coi.core.display import zone_abbreviation
from coi.core.errors import InvalidInput
from coi.core.filenames import content_disposition
from coi.models import LoggerClockCheck, Shipment
from coi.services import shipments
from coi.services.loggers import clocks, evaluation, formats, rawfiles
from coi.web import actor, carry_out, now, request_session
from coldchain import ColumnMapping, Profile, chart

blueprint = Blueprint("shipments", __name__)

CHART_BUCKETS = 400


def profiles() -> dict[str, Profile]:
    return current_app.extensions["coi.profiles"]  # type: ignore[no-any-return]


@blueprint.route("/shipments")
@permission("shipment.view")
def index() -> Any:
    shown = request.args.get("shown") or "under_way"
    if shown not in shipments.LIST_FILTERS:
        raise InvalidInput("Show shipments 'under_way', 'received' or 'all'.",
                           [{"field": "shown", "message": "under_way, received or all"}])
    return render_template("shipments/list.html", shown=shown,
                           rows=shipments.under_way(session=request_session(), actor=actor(),
                                                    shown=shown))


@blueprint.route("/cases/<coi>/shipments", methods=["POST"])
@permission("shipment.open")
def open_shipment(coi: str) -> Any:
    form = request.form

    def open_one() -> Shipment:
        return shipments.open_shipment(
            session=request_session(), now=now(), actor=actor(), profiles=profiles(), coi_text=coi,
            leg=form.get("leg", ""), loggers=_loggers(form.get("loggers", ""), form.get("zone", "")),
            shipper_id=form.get("shipper_id", "").strip() or None,
            profile_name=form.get("profile") or None, eta=_eta(form.get("eta_hours", "")))

    return carry_out(open_one, back=url_for("cases.show", coi=coi), refused="The shipment was not opened",
                     done=lambda opened: f"Shipment {opened.id} opened ({opened.leg}, {opened.profile}).",
                     then=lambda opened: url_for("shipments.show", shipment_id=opened.id))


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
    found = evaluation.evaluate(session=db, now=now(), view=view, buckets=CHART_BUCKETS)
    svg = _chart(found, me.timezone)
    return render_template("shipments/show.html", view=view, found=found, svg=svg,
                           alarms=evaluation.alarms_of(session=db, shipment_id=shipment_id),
                           clock_checks=clocks.clock_checks(session=db, shipment_id=shipment_id),
                           max_bytes=current_app.config["LOGGER_UPLOAD_MAX_BYTES"])


def _chart(found: evaluation.ShipmentEvaluation, zone_name: str) -> str:
    zone = ZoneInfo(zone_name)
    series = [(logger.serial, [point for bucket in (logger.buckets or []) for point in bucket.points()])
              for logger in found.series]
    excursions = [(x.start, x.end) for logger in found.series for x in logger.evaluation.excursions]
    gaps = [(gap.start, gap.end) for logger in found.series for gap in logger.evaluation.gaps]
    start, end = found.window
    return chart.svg(series, profile=found.profile, excursions=excursions, gaps=gaps, window=(start, end),
                     zone=zone, zone_label=f"{zone_name} ({zone_abbreviation(end, zone_name)})",
                     title=f"Shipment {found.view.shipment.id}, {found.view.coi}: temperature")


@blueprint.route("/shipments/<int:shipment_id>/chart.svg")
@permission("shipment.view")
def chart_svg(shipment_id: int) -> Any:
    db, me = request_session(), actor()
    view = shipments.visible_shipment(session=db, actor=me, shipment_id=shipment_id)
    found = evaluation.evaluate(session=db, now=now(), view=view, buckets=CHART_BUCKETS)
    return Response(_chart(found, me.timezone), mimetype="image/svg+xml")


@blueprint.route("/shipments/<int:shipment_id>/clock-checks", methods=["POST"])
@permission("logger.upload")
def check_clock(shipment_id: int) -> Any:
    """What a logger's display showed at a handoff scan: its clock offset, which corrects
    its files stored from now on."""
    me, form = actor(), request.form

    def check() -> LoggerClockCheck:
        return clocks.check_clock(session=request_session(), now=now(), actor=me, shipment_id=shipment_id,
                                  serial=form.get("serial", ""), handoff=form.get("handoff", ""),
                                  shown=form.get("shown", ""), zone=me.timezone)

    # Refusals of access (403, 404) are answered as such; what was entered is refused here.
    return carry_out(check, catch=InvalidInput,
                     back=url_for("shipments.show", shipment_id=shipment_id, _anchor="clocks"),
                     refused="The clock check was not recorded",
                     done=lambda made: f"Clock check recorded: logger {made.serial} runs {made.runs}. "
                                        "Its files stored from now on are corrected by it.")


def _upload() -> tuple[IO[bytes], str]:
    upload = request.files.get("file")
    if not isinstance(upload, FileStorage) or not upload.filename:
        raise InvalidInput("Choose a logger file to upload.", [{"field": "file", "message": "Required."}])
    return upload.stream, upload.filename


@blueprint.route("/shipments/<int:shipment_id>/logger-files/preview", methods=["POST"])
@permission("logger.upload")
def preview_file(shipment_id: int) -> Any:
    """Read the file and say what it holds; nothing is stored (a refusal is logged)."""
    stream, filename = _upload()
    return jsonify(handlers.preview_logger_file(shipment_id, stream, filename,
                                                logger_serial=request.form.get("logger") or None,
                                                zone=request.form.get("zone") or None,
                                                mapping=_mapping()))


@blueprint.route("/shipments/<int:shipment_id>/logger-files", methods=["POST"])
@permission("logger.upload")
def commit_file(shipment_id: int) -> Any:
    stream, filename = _upload()
    document, status = handlers.store_logger_file(
        shipment_id, stream, filename, via="web", logger_serial=request.form.get("logger") or None,
        expected_sha256=request.form.get("sha256") or None, zone=request.form.get("zone") or None,
        mapping=_mapping(), format_name=request.form.get("format_name") or None)
    return jsonify(document), status


def _mapping() -> ColumnMapping | None:
    """The column mapping the upload box's form gave (`map_time`, `map_value`, ...), if any."""
    return formats.mapping_given({key.removeprefix("map_"): value
                                  for key, value in request.form.items() if key.startswith("map_")})


@blueprint.route("/logger-files/<int:file_id>/raw")
@permission("shipment.view")
def raw_file(file_id: int) -> Any:
    """The file exactly as uploaded, under the name it was uploaded with (whatever its
    characters: see content_disposition)."""
    file = rawfiles.visible_file(session=request_session(), actor=actor(), file_id=file_id)
    body = rawfiles.raw_stream(engine=current_app.extensions["coi.engine"], file_id=file_id)
    disposition = content_disposition(file.filename, fallback=f"logger-file-{file.id}")
    return Response(body, mimetype="application/octet-stream",
                    headers={"Content-Disposition": disposition, "X-Content-SHA256": file.sha256})

