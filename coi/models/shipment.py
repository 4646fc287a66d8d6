from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from coi.core.vocabulary import SHIPMENT_LEGS
from coi.models.types import UTCDateTime

__all__ = ["SHIPMENT_LEGS", "SHIPMENT_STATES", "LoggerClockCheck", "LoggerFile", "LoggerFileChunk",
           "LoggerFileLink", "LoggerFileResult", "LoggerReading",
           "Shipment", "ShipmentLogger"]
# open: packed, not yet with the courier; in_transit: the courier has it; received: delivered.
SHIPMENT_STATES = ("open", "in_transit", "received")


class Shipment(SQLModel, table=True):
    """One leg of a case's journey in one shipper, watched by one or more loggers. The
    custody handoffs move it: the courier's receipt dispatches it, the delivery receipt
    receives it. `profile_rule` is a copy of the temperature profile as it was when the
    shipment was opened, so a later change of the profile does not rejudge it."""

    __tablename__ = "shipment"
    # The sweeps read only shipments not yet received nor alarmed.
    __table_args__ = (
        Index("ix_shipment_eta_unalarmed", "eta",
              sqlite_where=text("eta_alarm_id IS NULL AND received_at IS NULL"),
              postgresql_where=text("eta_alarm_id IS NULL AND received_at IS NULL")),
        Index("ix_shipment_silence_unalarmed", "last_reading_at",
              sqlite_where=text("silence_alarm_id IS NULL AND received_at IS NULL"),
              postgresql_where=text("silence_alarm_id IS NULL AND received_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="therapy_case.id", index=True)
    leg: str = Field(max_length=20)
    origin_site_id: int = Field(foreign_key="site.id", index=True)
    destination_site_id: int = Field(foreign_key="site.id", index=True)
    shipper_id: str | None = Field(default=None, max_length=64)
    profile: str = Field(max_length=40)
    profile_rule: str = Field(sa_type=Text)  # canonical JSON
    state: str = Field(default="open", max_length=20, index=True)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    opened_by_id: int = Field(foreign_key="app_user.id")
    eta: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    eta_alarm_id: int | None = Field(default=None)  # the alarm raised when the ETA passed
    # The newest reading received for it, and the alarm raised when its loggers fell silent
    # in transit (cleared when newer readings arrive, so a second silence is seen too).
    last_reading_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    silence_alarm_id: int | None = Field(default=None)


class ShipmentLogger(SQLModel, table=True):
    """A logger assigned to a shipment: its serial as the logger names itself in its files,
    and the zone its clock runs in (needed only for files that state no zone)."""

    __tablename__ = "shipment_logger"
    __table_args__ = (UniqueConstraint("shipment_id", "serial"),)

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    serial: str = Field(max_length=64, index=True)
    zone: str | None = Field(default=None, max_length=64)
    assigned_at: datetime = Field(sa_type=UTCDateTime)
    assigned_by_id: int = Field(foreign_key="app_user.id")


class LoggerClockCheck(SQLModel, table=True):
    """What a logger's own clock showed at a handoff scan, read off its display by the person
    scanning: the logger's clock offset (`offset_s`: logger time minus the scan's server
    time; positive, the logger runs fast). Files stored after it that state no offset of
    their own have their times corrected by the latest check. Append-only."""

    __tablename__ = "logger_clock_check"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    serial: str = Field(max_length=64)
    handoff: str = Field(max_length=10)  # dispatch, receive
    scan_at: datetime = Field(sa_type=UTCDateTime)  # the handoff scan's server time
    shown: str = Field(max_length=40)  # the time as entered, local to `zone`
    zone: str = Field(max_length=64)
    offset_s: float
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(foreign_key="app_user.id")

    @property
    def runs(self) -> str:
        """How the logger's clock runs, as people say it: "40 s fast", "on time"."""
        seconds = round(self.offset_s)
        return "on time" if seconds == 0 else f"{abs(seconds)} s {'fast' if seconds > 0 else 'slow'}"


class LoggerFile(SQLModel, table=True):
    """A logger file as uploaded: the original record. Its bytes are kept verbatim in
    `logger_file_chunk` and its SHA-256 is unique: the file and its readings are stored once,
    for the shipment it was first uploaded for (`shipment_id`, its readings' shipment too);
    the shipments it is judged for are its `logger_file_link`s (a logger that travelled two
    legs brings one file to both). `report` keeps what the reader found in its header
    (format, zone, interval, clock offset). Written before its readings; what was read from it
    follows in `logger_file_result`. Append-only."""

    __tablename__ = "logger_file"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    logger_serial: str = Field(max_length=64)
    sha256: str = Field(max_length=64, unique=True)
    filename: str = Field(max_length=255)
    size: int
    format: str = Field(max_length=40)
    via: str = Field(max_length=10)  # web, api, json, cli
    uploaded_at: datetime = Field(sa_type=UTCDateTime)
    uploaded_by_id: int = Field(foreign_key="app_user.id")
    report: str = Field(sa_type=Text)  # canonical JSON


class LoggerFileLink(SQLModel, table=True):
    """A stored logger file attached to a shipment, which is judged on the file's readings in
    its own window: one link for the shipment the file was first uploaded for, one more for
    each further leg the logger travelled. `logger_serial` is the logger as that shipment
    names it; `outside_window` counts the file's readings outside that shipment's window.
    The same file again for a linked shipment changes nothing. Append-only."""

    __tablename__ = "logger_file_link"
    __table_args__ = (UniqueConstraint("file_id", "shipment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    file_id: int = Field(foreign_key="logger_file.id")
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    logger_serial: str = Field(max_length=64)
    via: str = Field(max_length=10)  # web, api, json, cli
    linked_at: datetime = Field(sa_type=UTCDateTime)
    linked_by_id: int = Field(foreign_key="app_user.id")
    outside_window: int = 0


class LoggerFileResult(SQLModel, table=True):
    """What was read from a logger file, written once its readings are stored: how many,
    the span and range, duplicates dropped, rows skipped (with line and why), and readings
    outside the shipment's window. Append-only."""

    __tablename__ = "logger_file_result"

    file_id: int = Field(foreign_key="logger_file.id", primary_key=True)
    reading_count: int
    first_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    min_celsius: float | None = None
    max_celsius: float | None = None
    outside_window: int = 0
    duplicates: int = 0
    skipped: str = Field(sa_type=Text)  # canonical JSON: [{"line", "column", "why"}], and the count


class LoggerFileChunk(SQLModel, table=True):
    """The raw bytes of a logger file, in pieces of at most 1 MiB, so a large file is stored
    and read back without holding it in memory. Append-only."""

    __tablename__ = "logger_file_chunk"

    file_id: int = Field(foreign_key="logger_file.id", primary_key=True)
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LoggerReading(SQLModel, table=True):
    """One reading, pointing to the file it was read from and its line there. Append-only.
    Read by shipment, logger and time (the index), the way the evaluation and the chart
    walk them."""

    __tablename__ = "logger_reading"
    # The file index serves a file linked to a further shipment: its readings by file and time.
    __table_args__ = (Index("ix_logger_reading_series", "shipment_id", "logger", "at"),
                      Index("ix_logger_reading_file", "file_id", "at"))

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True))
    shipment_id: int = Field(foreign_key="shipment.id")
    file_id: int = Field(foreign_key="logger_file.id")
    logger: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
    celsius: float
    line: int
