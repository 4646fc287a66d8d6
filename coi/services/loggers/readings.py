"""The reading store: a file's readings appended in the upload's transaction, and read back
in time order (one per time) for judging and charting. Readings are evidence: appended,
never changed (the table's triggers refuse updates and deletes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from coi.models import LoggerFile, LoggerFileLink, LoggerReading, Shipment

BATCH_ROWS = 5000
COPY_READINGS = "COPY logger_reading (shipment_id, file_id, logger, at, celsius, line) FROM STDIN"
INSERT_READINGS = ("INSERT INTO logger_reading (shipment_id, file_id, logger, at, celsius, line) "
                   "VALUES (?, ?, ?, ?, ?, ?)")


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


def points(session: Session, shipment_id: int, serial: str) -> Iterator[tuple[datetime, float, int]]:
    """The logger's readings for the shipment in time order: those of the files stored for
    it, and those of files stored for another leg and linked to it; one reading per time (a
    file uploaded twice over the same period gives each reading once)."""
    # Readings are stored once, with the shipment their file was first stored for; a file
    # linked from another leg is read by its id (ix_logger_reading_file).
    linked = session.exec(select(LoggerFileLink.file_id).join(
        LoggerFile, col(LoggerFile.id) == LoggerFileLink.file_id).where(
        LoggerFileLink.shipment_id == shipment_id, LoggerFileLink.logger_serial == serial,
        LoggerFile.shipment_id != shipment_id)).all()
    own = and_(col(LoggerReading.shipment_id) == shipment_id, col(LoggerReading.logger) == serial)
    # Streamed in batches (a server-side cursor on PostgreSQL). The options go on this
    # statement only: on the connection they would stay for every later statement.
    result = session.connection().execute(
        select(col(LoggerReading.at), col(LoggerReading.celsius), col(LoggerReading.line))
        .where(or_(own, col(LoggerReading.file_id).in_(linked)) if linked else own)
        .order_by(col(LoggerReading.at), col(LoggerReading.id))
        .execution_options(stream_results=True, yield_per=10_000))
    last = None
    for at, celsius, line in result:
        if at != last:
            yield at, celsius, line
            last = at


def heard_from(session: Session, shipment_id: int, last: datetime | None) -> None:
    """Newer readings: the shipment's loggers are heard from again, so a later silence is
    watched for (and alarmed) anew. Conditional: only ever moves forward."""
    if last is None:
        return
    session.execute(update(Shipment).where(
        col(Shipment.id) == shipment_id,
        or_(col(Shipment.last_reading_at).is_(None), col(Shipment.last_reading_at) < last))
        .values(last_reading_at=last, silence_alarm_id=None))


def of_file(session: Session, file_id: int) -> Iterator[tuple[datetime, float]]:
    """A stored file's readings in time order (to judge the file for another leg)."""
    result = session.connection().execute(
        select(col(LoggerReading.at), col(LoggerReading.celsius))
        .where(LoggerReading.file_id == file_id).order_by(col(LoggerReading.at))
        .execution_options(stream_results=True, yield_per=10_000))
    yield from result  # rows unpack as (at, celsius)
