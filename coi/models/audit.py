from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class AuditEntry(SQLModel, table=True):
    """One changed field of one master-data record. Append-only: the database refuses
    UPDATE and DELETE on this table (see the migration's triggers)."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_entity", "entity", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    actor_name: str = Field(max_length=200)
    entity: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    action: str = Field(max_length=16)  # create, update, delete
    field: str | None = Field(default=None, max_length=64)
    old_value: str | None = Field(default=None, sa_type=Text)
    new_value: str | None = Field(default=None, sa_type=Text)
    reason: str = Field(sa_type=Text)
    # The channel: "session 12", "token 7 (name)", "command line (os user)"; None before 0008.
    via: str | None = Field(default=None, max_length=120)


class AuditEntrySite(SQLModel, table=True):
    """A site an audit row concerns: readers see the rows of their own sites. Append-only."""

    __tablename__ = "audit_entry_site"

    entry_id: int = Field(foreign_key="audit_entry.id", primary_key=True)
    site_id: int = Field(foreign_key="site.id", primary_key=True, index=True)
