from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class Site(SQLModel, table=True):
    __tablename__ = "site"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    kinds: str = Field(max_length=120)  # space-separated members of SITE_KINDS
    timezone: str = Field(max_length=64)  # IANA name, e.g. Europe/Berlin
    facility_id: str | None = Field(default=None, max_length=5, unique=True)  # COI issuer
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=UTCDateTime)

    @property
    def kind_set(self) -> frozenset[str]:
        return frozenset(self.kinds.split())
