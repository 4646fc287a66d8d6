"""Request handling that the web pages and the JSON API share: a scan judged and recorded, a
logger file previewed or stored (a refused one kept in the audit trail), and the JSON
documents both answer with. `coi.views` and `coi.api` import this module; neither imports
the other, so the machine API never leans on an HTML page's code."""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO, Any

from flask import current_app, request, url_for

from coi import logs
from coi.auth import is_api_request
from coi.core.display import local_text, localise_text
from coi.core.errors import DomainError, InvalidInput
from coi.core.identifiers import UnitSerial
from coi.core.route import Route
from coi.core.vocabulary import UNIT_KINDS
from coi.core.words import words
from coi.core.workflow import WRISTBAND, Entry
from coi.models import Case, LoggerFile, coi_of
from coi.schemas import NUL_MESSAGE, CustodyScanIn, validate
from coi.services import custody, masterdata
from coi.services.custody import Credential, Outcome
from coi.services.loggers import intake, rawfiles
from coi.web import actor, now, request_session
from coldchain import ColumnMapping, Problem, mapping_document

SHOWN_ROWS = 20  # rows skipped (and notes) an answer lists; the count says how many in all

# Endpoints whose bodies may exceed the global request limit (1 MiB), and the setting that
# limits each instead: camera frames and photos of labels, logger files.
UPLOAD_LIMITS = {
    "labels.verify_photo": "LABEL_UPLOAD_MAX_BYTES",
    "scan.decode": "LABEL_UPLOAD_MAX_BYTES",
    "shipments.preview_file": "LOGGER_UPLOAD_MAX_BYTES",
    "shipments.commit_file": "LOGGER_UPLOAD_MAX_BYTES",
    "api.post_logger_file": "LOGGER_UPLOAD_MAX_BYTES",
    "api.post_readings": "LOGGER_UPLOAD_MAX_BYTES",
}


def upload_limit() -> None:
    """The request limit of an upload endpoint. Registered before CSRF protection, which
    reads the form (and so applies the limit) first."""
    setting = UPLOAD_LIMITS.get(request.endpoint or "")
    if setting:
        request.max_content_length = current_app.config[setting]


def refuse_nul() -> None:
    """InvalidInput naming the query or form field whose value holds NUL: PostgreSQL refuses
    it in text, so a look-up or a write with it was a 500 there (and a stored NUL on SQLite);
    no name, code or note has one. Registered after upload_limit. An API request's form is
    left unread: its body may be a logger file sent as a form (curl --data-binary), which the
    endpoint reads raw. JSON bodies are checked by schemas.validate."""
    fields = list(request.args.items(multi=True))
    if not is_api_request():
        fields += list(request.form.items(multi=True))
    # `next` is never stored nor looked up: safe_next drops a bad one and the login goes on.
    found = [name for name, value in fields if "\x00" in value and name != "next"]
    if found:
        raise InvalidInput(f"'{found[0]}' holds a NUL character (\\u0000): nothing was saved.",
                           [{"field": name, "message": NUL_MESSAGE} for name in dict.fromkeys(found)])


# ------------------------------------------------------------------ scans


def perform_scan(raw: Any) -> dict[str, Any]:
    """Validate, judge, record, commit; the verdict as JSON. A refusal is an answer, not an
    error: the refused scan is recorded and its reasons returned. A scan that names no case
    or no case the scanner takes part in is kept in the scanner's audit trail and answered as
    an error, the same for a case that does not exist and one that is someone else's."""
    data = validate(CustodyScanIn, raw)
    db, me = request_session(), actor()
    site_id = masterdata.site_by_code(session=db, code=data.site, field="site").id if data.site else None
    entries = [Entry(s.text, s.method, s.again) for s in data.scans]
    try:
        outcome = custody.scan(
            session=db, now=now(), actor=me, entries=entries,
            step_name=data.step, coi_text=data.case, site_id=site_id, own_password=data.password,
            verifiers=[Credential(v.username, v.password) for v in data.verifiers],
            device=data.device, device_at=data.device_at, idempotency_key=data.idempotency_key,
            partial=data.partial, remote_addr=request.remote_addr)
    except (custody.NoCaseNamed, custody.CaseNotKnown) as error:
        db.rollback()
        custody.record_unplaced(session=db, now=now(), actor=me, entries=entries,
                                step_name=data.step, error=error)
        db.commit()
        raise
    answer = scan_verdict(outcome, me.timezone)
    db.commit()
    logs.concerns(site=answer["site"], case=answer["case"])
    return answer


def scan_verdict(outcome: Outcome, zone: str) -> dict[str, Any]:
    """What the scan page and a device are told: the verdict, what was checked, what the step
    still needs, and what comes next (times also as text in `zone`)."""
    verdict, step, route, case = outcome.verdict, outcome.step, outcome.route, outcome.case
    coi = coi_of(case)
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
        "refusals": [{"code": r.code, "title": words(r.code, "refusal"), "message": r.message}
                     for r in verdict.refusals],
        "alarms": [{"id": a.id, "code": a.code, "severity": a.severity, "message": a.summary}
                   for a in outcome.alarms],
        "units": list(verdict.units),
        # Shown as soon as the case is known (the first partial scan), before more is scanned.
        "holds": [hold.document(zone) for hold in outcome.holds],
        "checklist": [{"item": item, "label": _item_label(item), "done": item not in verdict.missing}
                      for item in verdict.expected],
        "signing": {"doer": step.sign if step else None,
                    "verifiers": step.verifiers if step else 0},
        "site": outcome.site.code if outcome.site else None,
        "site_name": outcome.site.name if outcome.site else None,  # the code is for machines
        "event": ({"seq": outcome.event.seq, "kind": outcome.event.kind,
                   "hash": outcome.event.hash, "at": outcome.event.at.isoformat()}
                  if outcome.event else None),
        "next": next_step_document(case, route, zone) if case.next_step else None,
    }


def next_step_document(case: Case, route: Route, zone: str) -> dict[str, Any]:
    """The case's next step and by when it is due (the thaw-to-infusion clock, for one),
    since which step; times also as text in `zone`."""
    assert case.next_step is not None
    return {"step": case.next_step, "title": route.step(case.next_step).title,
            "due_at": case.next_due_at.isoformat() if case.next_due_at else None,
            "due_local": local_text(case.next_due_at, zone) if case.next_due_at else None,
            "since": case.last_step,
            "since_title": route.step(case.last_step).title if case.last_step else None,
            "since_at": local_text(case.last_step_at, zone) if case.last_step_at else None}


def _item_label(item: str) -> str:
    """A missing item as people read it: a unit's grouped serial, else the kind's words."""
    if item == WRISTBAND or item in UNIT_KINDS:  # ("drug_product_bag" is 16 characters too)
        return item.replace("_", " ")
    return UnitSerial.from_compact(item).display


# ------------------------------------------------------------------ logger files


def preview_logger_file(shipment_id: int, stream: IO[bytes], filename: str,
                        logger_serial: str | None, zone: str | None = None,
                        mapping: ColumnMapping | None = None) -> dict[str, Any]:
    """Read the file and say what it holds; nothing is stored (a refusal is kept)."""
    me = actor()
    try:
        shown = intake.preview(session=request_session(), now=now(), actor=me, shipment_id=shipment_id,
                               stream=stream, filename=filename, logger_serial=logger_serial,
                               max_bytes=current_app.config["LOGGER_UPLOAD_MAX_BYTES"], zone=zone,
                               mapping=mapping)
    except intake.LoggerFileRefused as error:
        _keep_refusal(shipment_id, stream, filename, error)
        raise
    return preview_document(shown, me.timezone)


def store_logger_file(shipment_id: int, stream: IO[bytes], filename: str, *, via: str,
                      logger_serial: str | None, expected_sha256: str | None = None,
                      zone: str | None = None, mapping: ColumnMapping | None = None,
                      format_name: str | None = None) -> tuple[dict[str, Any], int]:
    """Store the file, judge the shipment and commit: (document, 201), or (document, 200)
    when the same file was stored before and nothing changed. A refusal is kept, then raised."""
    db = request_session()
    try:
        stored = intake.store(session=db, now=now(), actor=actor(), shipment_id=shipment_id,
                              stream=stream, filename=filename, via=via, logger_serial=logger_serial,
                              expected_sha256=expected_sha256, zone=zone,
                              max_bytes=current_app.config["LOGGER_UPLOAD_MAX_BYTES"],
                              mapping=mapping, format_name=format_name)
    except intake.LoggerFileRefused as error:
        _keep_refusal(shipment_id, stream, filename, error)
        raise
    db.commit()
    return stored_document(stored, shipment_id), 201 if stored.changed else 200


def _keep_refusal(shipment_id: int, stream: IO[bytes], filename: str, error: DomainError) -> None:
    """Roll the upload back, then keep the refused attempt in the audit trail."""
    db = request_session()
    db.rollback()
    rawfiles.record_refusal(session=db, now=now(), actor=actor(), shipment_id=shipment_id,
                          filename=filename, stream=stream, reason=error.message)
    db.commit()


def preview_document(shown: intake.Preview, zone: str) -> dict[str, Any]:
    span = shown.span

    def reading(pair: tuple[datetime, float] | None) -> dict[str, Any] | None:
        return None if pair is None else {"at": pair[0].isoformat(), "local": local_text(pair[0], zone),
                                          "celsius": pair[1]}

    return {
        "filename": shown.filename, "size": shown.size, "sha256": shown.sha256,
        "format": shown.format, "logger": shown.logger, "zone": shown.zone,
        # The logger's zone as it will be kept with the file, and the one it replaces.
        "logger_zone": shown.logger_zone, "zone_was": shown.zone_was, "zone_changes": shown.zone_changes,
        "interval_s": shown.interval.total_seconds() if shown.interval else None,
        "clock_offset_s": shown.clock_offset.total_seconds() if shown.clock_offset else None,
        "count": span.count, "first": reading(span.first_reading), "last": reading(span.last_reading),
        "min_celsius": span.low, "max_celsius": span.high,
        "outside_window": span.outside_window, "before_window": span.before_window,
        "after_window": span.after_window, "duplicates": shown.duplicates,
        "window": {"start": local_text(shown.window[0], zone), "end": local_text(shown.window[1], zone)},
        "skipped_count": shown.skipped_count,
        "skipped": rows_document(shown.skipped),
        "notes": rows_document(shown.notes),
        "meta": shown.meta,
        "already": _stored_before(shown.already, shown.linked_here, zone),
        "mapping": mapping_document(shown.mapping) if shown.mapping else None,
        "saved_format": shown.format_name,
        "layout": shown.layout.document() if shown.layout else None,
        # Where the times' zone came from (the file's header or preamble, offsets on each row,
        # the logger's configured zone), and a zone the file states that the configured one
        # contradicts: worth a look before storing.
        "zone_source": shown.meta.get("zone_source"), "zone_conflict": shown.meta.get("zone_conflict"),
        # A daily-summary report: days, not readings.
        "days": {"count": int(shown.meta["day_count"]),
                 "outside_window": shown.meta.get("days_outside_window")}
        if "day_count" in shown.meta else None,
    }


def _stored_before(file: LoggerFile | None, linked_here: bool, zone: str) -> dict[str, Any] | None:
    """The same file stored before: `linked_here`, for this shipment (storing it changes
    nothing); else for another leg (storing attaches it to this shipment too)."""
    if file is None:
        return None
    return {"file": file.id, "shipment": file.shipment_id, "linked_here": linked_here,
            "uploaded_at": local_text(file.uploaded_at, zone)}


def rows_document(rows: list[Problem]) -> list[dict[str, Any]]:
    """Rows skipped or noted, as the answers list them (the first SHOWN_ROWS)."""
    return [{"line": p.line, "column": p.column, "why": p.why, "where": str(p)} for p in rows[:SHOWN_ROWS]]


def stored_message(stored: intake.Stored, shipment_id: int) -> str:
    """What storing a file did, in words (the web, the API and the CLI say the same)."""
    file, result = stored.file, stored.result
    days = json.loads(file.report).get("days")
    if stored.created and days is not None:  # a daily-summary report: days, not readings
        return f"Stored {days:,} days of daily summaries from {file.filename}."
    if stored.created:
        return f"Stored {result.reading_count if result else 0:,} readings from {file.filename}."
    if stored.link is not None:
        return (f"This file was stored for shipment {file.shipment_id} (file {file.id}); it is now "
                f"attached to shipment {shipment_id} too and judged in its window "
                f"({stored.link.outside_window:,} of its readings fall outside it).")
    return f"This file was stored before (file {file.id}, shipment {file.shipment_id}): nothing changed."


def stored_document(stored: intake.Stored, shipment_id: int) -> dict[str, Any]:
    file, result = stored.file, stored.result
    skipped, skipped_count, notes = intake.kept_rows(result)
    return {
        "created": stored.created,
        "linked": stored.link is not None,
        "message": stored_message(stored, shipment_id),
        "skipped_count": skipped_count, "skipped": rows_document(skipped), "notes": rows_document(notes),
        "file": {"id": file.id, "sha256": file.sha256, "filename": file.filename,
                 "size": file.size, "format": file.format, "logger": file.logger_serial,
                 "shipment": file.shipment_id,
                 "readings": result.reading_count if result else None,
                 "mapping": json.loads(file.report).get("mapping"),
                 "saved_format": json.loads(file.report).get("saved_format")},
        # The summary is the alarm's evidence, as written (times in UTC); people read it in
        # their own zone.
        "alarms": [{"id": a.id, "code": a.code, "severity": a.severity, "summary": a.summary,
                    "summary_local": localise_text(a.summary, actor().timezone)}
                   for a in stored.alarms],
        "shipment_url": url_for("shipments.show", shipment_id=shipment_id),
    }
