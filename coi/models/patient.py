from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class Patient(SQLModel, table=True):
    """A patient of one treating site. Name, date of birth and medical record number live
    only inside `phi` (encrypted); `mrn_index` is a keyed hash that lets the database refuse
    a second patient with the same MRN at the same site without ever seeing the MRN."""

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("site_id", "mrn_index"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    phi: str = Field(sa_type=Text)
    mrn_index: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(foreign_key="app_user.id")
