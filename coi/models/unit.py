from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from coi.core.identifiers import UNIT_KIND_CODES, CoiId, UnitSerial
from coi.models.types import UTCDateTime

UNIT_STATES = ("registered",)  # the custody route adds the states that follow


class Unit(SQLModel, table=True):
    """One physical container. `serial` holds the 16 data characters of its serial; the
    first 13 are its case's COI identifier, so a scan names the case without a lookup."""

    __tablename__ = "unit"
    __table_args__ = (UniqueConstraint("case_id", "kind", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=16, unique=True)
    case_id: int = Field(foreign_key="therapy_case.id", index=True)
    kind: str = Field(max_length=32)
    sequence: int
    state: str = Field(max_length=32)
    custodian_site_id: int = Field(foreign_key="site.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(foreign_key="app_user.id")
    # Shelf life (the route's [shelf_life]), from the step that fills or makes the unit.
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the expiry sweep must next look at it: the warning time, then the expiry itself;
    # None when nothing is left to warn of (or the unit is used up).
    expiry_check_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


def serial_of(unit: Unit) -> UnitSerial:
    """The unit's serial; its first 13 characters are its case's COI identifier."""
    return UnitSerial(coi=CoiId(facility=unit.serial[:5], year=unit.serial[5:7],
                                serial=unit.serial[7:13]),
                      kind_code=UNIT_KIND_CODES[unit.kind], sequence=unit.sequence)
