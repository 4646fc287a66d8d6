"""Logger files for a shipment: a file (or the API's JSON readings) read, checked, stored
and judged, with alarms raised at once for what breaches the shipment's profile.

The raw file is the original record: kept verbatim with its SHA-256, never rewritten; the
same file again for the same shipment changes nothing. A logger that travelled two legs
brings one file to both shipments: stored once (bytes and readings), linked to each, judged
in each one's window. A file is refused whole (nothing of it stored) when it cannot be
trusted; the caller rolls back and records the refusal (`record_refusal`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import IO, Any, BinaryIO, NoReturn, cast
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from coi import metrics
from coi.core.access import Actor
from coi.core.canonical import canonical_json
from coi.core.display import local_text
from coi.core.errors import Conflict, InvalidInput
from coi.core.filenames import storable
from coi.models import (
    Alarm,
    LoggerFile,
    LoggerFileLink,
    LoggerFileResult,
    LoggerFormat,
    ShipmentLogger,
    case_sites,
)
from coi.services import alarms, audit
from coi.services.loggers import (
    clocks,
    formats,
    readings,
    summaries,  # daily-summary reports (issue 16)
)
from coi.services.loggers.evaluation import evaluate, profile_of, window_of
from coi.services.loggers.rawfiles import FILENAME_MAX, digest, store_chunks
from coi.services.loggers.readings import ReadingWriter, heard_from
from coi.services.shipments import ShipmentView, require_upload, visible_shipment, zone_problem
from coldchain import (
    ColumnMapping,
    Evaluation,
    Evaluator,
    Layout,
    Problem,
    ReadOptions,
    Source,
    Tally,
    Unreadable,
    logger_key,
    mapping_document,
    normalise,
    read,
    stated_logger,
)

ABSOLUTE_ZERO = -273.15
PROGRESS_ROWS = 5000  # readings between two calls of a store's progress callback
KEEP_SKIPPED = 100  # rows skipped that a result keeps with line and why; the rest are counted
VIA = ("web", "api", "json", "cli")


class LoggerFileRefused(InvalidInput):
    """The whole file is refused; `problems` says where and why. Nothing of it is stored."""

    code = "logger_file_refused"

    def __init__(self, message: str, problems: list[Problem] | None = None,
                 layout: Layout | None = None) -> None:
        self.problems = problems or []
        errors = [{"field": "file", "message": str(p)} for p in self.problems[:20]]
        super().__init__(message, errors or [{"field": "file", "message": message}])
        # A file the readers could not place: its columns, so that a person can map them.
        self.extra = {"layout": layout.document()} if layout is not None else {}


@dataclass
class Span:
    """What a pass over the readings saw: count, time span, range, and the window check."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    low: float | None = None
    high: float | None = None
    first_reading: tuple[datetime, float] | None = None
    last_reading: tuple[datetime, float] | None = None
    before_window: int = 0
    after_window: int = 0

    def add(self, at: datetime, celsius: float, window: tuple[datetime, datetime]) -> None:
        if self.count == 0:
            self.first, self.low, self.high, self.first_reading = at, celsius, celsius, (at, celsius)
        else:
            self.low = min(self.low, celsius)  # type: ignore[type-var]
            self.high = max(self.high, celsius)  # type: ignore[type-var]
        self.count += 1
        self.last, self.last_reading = at, (at, celsius)
        if at < window[0]:
            self.before_window += 1
        elif at > window[1]:
            self.after_window += 1

    @property
    def outside_window(self) -> int:
        return self.before_window + self.after_window


@dataclass
class Preview:
    """What a file holds, shown before it is committed."""

    filename: str
    size: int
    sha256: str
    format: str
    logger: str
    zone: str | None
    interval: timedelta | None
    clock_offset: timedelta | None
    meta: dict[str, str]
    span: Span
    window: tuple[datetime, datetime]
    duplicates: int
    skipped: list[Problem]
    skipped_count: int
    already: LoggerFile | None = None  # the same file, stored before
    linked_here: bool = False  # ... and judged for this shipment already: nothing changes
    logger_zone: str | None = None  # the logger's zone as stored with the file
    zone_was: str | None = None  # the logger's zone until now
    zone_changes: bool = False  # storing the file makes `logger_zone` the logger's zone
    # What was put right or is worth knowing, beside the rows skipped: rows reordered or
    # repeated, readings stamped before a clock reset, a clock correction used or not.
    notes: list[Problem] = field(default_factory=list)
    mapping: ColumnMapping | None = None  # the column mapping it was read through
    format_name: str | None = None  # the saved format that mapping came from
    layout: Layout | None = None  # its columns, for a mapping


@dataclass
class Stored:
    file: LoggerFile
    created: bool  # False: the same file was stored before, and nothing changed
    result: LoggerFileResult | None
    alarms: list[Alarm] = field(default_factory=list)
    link: LoggerFileLink | None = None  # set when the file was attached to this shipment now

    @property
    def changed(self) -> bool:
        """Stored, or attached to another shipment: False only when nothing changed."""
        return self.created or self.link is not None


@dataclass(frozen=True)
class Mapped:
    """How a file is read: through the mapping given, else the saved format for its layout
    (found by its fingerprint), else by detection alone."""

    mapping: ColumnMapping | None
    saved: LoggerFormat | None
    layout: Layout | None


def _mapped(session: Session, stream: IO[bytes], filename: str,
            mapping: ColumnMapping | None) -> Mapped:
    found = formats.layout(stream, filename)
    if mapping is not None or found is None:
        return Mapped(mapping, None, found)
    saved = formats.in_use(session=session, fingerprint=found.fingerprint)
    return Mapped(formats.mapping_of(saved) if saved else None, saved, found)


def _open(view: ShipmentView, stream: IO[bytes], filename: str,
          logger_serial: str | None, zone: str | None = None,
          mapped: Mapped = Mapped(None, None, None)) -> tuple[Source, ShipmentLogger]:
    """Read the file as the shipment logger it belongs to. A serial the file states must be
    one of the shipment's loggers and agree with the one the uploader named; serials are
    compared by `logger_key` (case, spaces, hyphens and underscores ignored)."""
    assigned = {logger_key(logger.serial): logger for logger in view.loggers}
    if logger_serial:
        chosen = assigned.get(logger_key(logger_serial))
        if chosen is None:
            raise LoggerFileRefused(f"Logger {logger_serial} is not assigned to shipment {view.shipment.id} "
                                    f"(its loggers: {_serials(view)}). Nothing was stored.")
    elif len(assigned) == 1:
        chosen = next(iter(assigned.values()))
    else:
        # Several loggers and none named: the file may say itself which one it is from.
        stated = stated_logger(cast(BinaryIO, stream), name=filename)
        if stated is None:
            raise InvalidInput("Say which logger the file is from.",
                               [{"field": "logger", "message": "This shipment has several loggers: "
                                 f"{_serials(view)}."}])
        chosen = assigned.get(logger_key(stated)) or _refuse_stranger(stated, view)
    zone = zone or chosen.zone  # the uploader's zone for the logger, else the one it has
    options = ReadOptions(zone=ZoneInfo(zone) if zone else None, logger_id=chosen.serial,
                          mapping=mapped.mapping)
    try:
        source = read(cast(BinaryIO, stream), name=filename, options=options)
    except Unreadable as error:
        raise LoggerFileRefused(_refusal(error.problems, mapped), error.problems, mapped.layout) from None
    if source.logger_id and logger_key(source.logger_id) != logger_key(chosen.serial):
        if logger_key(source.logger_id) not in assigned:
            _refuse_stranger(source.logger_id, view)
        raise LoggerFileRefused(f"This file is from logger {source.logger_id}, but it was uploaded as "
                                f"logger {chosen.serial}'s. Upload it as logger {source.logger_id}'s; "
                                "nothing was stored.")
    return source, chosen


def _refuse_stranger(stated: str, view: ShipmentView) -> NoReturn:
    raise LoggerFileRefused(_not_assigned(stated, view))


def _not_assigned(serial: str, view: ShipmentView) -> str:
    return (f"This file is from logger {serial}; this shipment's loggers are {_serials(view)} (logger "
            f"{serial} is not assigned to shipment {view.shipment.id}). Upload the file for the shipment "
            "that carried this logger; nothing was stored.")


def _serials(view: ShipmentView) -> str:
    return ", ".join(logger.serial for logger in view.loggers)


def _refusal(problems: list[Problem], mapped: Mapped | None = None) -> str:
    first = str(problems[0]) if problems else "the file cannot be read"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    through = ""
    if mapped is not None and mapped.saved is not None:
        through = f" It was read with the saved format {mapped.saved.name!r}."
    elif mapped is not None and mapped.mapping is not None:
        through = " It was read with the column mapping given."
    return f"The file was refused: {first}{more}.{through} Nothing from it was stored."


def _readings(source: Source, chosen: ShipmentLogger, tally: Tally,
              notes: list[Problem] | None = None) -> Iterator[Any]:
    """The file's readings, normalised; the normaliser's notes go to `notes` at the end."""
    problems: list[Problem] = notes if notes is not None else []
    serial = chosen.serial  # read once: a mapped attribute costs a descriptor call per reading
    key = logger_key(serial)
    try:
        for reading in normalise(source.readings, clock_offset=source.clock_offset or timedelta(0),
                                 problems=problems, tally=tally):
            if not math.isfinite(reading.celsius) or reading.celsius <= ABSOLUTE_ZERO:
                raise LoggerFileRefused(f"Line {reading.line}: {reading.celsius} °C is not a temperature; "
                                        "nothing from the file was stored.")
            if reading.logger_id != serial:
                if logger_key(reading.logger_id) != key:
                    raise LoggerFileRefused(f"Line {reading.line} is from logger {reading.logger_id}, "
                                            f"not {chosen.serial}: one file, one logger.")
                # The same logger written another way ('0434 EF00' for '0434-EF00'): stored
                # under the shipment's spelling, which is what its readings are looked up by.
                reading = replace(reading, logger_id=serial)
            yield reading
    except Unreadable as error:
        raise LoggerFileRefused(_refusal(error.problems), error.problems) from None


def _check_span(span: Span, window: tuple[datetime, datetime], zone_note: str) -> None:
    if span.count == 0:
        raise LoggerFileRefused("The file holds no readings: nothing was stored.")
    if span.count == span.outside_window:
        assert span.first is not None and span.last is not None
        raise LoggerFileRefused(
            f"The readings are for another period: {local_text(span.first)} to {local_text(span.last)}, "
            f"but this shipment was under way from {local_text(window[0])} to {local_text(window[1])}"
            f"{zone_note}. Nothing was stored.")


def _skipped(source: Source) -> tuple[list[Problem], int]:
    kept = (source.problems + source.skipped)[:KEEP_SKIPPED]
    count = (int(source.meta.get("problem_count", len(source.problems)))
             + int(source.meta.get("skipped_count", len(source.skipped))))
    return kept, count


def preview(*, session: Session, now: datetime, actor: Actor, shipment_id: int, stream: IO[bytes],
            filename: str, logger_serial: str | None = None, max_bytes: int | None = None,
            zone: str | None = None, mapping: ColumnMapping | None = None) -> Preview:
    """Read the file without storing anything: what it holds, what was skipped, and whether
    it was stored before. `zone`: the logger's zone as the uploader confirms or sets it (the
    file is read in it if it states none); with `mapping`, read through it. Raises
    LoggerFileRefused as `store` would (with the file's layout, when it has columns to map)."""
    view = visible_shipment(session=session, actor=actor, shipment_id=shipment_id)
    require_upload(actor, view)
    zone = chosen_zone(zone)
    sha, size = _checked_digest(stream, max_bytes)
    already = session.exec(select(LoggerFile).where(LoggerFile.sha256 == sha)).first()
    if already is not None and _link_of(session, already, view) is None:
        return _zoned(_link_preview(session, now, view, already, filename, logger_serial), view, zone)
    mapped = _mapped(session, stream, filename, mapping)
    source, chosen = _open(view, stream, filename, logger_serial, zone, mapped)
    # -- Daily-summary reports: days, not readings (issue 16; loggers/summaries.py) --
    if source.days is not None:
        return _preview_days(session, now, view, source, chosen, filename, size, sha, already)
    # -- end of daily-summary reports --
    clocks.correct(session, view, source, chosen)
    window, span, tally = window_of(view.shipment, now), Span(), Tally()
    notes: list[Problem] = []
    for reading in _readings(source, chosen, tally, notes):
        span.add(reading.at, reading.celsius, window)
    _check_span(span, window, _zone_note(source))
    skipped, skipped_count = _skipped(source)
    return _zoned(Preview(filename, size, sha, source.format, chosen.serial, source.zone, source.interval,
                          source.clock_offset, dict(source.meta), span, window, tally.duplicates, skipped,
                          skipped_count, already, already is not None,
                          notes=notes + _meta_notes(source.meta), mapping=mapped.mapping,
                          format_name=mapped.saved.name if mapped.saved else None,
                          layout=mapped.layout), view, zone)


def _meta_notes(meta: Mapping[str, str]) -> list[Problem]:
    """What the readers and the clock correction noted in the file's header facts."""
    notes = [Problem(None, None, text) for key, text in meta.items() if key.endswith("_note")]
    if "clock_offset_from" in meta:
        notes.append(Problem(None, None, f"times corrected by the logger's {meta['clock_offset_from']}"))
    return notes


def kept_rows(result: LoggerFileResult | None) -> tuple[list[Problem], int, list[Problem]]:
    """A stored file's skipped rows (the first KEEP_SKIPPED), their count, and its notes."""
    kept: dict[str, Any] = json.loads(result.skipped) if result else {}
    rows = [Problem(p["line"], p["column"], p["why"]) for p in kept.get("rows", [])]
    notes = [Problem(p["line"], p.get("column"), p["why"]) for p in kept.get("notes", [])]
    return rows, int(kept.get("count", 0)), notes


def chosen_zone(zone: str | None) -> str | None:
    """The zone the uploader gave for the logger (None: keep the logger's); InvalidInput,
    before anything is read or stored, if it is not an IANA zone name."""
    zone = (zone or "").strip() or None
    if zone is not None and (problem := zone_problem(zone)):
        raise InvalidInput(f"The logger's time zone was not accepted: {problem} Nothing was stored.",
                           [{"field": "zone", "message": problem}])
    return zone


def _zoned(shown: Preview, view: ShipmentView, zone: str | None) -> Preview:
    logger = next(each for each in view.loggers if each.serial == shown.logger)
    shown.logger_zone, shown.zone_was = zone or logger.zone, logger.zone
    shown.zone_changes = zone is not None and zone != logger.zone
    return shown


def _keep_zone(session: Session, now: datetime, actor: Actor, view: ShipmentView, serial: str,
               zone: str | None, filename: str) -> None:
    """The zone the uploader confirmed for the logger becomes its zone: audited, old and new."""
    logger = next(each for each in view.loggers if each.serial == serial)
    if zone is None or zone == logger.zone:
        return
    was, logger.zone = logger.zone, zone
    session.add(logger)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="shipment_logger", entity_id=logger.id,
                 action="update", reason=f"Zone confirmed at upload of {storable(filename, FILENAME_MAX)}",
                 changes={"zone": (was, zone)}, sites=case_sites(view.case))


def _link_of(session: Session, file: LoggerFile, view: ShipmentView) -> LoggerFileLink | None:
    return session.exec(select(LoggerFileLink).where(LoggerFileLink.file_id == file.id,
                                                     LoggerFileLink.shipment_id == view.shipment.id)).first()


def _linked_logger(view: ShipmentView, file: LoggerFile, logger_serial: str | None) -> ShipmentLogger:
    """The shipment's logger a file stored for another leg is from (by `logger_key`)."""
    assigned = {logger_key(logger.serial): logger for logger in view.loggers}
    if logger_serial and logger_key(logger_serial) != logger_key(file.logger_serial):
        raise LoggerFileRefused(f"This file is from logger {file.logger_serial}, but it was uploaded as "
                                f"logger {logger_serial}'s. Upload it as logger {file.logger_serial}'s; "
                                "nothing was stored.")
    chosen = assigned.get(logger_key(file.logger_serial))
    if chosen is None:
        _refuse_stranger(file.logger_serial, view)
    return chosen


def _stored_span(session: Session, file: LoggerFile, window: tuple[datetime, datetime]) -> Span:
    """The stored readings of a file, judged against another shipment's window."""
    span = Span()
    for at, celsius in readings.of_file(session, file.id):  # type: ignore[arg-type]
        span.add(at, celsius, window)
    zone = json.loads(file.report).get("zone")
    _check_span(span, window, f" (the file's times were read as {zone} when it was stored)" if zone else "")
    return span


def _link_preview(session: Session, now: datetime, view: ShipmentView, file: LoggerFile,
                  filename: str, logger_serial: str | None) -> Preview:
    """What attaching a file stored for another leg would judge here: its stored readings
    (as they were read then) in this shipment's window."""
    chosen = _linked_logger(view, file, logger_serial)
    window = window_of(view.shipment, now)
    span = _stored_span(session, file, window)
    report, result = json.loads(file.report), session.get(LoggerFileResult, file.id)
    rows, count, notes = kept_rows(result)
    interval, offset = report.get("interval_s"), report.get("clock_offset_s")
    return Preview(filename, file.size, file.sha256, file.format, chosen.serial, report.get("zone"),
                   timedelta(seconds=interval) if interval else None,
                   timedelta(seconds=offset) if offset else None, dict(report.get("meta") or {}), span,
                   window, result.duplicates if result else 0, rows, count, file, False, notes=notes)


def _attach(session: Session, now: datetime, actor: Actor, view: ShipmentView, file: LoggerFile,
            via: str, logger_serial: str | None) -> Stored:
    """Link a file stored for another leg to this shipment and judge the shipment on it."""
    chosen = _linked_logger(view, file, logger_serial)
    span = _stored_span(session, file, window_of(view.shipment, now))
    link = LoggerFileLink(file_id=file.id, shipment_id=view.shipment.id,  # type: ignore[arg-type]
                          logger_serial=chosen.serial, via=via, linked_at=now,
                          linked_by_id=actor.user_id,  # type: ignore[arg-type]
                          outside_window=span.outside_window)
    session.add(link)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id=file.id,
                 action="link", reason=f"Logger file {file.id} ({file.filename}), stored for shipment "
                 f"{file.shipment_id}, attached to shipment {view.shipment.id} ({via}): its logger "
                 "travelled this leg too", sites=case_sites(view.case),
                 changes={"shipment": (None, view.shipment.id), "logger": (None, chosen.serial),
                          "outside_window": (None, span.outside_window)})
    heard_from(session, view.shipment.id, span.last)  # type: ignore[arg-type]
    raised = raise_alarms(session=session, now=now, view=view)
    return Stored(file, False, session.get(LoggerFileResult, file.id), raised, link)


def _zone_note(source: Source) -> str:
    return f" (the file's times were read as {source.zone})" if source.zone else ""


def _checked_digest(stream: IO[bytes], max_bytes: int | None) -> tuple[str, int]:
    sha, size = digest(stream)
    if max_bytes is not None and size > max_bytes:
        raise LoggerFileRefused(f"The file is {size:,} bytes; the limit is {max_bytes:,}. Nothing "
                                "was stored.")
    if size == 0:
        raise LoggerFileRefused("The file is empty: nothing was stored.")
    return sha, size


def store(
    *, session: Session, now: datetime, actor: Actor, shipment_id: int, stream: IO[bytes],
    filename: str, via: str, logger_serial: str | None = None,
    expected_sha256: str | None = None, max_bytes: int | None = None,
    progress: Callable[[int], None] | None = None, zone: str | None = None,
    mapping: ColumnMapping | None = None, format_name: str | None = None,
) -> Stored:
    """Store a logger file and its readings, then evaluate the shipment and raise alarms.
    The same file again (same SHA-256) changes nothing. `expected_sha256` (from a preview)
    makes sure the file committed is the file that was shown. `progress` is called with the
    number of readings stored so far. `zone`: the logger's zone as the uploader confirms or
    sets it (files that state none are read in it); a new one is kept for the logger, audited.
    Nothing changes (the zone neither) when the file was stored for this shipment before.
    With `mapping` the file is read through it (else through the saved format for its layout,
    if any); `format_name` saves the mapping as a format for files of this layout."""
    view = visible_shipment(session=session, actor=actor, shipment_id=shipment_id)
    require_upload(actor, view)
    if via not in VIA:
        raise ValueError(via)
    zone = chosen_zone(zone)
    sha, size = _checked_digest(stream, max_bytes)
    if expected_sha256 and expected_sha256 != sha:
        raise Conflict("The file is not the one previewed (its SHA-256 differs); preview it again.")
    already = session.exec(select(LoggerFile).where(LoggerFile.sha256 == sha)).first()
    if already is not None:
        if _link_of(session, already, view) is None:
            attached = _attach(session, now, actor, view, already, via, logger_serial)
            _keep_zone(session, now, actor, view, attached.link.logger_serial, zone, filename)  # type: ignore[union-attr]
            return attached
        return Stored(already, False, session.get(LoggerFileResult, already.id))
    if format_name and mapping is None:
        raise InvalidInput("Give the column mapping to save as a format.",
                           [{"field": "mapping", "message": "A format is a column mapping."}])
    mapped = _mapped(session, stream, filename, mapping)
    source, chosen = _open(view, stream, filename, logger_serial, zone, mapped)
    if format_name:
        if mapped.layout is None:
            raise InvalidInput("Only a delimited file (columns) can be saved as a format.",
                               [{"field": "format_name", "message": "This file has no columns."}])
        mapped = replace(mapped, saved=formats.save(
            session=session, now=now, actor=actor, name=format_name, found=mapped.layout,
            mapping=mapping,  # type: ignore[arg-type]
            reason=f"Column mapping given for {storable(filename, FILENAME_MAX)} (shipment {shipment_id})"))
    # -- Daily-summary reports: days, not readings (issue 16; loggers/summaries.py) --
    if source.days is not None:
        return _store_days(session, now, actor, view, source, chosen, stream, filename, via, sha, size)
    # -- end of daily-summary reports --
    clocks.correct(session, view, source, chosen)
    report = {"format": source.format, "zone": source.zone, "logger": source.logger_id,
              "interval_s": source.interval.total_seconds() if source.interval else None,
              "clock_offset_s": source.clock_offset.total_seconds() if source.clock_offset else None,
              "meta": source.meta}
    if mapped.mapping is not None:  # how the file was read is part of what was read from it
        report["mapping"] = mapping_document(mapped.mapping)
        report["saved_format"] = mapped.saved.name if mapped.saved else None
    # The logger's first file for the shipment is evaluated as it is stored: its readings
    # come out of `normalise` in time order, one per time, exactly as `readings.points` would read
    # them back. A later file's readings interleave with the stored ones: read back then.
    window, evaluator = window_of(view.shipment, now), None
    if session.exec(select(LoggerFileLink.id).where(
            LoggerFileLink.shipment_id == shipment_id,
            LoggerFileLink.logger_serial == chosen.serial)).first() is None:
        evaluator = Evaluator(profile_of(view.shipment), window_start=window[0],
                              window_end=view.shipment.received_at, interval=source.interval or None,
                              logger_id=chosen.serial)
    file = LoggerFile(shipment_id=shipment_id, logger_serial=chosen.serial, sha256=sha,
                      filename=storable(filename, FILENAME_MAX) or "upload", size=size,
                      format=source.format, via=via,
                      uploaded_at=now, uploaded_by_id=actor.user_id, report=canonical_json(report))
    session.add(file)
    session.flush()
    span, tally, file_id = Span(), Tally(), file.id
    notes: list[Problem] = []
    with ReadingWriter(session) as writer:
        for reading in _readings(source, chosen, tally, notes):
            span.add(reading.at, reading.celsius, window)
            writer.add((shipment_id, file_id, reading.logger_id, reading.at, reading.celsius, reading.line))
            if evaluator:
                evaluator.feed(reading)
            if progress and span.count % PROGRESS_ROWS == 0:
                progress(span.count)
        _check_span(span, window, _zone_note(source))
    if progress:
        progress(span.count)
    store_chunks(session, file, stream)
    session.add(LoggerFileLink(file_id=file_id, shipment_id=shipment_id, logger_serial=chosen.serial,  # type: ignore[arg-type]
                               via=via, linked_at=now, linked_by_id=actor.user_id,  # type: ignore[arg-type]
                               outside_window=span.outside_window))
    skipped, skipped_count = _skipped(source)
    result = LoggerFileResult(
        file_id=file.id, reading_count=span.count, first_at=span.first,  # type: ignore[arg-type]
        last_at=span.last, min_celsius=span.low, max_celsius=span.high,
        outside_window=span.outside_window, duplicates=tally.duplicates,
        skipped=canonical_json({"count": skipped_count, "rows": [
            {"line": p.line, "column": p.column, "why": p.why} for p in skipped], "notes": [
            {"line": p.line, "column": p.column, "why": p.why}
            for p in notes + _meta_notes(source.meta)]}))
    session.add(result)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id=file.id,
                 action="create", reason=f"Logger file for shipment {shipment_id} ({via})",
                 changes={"sha256": (None, sha), "filename": (None, file.filename),
                          "readings": (None, span.count)})
    _keep_zone(session, now, actor, view, chosen.serial, zone, filename)
    heard_from(session, shipment_id, span.last)
    fed = {chosen.serial: evaluator.result()} if evaluator else None
    raised = raise_alarms(session=session, now=now, view=view, fed=fed)
    metrics.count_readings(session, via, span.count)
    return Stored(file, True, result, raised)


def raise_alarms(*, session: Session, now: datetime, view: ShipmentView,
                 fed: Mapping[str, Evaluation] | None = None) -> list[Alarm]:
    """Raise an alarm for each breach not raised before (the fingerprint is unique, so two
    uploads at once still raise it once); the rule that fired is copied into the alarm."""
    found = evaluate(session=session, now=now, view=view, fed=fed)
    shipment, raised = view.shipment, []
    for breach in found.breaches:
        alarm = _raise(session, now, view, f"shipment:{shipment.id}:{breach.key}", breach.code,
                       breach.severity, breach.message, breach.rule)
        if alarm:
            raised.append(alarm)
    if found.budget.exhausted:
        hours = found.budget.total.total_seconds() / 3600
        alarm = _raise(session, now, view, f"case:{shipment.case_id}:stability_budget",
                       "stability_budget", "critical",
                       f"The case's stability budget of {hours:g} h out of range is used up "
                       f"({_minutes(found.budget.used)} across its legs).",
                       {**found.profile.as_rule(), "rule": "coldchain.stability_budget"})
        if alarm:
            raised.append(alarm)
    return raised


def _minutes(value: timedelta) -> str:
    return f"{value.total_seconds() / 60:.0f} min"


def _raise(session: Session, now: datetime, view: ShipmentView, fingerprint: str, code: str,
           severity: str, summary: str, rule: Mapping[str, Any]) -> Alarm | None:
    shipment = view.shipment
    return alarms.raise_alarm(session=session, now=now, kind="temperature", code=code,
                              severity=severity, summary=summary, case_id=shipment.case_id,
                              site_id=shipment.destination_site_id, shipment_id=shipment.id,
                              fingerprint=fingerprint,
                              rule={**rule, "shipment": shipment.id, "profile": shipment.profile})


# ------------------------------------------------------------------ daily summaries (issue 16)
# A daily-summary report holds days, not readings (`Source.days`): loggers/summaries.py
# checks and stores them; this section only ties them into preview and store.

def _days_checked(session: Session, now: datetime, view: ShipmentView, source: Source,
                  chosen: ShipmentLogger) -> summaries.Days:
    try:
        return summaries.check(session=session, now=now, view=view, source=source, chosen=chosen)
    except summaries.OutsideWindow as error:
        raise LoggerFileRefused(str(error)) from None


def _preview_days(session: Session, now: datetime, view: ShipmentView, source: Source, chosen: ShipmentLogger,
                  filename: str, size: int, sha: str, already: LoggerFile | None) -> Preview:
    """No readings (an empty span); the days are described in meta (day_count, days outside)."""
    days = _days_checked(session, now, view, source, chosen)
    skipped, skipped_count = _skipped(source)
    return Preview(filename, size, sha, source.format, chosen.serial, None, None, None, days.meta, Span(),
                   window_of(view.shipment, now), 0, skipped, skipped_count, already)


def _store_days(session: Session, now: datetime, actor: Actor, view: ShipmentView, source: Source,
                chosen: ShipmentLogger, stream: IO[bytes], filename: str, via: str, sha: str,
                size: int) -> Stored:
    days = _days_checked(session, now, view, source, chosen)
    skipped, skipped_count = _skipped(source)
    file, result = summaries.record(session=session, now=now, actor=actor, view=view, source=source,
                                    chosen=chosen, days=days, via=via, sha=sha, size=size,
                                    filename=storable(filename, FILENAME_MAX) or "upload",
                                    skipped=skipped, skipped_count=skipped_count)
    store_chunks(session, file, stream)
    session.add(LoggerFileLink(file_id=file.id, shipment_id=view.shipment.id,  # type: ignore[arg-type]
                               logger_serial=chosen.serial, via=via, linked_at=now,
                               linked_by_id=actor.user_id,  # type: ignore[arg-type]
                               outside_window=result.outside_window))
    session.flush()
    return Stored(file, True, result, raise_alarms(session=session, now=now, view=view))
