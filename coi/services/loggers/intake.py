"""Logger files for a shipment: a file (or the API's JSON readings) read, checked, stored
and judged, with alarms raised at once for what breaches the shipment's profile.

The raw file is the original record: kept verbatim with its SHA-256, never rewritten; the
same file again changes nothing. A file is refused whole (nothing of it stored) when it
cannot be trusted; the caller rolls back and records the refusal (`record_refusal`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import IO, Any, BinaryIO, NoReturn, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from coi.core.access import Actor
from coi.core.canonical import canonical_json
from coi.core.display import local_text
from coi.core.errors import Conflict, InvalidInput, NotFound
from coi.core.filenames import storable
from coi.models import Alarm, LoggerFile, LoggerFileChunk, LoggerFileResult, ShipmentLogger
from coi.services import alarms, audit
from coi.services.loggers import (
    clocks,
    summaries,  # daily-summary reports (issue 16)
)
from coi.services.loggers.evaluation import evaluate, profile_of, window_of
from coi.services.loggers.readings import ReadingWriter, heard_from
from coi.services.shipments import ShipmentView, require_upload, visible_shipment
from coldchain import (
    Evaluation,
    Evaluator,
    Problem,
    ReadOptions,
    Source,
    Tally,
    Unreadable,
    logger_key,
    normalise,
    read,
    stated_logger,
)

CHUNK_BYTES = 1 << 20
ABSOLUTE_ZERO = -273.15
PROGRESS_ROWS = 5000  # readings between two calls of a store's progress callback
KEEP_SKIPPED = 100  # rows skipped that a result keeps with line and why; the rest are counted
VIA = ("web", "api", "json", "cli")
FILENAME_MAX = 255  # LoggerFile.filename; no file system makes longer names


class LoggerFileRefused(InvalidInput):
    """The whole file is refused; `problems` says where and why. Nothing of it is stored."""

    code = "logger_file_refused"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        errors = [{"field": "file", "message": str(p)} for p in self.problems[:20]]
        super().__init__(message, errors or [{"field": "file", "message": message}])


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


@dataclass
class Stored:
    file: LoggerFile
    created: bool  # False: the same file was stored before, and nothing changed
    result: LoggerFileResult | None
    alarms: list[Alarm] = field(default_factory=list)


def digest(stream: IO[bytes]) -> tuple[str, int]:
    """SHA-256 and size of a seekable stream, read in chunks; the stream is rewound."""
    sha, size = hashlib.sha256(), 0
    stream.seek(0)
    while chunk := stream.read(CHUNK_BYTES):
        sha.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return sha.hexdigest(), size


def _open(view: ShipmentView, stream: IO[bytes], filename: str,
          logger_serial: str | None) -> tuple[Source, ShipmentLogger]:
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
    options = ReadOptions(zone=ZoneInfo(chosen.zone) if chosen.zone else None, logger_id=chosen.serial)
    try:
        source = read(cast(BinaryIO, stream), name=filename, options=options)
    except Unreadable as error:
        raise LoggerFileRefused(_refusal(error.problems), error.problems) from None
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


def _refusal(problems: list[Problem]) -> str:
    first = str(problems[0]) if problems else "the file cannot be read"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"The file was refused: {first}{more}. Nothing from it was stored."


def _readings(source: Source, chosen: ShipmentLogger, tally: Tally) -> Iterator[Any]:
    problems: list[Problem] = []
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
            filename: str, logger_serial: str | None = None, max_bytes: int | None = None) -> Preview:
    """Read the file without storing anything: what it holds, what was skipped, and whether
    it was stored before. Raises LoggerFileRefused as `store` would."""
    view = visible_shipment(session=session, actor=actor, shipment_id=shipment_id)
    require_upload(actor, view)
    sha, size = _checked_digest(stream, max_bytes)
    already = session.exec(select(LoggerFile).where(LoggerFile.sha256 == sha)).first()
    source, chosen = _open(view, stream, filename, logger_serial)
    # -- Daily-summary reports: days, not readings (issue 16; loggers/summaries.py) --
    if source.days is not None:
        return _preview_days(session, now, view, source, chosen, filename, size, sha, already)
    # -- end of daily-summary reports --
    clocks.correct(session, view, source, chosen)
    window, span, tally = window_of(view.shipment, now), Span(), Tally()
    for reading in _readings(source, chosen, tally):
        span.add(reading.at, reading.celsius, window)
    _check_span(span, window, _zone_note(source))
    skipped, skipped_count = _skipped(source)
    return Preview(filename, size, sha, source.format, chosen.serial, source.zone, source.interval,
                   source.clock_offset, dict(source.meta), span, window, tally.duplicates, skipped,
                   skipped_count, already)


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
    progress: Callable[[int], None] | None = None,
) -> Stored:
    """Store a logger file and its readings, then evaluate the shipment and raise alarms.
    The same file again (same SHA-256) changes nothing. `expected_sha256` (from a preview)
    makes sure the file committed is the file that was shown. `progress` is called with the
    number of readings stored so far."""
    view = visible_shipment(session=session, actor=actor, shipment_id=shipment_id)
    require_upload(actor, view)
    if via not in VIA:
        raise ValueError(via)
    sha, size = _checked_digest(stream, max_bytes)
    if expected_sha256 and expected_sha256 != sha:
        raise Conflict("The file is not the one previewed (its SHA-256 differs); preview it again.")
    already = session.exec(select(LoggerFile).where(LoggerFile.sha256 == sha)).first()
    if already is not None:
        return Stored(already, False, session.get(LoggerFileResult, already.id))
    source, chosen = _open(view, stream, filename, logger_serial)
    # -- Daily-summary reports: days, not readings (issue 16; loggers/summaries.py) --
    if source.days is not None:
        return _store_days(session, now, actor, view, source, chosen, stream, filename, via, sha, size)
    # -- end of daily-summary reports --
    clocks.correct(session, view, source, chosen)
    report = {"format": source.format, "zone": source.zone, "logger": source.logger_id,
              "interval_s": source.interval.total_seconds() if source.interval else None,
              "clock_offset_s": source.clock_offset.total_seconds() if source.clock_offset else None,
              "meta": source.meta}
    # The logger's first file for the shipment is evaluated as it is stored: its readings
    # come out of `normalise` in time order, one per time, exactly as `readings.points` would read
    # them back. A later file's readings interleave with the stored ones: read back then.
    window, evaluator = window_of(view.shipment, now), None
    if session.exec(select(LoggerFile.id).where(LoggerFile.shipment_id == shipment_id,
                                                LoggerFile.logger_serial == chosen.serial)).first() is None:
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
    with ReadingWriter(session) as writer:
        for reading in _readings(source, chosen, tally):
            span.add(reading.at, reading.celsius, window)
            writer.add((shipment_id, file_id, reading.logger_id, reading.at, reading.celsius, reading.line))
            if evaluator:
                evaluator.feed(reading)
            if progress and span.count % PROGRESS_ROWS == 0:
                progress(span.count)
        _check_span(span, window, _zone_note(source))
    if progress:
        progress(span.count)
    _store_chunks(session, file, stream)
    skipped, skipped_count = _skipped(source)
    result = LoggerFileResult(
        file_id=file.id, reading_count=span.count, first_at=span.first,  # type: ignore[arg-type]
        last_at=span.last, min_celsius=span.low, max_celsius=span.high,
        outside_window=span.outside_window, duplicates=tally.duplicates,
        skipped=canonical_json({"count": skipped_count, "rows": [
            {"line": p.line, "column": p.column, "why": p.why} for p in skipped]}))
    session.add(result)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id=file.id,
                 action="create", reason=f"Logger file for shipment {shipment_id} ({via})",
                 changes={"sha256": (None, sha), "filename": (None, file.filename),
                          "readings": (None, span.count)})
    heard_from(session, shipment_id, span.last)
    fed = {chosen.serial: evaluator.result()} if evaluator else None
    raised = raise_alarms(session=session, now=now, view=view, fed=fed)
    return Stored(file, True, result, raised)


def record_refusal(*, session: Session, now: datetime, actor: Actor, shipment_id: int,
                   filename: str, stream: IO[bytes], reason: str) -> None:
    """Keep a refused upload in the audit trail (call after rolling the upload back)."""
    try:
        sha256, size = digest(stream)
    except (OSError, ValueError):  # a stream that cannot be read again: still log the attempt
        sha256, size = None, None
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id="refused",
                 action="refuse", reason=storable(reason, 2000),
                 changes={"shipment": (None, shipment_id),
                          "filename": (None, storable(filename, FILENAME_MAX)),
                          "sha256": (None, sha256), "size": (None, size)})


def _store_chunks(session: Session, file: LoggerFile, stream: IO[bytes]) -> None:
    stream.seek(0)
    seq = 0
    while chunk := stream.read(CHUNK_BYTES):
        session.add(LoggerFileChunk(file_id=file.id, seq=seq, data=chunk))  # type: ignore[arg-type]
        session.flush()
        seq += 1


def raw_bytes(*, session: Session, file_id: int) -> Iterator[bytes]:
    """The file as uploaded, chunk by chunk."""
    for chunk in session.exec(select(LoggerFileChunk).where(LoggerFileChunk.file_id == file_id)
                              .order_by(col(LoggerFileChunk.seq))):
        yield chunk.data


def raw_stream(*, engine: Engine, file_id: int) -> Iterator[bytes]:
    """The file as uploaded, for a response body sent after the request's session is closed:
    the chunks are read in a session of their own, closed when the last is sent."""
    with Session(engine) as own:
        yield from raw_bytes(session=own, file_id=file_id)


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


def check_readings_document(body: bytes) -> None:
    """A JSON body must be an object with a list of readings before it is read as a file."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidInput(f"The body is not JSON: {error}.") from None
    except RecursionError:  # the decoder gives up on deep nesting: bad input, not a crash
        raise InvalidInput("The body is nested too deeply; send {\"logger\": \"serial\", "
                           "\"readings\": [...]}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("readings"), list):
        raise InvalidInput("Send {\"logger\": \"serial\", \"readings\": [{\"at\": ..., \"celsius\": ...}]}.",
                           [{"field": "readings", "message": "A list of readings is required."}])


def visible_file(*, session: Session, actor: Actor, file_id: int) -> LoggerFile:
    """A stored logger file, if the reader may see its shipment; NotFound otherwise."""
    file = session.get(LoggerFile, file_id)
    if file is None:
        raise NotFound(f"No logger file {file_id}.")
    visible_shipment(session=session, actor=actor, shipment_id=file.shipment_id)
    return file


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
    _store_chunks(session, file, stream)
    return Stored(file, True, result, raise_alarms(session=session, now=now, view=view))
