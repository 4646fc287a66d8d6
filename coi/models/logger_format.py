"""Saved column mappings: how to read logger files of one shape that detection cannot place."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class LoggerFormat(SQLModel, table=True):
    """A named column mapping for logger files of one layout, found again by the layout's
    fingerprint (`coldchain.layout_of`). Master data: created and retired with audit entries,
    never edited; a new mapping for the same layout retires the one before it, so at most one
    is in use per fingerprint."""

    __tablename__ = "logger_format"
    __table_args__ = (  # at most one mapping in use per layout, whoever writes it
        Index("ux_logger_format_in_use", "fingerprint", unique=True,
              sqlite_where=text("retired_at IS NULL"), postgresql_where=text("retired_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    fingerprint: str = Field(max_length=64, index=True)
    mapping: str = Field(sa_type=Text)  # canonical JSON, as coldchain.mapping_document writes it
    columns: str = Field(sa_type=Text)  # canonical JSON: the header's names when it was saved
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(foreign_key="app_user.id")
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retired_by_id: int | None = Field(default=None, foreign_key="app_user.id")
