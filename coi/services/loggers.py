"""Logger data for a shipment: a file (or the API's JSON readings) read, checked, stored and
evaluated, with alarms raised at once for what breaches the shipment's profile.

The raw file is the original record: kept verbatim with its SHA-256, never rewritten; the
same file again changes nothing. A file is refused whole (nothing of it stored) when it
cannot be trusted; the caller rolls back and records the refusal (`record_refusal`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import IO, Any, BinaryIO, cast
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from coi.core.access import Actor, allowed, allowed_at_any
from coi.core.display import local_text
from coi.core.errors import Conflict, Forbidden, InvalidInput
from coi.models import (
    Alarm,
    LoggerClockCheck,
    LoggerFile,
    LoggerFileChunk,
    LoggerFileResult,
    LoggerReading,
    Shipment,
    ShipmentLogger,
    User,
)
from coi.services import alarms, audit, ledger
from coi.services.cases import case_sites
from coi.services.shipments import ShipmentView, view_of, visible_shipment
from coldchain import chart, read
from coldchain.evaluate import Breach, Budget, Evaluation, Evaluator, stability_budget
from coldchain.model import Problem, Reading, ReadOptions, Source, Unreadable
from coldchain.normalise import Tally, clock_offset_from_handoff, normalise
from coldchain.profiles import Profile
from coldchain.readers.common import Localiser

CHUNK_BYTES = 1 << 20
ABSOLUTE_ZERO = -273.15
BATCH_ROWS = 5000
KEEP_SKIPPED = 100  # rows skipped that a result keeps with line and why; the rest are counted
VIA = ("web", "api", "json", "cli")
HANDOFFS = ("dispatch", "receive")
CLOCK_CHECK_LIMIT = timedelta(hours=12)  # further off than this, the entry is taken for a typo
COPY_READINGS = "COPY logger_reading (shipment_id, file_id, logger, at, celsius, line) FROM STDIN"
INSERT_READINGS = ("INSERT INTO logger_reading (shipment_id, file_id, logger, at, celsius, line) "
                   "VALUES (?, ?, ?, ?, ?, ?)")


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


# ------------------------------------------------------------------ reading a file


def digest(stream: IO[bytes]) -> tuple[str, int]:
    """SHA-256 and size of a seekable stream, read in chunks; the stream is rewound."""
    sha, size = hashlib.sha256(), 0
    stream.seek(0)
    while chunk := stream.read(CHUNK_BYTES):
        sha.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return sha.hexdigest(), size


def window_of(shipment: Shipment, now: datetime) -> tuple[datetime, datetime]:
    """The time the shipment's material is in its shipper: from opening to receipt (or now)."""
    return shipment.opened_at, shipment.received_at or now


def _may_upload(actor: Actor, view: ShipmentView) -> None:
    if not (allowed(actor, "shipment.view_any") and allowed(actor, "logger.upload")) and \
            not allowed_at_any(actor, "logger.upload", case_sites(view.case)):
        raise Forbidden("You are not allowed to upload logger data for this shipment.")


def _open(view: ShipmentView, stream: IO[bytes], filename: str,
          logger_serial: str | None) -> tuple[Source, ShipmentLogger]:
    assigned = {logger.serial: logger for logger in view.loggers}
    if logger_serial:
        chosen = assigned.get(logger_serial)
        if chosen is None:
            raise LoggerFileRefused(_not_assigned(logger_serial, view))
    elif len(assigned) == 1:
        chosen = next(iter(assigned.values()))
    else:
        raise InvalidInput("Say which logger the file is from.",
                           [{"field": "logger", "message": "This shipment has several loggers: "
                             + ", ".join(assigned) + "."}])
    options = ReadOptions(zone=ZoneInfo(chosen.zone) if chosen.zone else None, logger_id=chosen.serial)
    try:
        source = read(cast(BinaryIO, stream), name=filename, options=options)
    except Unreadable as error:
        raise LoggerFileRefused(_refusal(error.problems), error.problems) from None
    if source.logger_id and source.logger_id != chosen.serial:
        raise LoggerFileRefused(_not_assigned(source.logger_id, view) if source.logger_id not in assigned
                                else f"The file is from logger {source.logger_id}, not {chosen.serial}.")
    return source, chosen


def _correct_clock(session: Session, view: ShipmentView, source: Source, chosen: ShipmentLogger) -> None:
    """A file that states no clock offset of its own is corrected by the logger's latest
    clock check at a handoff of this shipment (a file that measured its own clock keeps it)."""
    check = _latest_clock_check(session=session, shipment_id=view.shipment.id,  # type: ignore[arg-type]
                               serial=chosen.serial)
    if check is None:
        return
    if source.clock_offset is not None:
        source.meta["clock_note"] = (f"the file states its own clock offset; the clock check at the "
                                     f"{check.handoff} handoff ({check.offset_s:+.0f} s) was not used")
        return
    source.clock_offset = timedelta(seconds=check.offset_s)
    source.meta["clock_offset_from"] = f"clock check {check.id} at the {check.handoff} handoff"


def _latest_clock_check(*, session: Session, shipment_id: int, serial: str) -> LoggerClockCheck | None:
    return session.exec(select(LoggerClockCheck).where(
        LoggerClockCheck.shipment_id == shipment_id, LoggerClockCheck.serial == serial)
        .order_by(col(LoggerClockCheck.id).desc())).first()


def clock_checks(*, session: Session, shipment_id: int) -> list[tuple[LoggerClockCheck, User | None]]:
    return [(check, session.get(User, check.recorded_by_id)) for check in session.exec(
        select(LoggerClockCheck).where(LoggerClockCheck.shipment_id == shipment_id)
        .order_by(col(LoggerClockCheck.id)))]


def check_clock(*, session: Session, now: datetime, actor: Actor, shipment_id: int, serial: str,
                handoff: str, shown: str, zone: str) -> LoggerClockCheck:
    """Record what logger `serial`'s display showed at the shipment's `handoff` scan: `shown`
    ("2026-12-04 14:05:30") is local to the logger's configured zone, or to `zone` (the
    person's) for a logger with none. The offset against the scan's server time corrects the
    logger's files stored from now on."""
    view = visible_shipment(session=session, actor=actor, shipment_id=shipment_id)
    _may_upload(actor, view)
    logger = next((each for each in view.loggers if each.serial == serial), None)
    if logger is None:
        raise InvalidInput(f"Logger {serial} is not assigned to shipment {shipment_id}.",
                           [{"field": "serial", "message": "One of the shipment's loggers."}])
    if handoff not in HANDOFFS:
        raise InvalidInput("Say at which handoff the clock was read.",
                           [{"field": "handoff", "message": "dispatch or receive."}])
    scan_at = view.shipment.dispatched_at if handoff == "dispatch" else view.shipment.received_at
    if scan_at is None:
        raise InvalidInput(f"The {handoff} handoff of shipment {shipment_id} has not been scanned yet: "
                           "read the logger's clock at the handoff scan.",
                           [{"field": "handoff", "message": "Not scanned yet."}])
    zone_name = logger.zone or zone
    try:
        local = datetime.fromisoformat(shown.strip())
    except ValueError:
        raise InvalidInput(f"'{shown[:40]}' is not a time like 2026-12-04 14:05:30.",
                           [{"field": "shown", "message": "The date and time the logger showed."}]) from None
    if local.tzinfo is not None:
        raise InvalidInput("Enter the time as the logger showed it, without a UTC offset.",
                           [{"field": "shown", "message": f"Local to {zone_name}."}])
    at = Localiser(ZoneInfo(zone_name))(local)
    if isinstance(at, str):
        raise InvalidInput(f"The clock check was not recorded: {at}.", [{"field": "shown", "message": at}])
    offset = clock_offset_from_handoff(at, scan_at)
    if abs(offset) > CLOCK_CHECK_LIMIT:
        raise InvalidInput(
            f"The logger would be {abs(offset).total_seconds() / 3600:.1f} h off the {handoff} scan at "
            f"{local_text(scan_at)}: check the date and time entered (and the logger's zone, {zone_name}).",
            [{"field": "shown", "message": "More than 12 hours from the handoff scan."}])
    check = LoggerClockCheck(shipment_id=shipment_id, serial=serial, handoff=handoff, scan_at=scan_at,
                             shown=local.isoformat(sep=" "), zone=zone_name,
                             offset_s=offset.total_seconds(), recorded_at=now,
                             recorded_by_id=actor.user_id)  # type: ignore[arg-type]
    session.add(check)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_clock_check", entity_id=check.id,
                 action="create", reason=f"Clock of logger {serial} read at the {handoff} handoff "
                                         f"of shipment {shipment_id}",
                 changes={"shown": (None, check.shown), "zone": (None, zone_name),
                          "offset_s": (None, check.offset_s)})
    return check


def _not_assigned(serial: str, view: ShipmentView) -> str:
    return (f"Logger {serial} is not assigned to shipment {view.shipment.id} (its loggers: "
            + ", ".join(logger.serial for logger in view.loggers) + "). Upload the file for the "
            "shipment that carried this logger.")


def _refusal(problems: list[Problem]) -> str:
    first = str(problems[0]) if problems else "the file cannot be read"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"The file was refused: {first}{more}. Nothing from it was stored."


def _readings(source: Source, chosen: ShipmentLogger, tally: Tally) -> Iterator[Any]:
    problems: list[Problem] = []
    serial = chosen.serial  # read once: a mapped attribute costs a descriptor call per reading
    try:
        for reading in normalise(source.readings, clock_offset=source.clock_offset or timedelta(0),
                                 problems=problems, tally=tally):
            if not math.isfinite(reading.celsius) or reading.celsius <= ABSOLUTE_ZERO:
                raise LoggerFileRefused(f"Line {reading.line}: {reading.celsius} °C is not a temperature; "
                                        "nothing from the file was stored.")
            if reading.logger_id != serial:
                raise LoggerFileRefused(f"Line {reading.line} is from logger {reading.logger_id}, "
                                        f"not {chosen.serial}: one file, one logger.")
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
    _may_upload(actor, view)
    sha, size = _checked_digest(stream, max_bytes)
    already = session.exec(select(LoggerFile).where(LoggerFile.sha256 == sha)).first()
    source, chosen = _open(view, stream, filename, logger_serial)
    _correct_clock(session, view, source, chosen)
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
    _may_upload(actor, view)
    if via not in VIA:
        raise ValueError(via)
    sha, size = _checked_digest(stream, max_bytes)
    if expected_sha256 and expected_sha256 != sha:
        raise Conflict("The file is not the one previewed (its SHA-256 differs); preview it again.")
    already = session.exec(select(LoggerFile).where(LoggerFile.sha256 == sha)).first()
    if already is not None:
        return Stored(already, False, session.get(LoggerFileResult, already.id))
    source, chosen = _open(view, stream, filename, logger_serial)
    _correct_clock(session, view, source, chosen)
    report = {"format": source.format, "zone": source.zone, "logger": source.logger_id,
              "interval_s": source.interval.total_seconds() if source.interval else None,
              "clock_offset_s": source.clock_offset.total_seconds() if source.clock_offset else None,
              "meta": source.meta}
    # The logger's first file for the shipment is evaluated as it is stored: its readings
    # come out of `normalise` in time order, one per time, exactly as `_points` would read
    # them back. A later file's readings interleave with the stored ones: read back then.
    window, evaluator = window_of(view.shipment, now), None
    if session.exec(select(LoggerFile.id).where(LoggerFile.shipment_id == shipment_id,
                                                LoggerFile.logger_serial == chosen.serial)).first() is None:
        evaluator = Evaluator(profile_of(view.shipment), window_start=window[0],
                              window_end=view.shipment.received_at, interval=source.interval or None,
                              logger_id=chosen.serial)
    file = LoggerFile(shipment_id=shipment_id, logger_serial=chosen.serial, sha256=sha,
                      filename=filename[:255] or "upload", size=size, format=source.format, via=via,
                      uploaded_at=now, uploaded_by_id=actor.user_id, report=ledger.canonical(report))
    session.add(file)
    session.flush()
    span, tally, file_id = Span(), Tally(), file.id
    with ReadingWriter(session) as writer:
        for reading in _readings(source, chosen, tally):
            span.add(reading.at, reading.celsius, window)
            writer.add((shipment_id, file_id, reading.logger_id, reading.at, reading.celsius, reading.line))
            if evaluator:
                evaluator.feed(reading)
            if progress and span.count % BATCH_ROWS == 0:
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
        skipped=ledger.canonical({"count": skipped_count, "rows": [
            {"line": p.line, "column": p.column, "why": p.why} for p in skipped]}))
    session.add(result)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id=file.id,
                 action="create", reason=f"Logger file for shipment {shipment_id} ({via})",
                 changes={"sha256": (None, sha), "filename": (None, file.filename),
                          "readings": (None, span.count)})
    _heard_from(session, shipment_id, span.last)
    fed = {chosen.serial: evaluator.result()} if evaluator else None
    raised = raise_alarms(session=session, now=now, view=view, fed=fed)
    return Stored(file, True, result, raised)


def _heard_from(session: Session, shipment_id: int, last: datetime | None) -> None:
    """Newer readings: the shipment's loggers are heard from again, so a later silence is
    watched for (and alarmed) anew. Conditional: only ever moves forward."""
    if last is None:
        return
    session.execute(update(Shipment).where(
        col(Shipment.id) == shipment_id,
        or_(col(Shipment.last_reading_at).is_(None), col(Shipment.last_reading_at) < last))
        .values(last_reading_at=last, silence_alarm_id=None))


def record_refusal(*, session: Session, now: datetime, actor: Actor, shipment_id: int,
                   filename: str, stream: IO[bytes], reason: str) -> None:
    """Keep a refused upload in the audit trail (call after rolling the upload back)."""
    try:
        sha256, size = digest(stream)
    except (OSError, ValueError):  # a stream that cannot be read again: still log the attempt
        sha256, size = None, None
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id="refused",
                 action="refuse", reason=reason[:2000],
                 changes={"shipment": (None, shipment_id), "filename": (None, filename[:255]),
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


class ReadingWriter:
    """Appends readings in the session's transaction: on PostgreSQL one COPY for the whole
    file (the server stores rows while the file is still being read), elsewhere executemany
    in batches. A context manager: leaving it with an exception abandons the rows (the
    COPY fails, the caller rolls back); no other statement may run on the session inside."""

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.rows: list[tuple[Any, ...]] = []
        self._stack = ExitStack()
        self._copy: Any = None
        if self.connection.dialect.name == "postgresql":
            raw = self.connection.connection.driver_connection
            cursor = self._stack.enter_context(raw.cursor())  # type: ignore[union-attr]
            self._copy = self._stack.enter_context(cursor.copy(COPY_READINGS))

    def __enter__(self) -> ReadingWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self._flush()
        self._stack.__exit__(kind, error, trace)

    def add(self, row: tuple[Any, ...]) -> None:
        if self._copy is not None:
            self._copy.write_row(row)
            return
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.connection.exec_driver_sql(
                INSERT_READINGS,
                [(s, f, lg, sqlite_time(at), c, ln) for s, f, lg, at, c, ln in self.rows])
            self.rows.clear()


def sqlite_time(at: datetime) -> str:
    """A UTC time as SQLAlchemy writes it to SQLite, so stored and bound times compare."""
    if at.tzinfo is not UTC:  # the readers' times are in UTC already: no conversion
        at = at.astimezone(UTC)
    return at.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


# ------------------------------------------------------------------ evaluation


@dataclass
class LoggerSeries:
    serial: str
    evaluation: Evaluation
    buckets: list[chart.Bucket] | None  # thinned for the chart


@dataclass
class ShipmentEvaluation:
    view: ShipmentView
    profile: Profile
    window: tuple[datetime, datetime]
    series: list[LoggerSeries]
    budget: Budget
    files: list[tuple[LoggerFile, LoggerFileResult | None, User | None]]

    @property
    def breaches(self) -> list[Breach]:
        return [b for s in self.series for b in s.evaluation.breaches]


def profile_of(shipment: Shipment) -> Profile:
    """The profile as it was when the shipment was opened."""
    return Profile.from_rule(json.loads(shipment.profile_rule))


def evaluate(*, session: Session, now: datetime, view: ShipmentView, buckets: int | None = None,
             fed: Mapping[str, Evaluation] | None = None) -> ShipmentEvaluation:
    """Judge the shipment's readings against its profile, logger by logger, streaming from
    the database in time order; with `buckets`, thin each series for the chart on the way.
    `fed`: loggers already evaluated over all their stored readings (by `store`), by serial."""
    shipment = view.shipment
    profile = profile_of(shipment)
    window = window_of(shipment, now)
    files = [(f, session.get(LoggerFileResult, f.id), session.get(User, f.uploaded_by_id))
             for f in session.exec(select(LoggerFile).where(LoggerFile.shipment_id == shipment.id)
                                   .order_by(col(LoggerFile.id)))]
    firsts = [r.first_at for _f, r, _u in files if r and r.first_at]
    lasts = [r.last_at for _f, r, _u in files if r and r.last_at]
    chart_span = (min([window[0], *firsts]), max([window[1], *lasts]))
    series = [LoggerSeries(logger.serial, fed[logger.serial], None)
              if fed and logger.serial in fed and not buckets else
              _series(session, shipment, logger.serial, profile, window, chart_span, buckets,
                      _interval([f for f, _r, _u in files if f.logger_serial == logger.serial]))
              for logger in view.loggers]
    used = [_time_out(session, other, now) if other.id != shipment.id else
            max((s.evaluation.time_out_of_range for s in series), default=timedelta(0))
            for other in session.exec(select(Shipment).where(Shipment.case_id == shipment.case_id))]
    return ShipmentEvaluation(view, profile, window, series, stability_budget(profile, used), files)


def _points(session: Session, shipment_id: int, serial: str) -> Iterator[tuple[datetime, float, int]]:
    """The logger's readings for the shipment in time order; one reading per time (a file
    uploaded twice over the same period gives each reading once)."""
    # Streamed in batches (a server-side cursor on PostgreSQL). The options go on this
    # statement only: on the connection they would stay for every later statement.
    result = session.connection().execute(
        select(col(LoggerReading.at), col(LoggerReading.celsius), col(LoggerReading.line))
        .where(LoggerReading.shipment_id == shipment_id, LoggerReading.logger == serial)
        .order_by(col(LoggerReading.at), col(LoggerReading.id))
        .execution_options(stream_results=True, yield_per=10_000))
    last = None
    for at, celsius, line in result:
        if at != last:
            yield at, celsius, line
            last = at


def _series(session: Session, shipment: Shipment, serial: str, profile: Profile,
            window: tuple[datetime, datetime], chart_span: tuple[datetime, datetime] | None,
            buckets: int | None = None, interval: timedelta | None = None) -> LoggerSeries:
    # The window's end is judged (a logger that stopped early leaves a gap) only once the
    # shipment is received; before that the data simply has not arrived yet.
    evaluator = Evaluator(profile, window_start=window[0], window_end=shipment.received_at,
                          interval=interval, logger_id=serial)

    def fed() -> Iterator[tuple[datetime, float]]:
        for at, celsius, line in _points(session, shipment.id, serial):  # type: ignore[arg-type]
            evaluator.feed(Reading(at, celsius, serial, line))
            yield at, celsius

    kept = None
    if buckets and chart_span:
        kept = chart.thin(fed(), start=chart_span[0], end=chart_span[1], buckets=buckets)
    else:
        for _ in fed():
            pass
    return LoggerSeries(serial, evaluator.result(), kept)


def _interval(files: list[LoggerFile]) -> timedelta | None:
    """The logger's logging interval as its files state or show it (the longest, if they
    differ); None: the profile's default."""
    seconds = [json.loads(f.report).get("interval_s") for f in files]
    known = [s for s in seconds if s]
    return timedelta(seconds=max(known)) if known else None


def _time_out(session: Session, shipment: Shipment, now: datetime) -> timedelta:
    profile = profile_of(shipment)
    window = window_of(shipment, now)
    serials = session.exec(select(ShipmentLogger.serial).where(ShipmentLogger.shipment_id == shipment.id))
    files = list(session.exec(select(LoggerFile).where(LoggerFile.shipment_id == shipment.id)))
    return max((_series(session, shipment, serial, profile, window, None, None,
                        _interval([f for f in files if f.logger_serial == serial]))
                .evaluation.time_out_of_range for serial in serials), default=timedelta(0))


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


def alarms_of(*, session: Session, shipment_id: int) -> list[Alarm]:
    return list(session.exec(select(Alarm).where(Alarm.shipment_id == shipment_id)
                             .order_by(col(Alarm.raised_at).desc(), col(Alarm.id).desc())))


def check_readings_document(body: bytes) -> None:
    """A JSON body must be an object with a list of readings before it is read as a file."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidInput(f"The body is not JSON: {error}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("readings"), list):
        raise InvalidInput("Send {\"logger\": \"serial\", \"readings\": [{\"at\": ..., \"celsius\": ...}]}.",
                           [{"field": "readings", "message": "A list of readings is required."}])


def still_going_on(*, session: Session, now: datetime, alarm: Alarm) -> bool:
    """Does the latest data show the temperature breach behind `alarm` still going on (an
    excursion whose readings have not come back within limits)?"""
    if alarm.kind != "temperature" or alarm.shipment_id is None or not alarm.fingerprint:
        return False
    found = evaluate(session=session, now=now, view=view_of(session=session, shipment_id=alarm.shipment_id))
    return any(f"shipment:{alarm.shipment_id}:{breach.key}" == alarm.fingerprint and breach.ongoing
               for breach in found.breaches)
