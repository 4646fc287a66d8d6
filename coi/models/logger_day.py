"""The days of a daily-summary logger file."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Column, Date, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = ["LoggerDaySummary"]


class LoggerDaySummary(SQLModel, table=True):
    """One day of a daily-summary logger file (one that keeps each day's extremes and time in
    alarm instead of single readings), as the file states it: the date (the logger's local
    date), the lowest and highest °C, the minutes above / below / in alarm (None: the file
    does not say), the file's own limits where it states them, and the line it was read from.
    Points to the file like a reading does. Append-only."""

    __tablename__ = "logger_day_summary"
    __table_args__ = (UniqueConstraint("file_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    file_id: int = Field(foreign_key="logger_file.id", index=True)
    logger: str = Field(max_length=64)
    day: date = Field(sa_column=Column(Date, nullable=False))
    min_c: float | None = None
    max_c: float | None = None
    minutes_above: float | None = None
    minutes_below: float | None = None
    minutes_in_alarm: float | None = None
    low_limit_c: float | None = None
    high_limit_c: float | None = None
    line: int
