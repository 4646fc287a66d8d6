from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from coi.core.identifiers import CoiId
from coi.models.types import UTCDateTime

# enrolled: nothing after enrolment yet; in_progress: on its route; complete: infused.
CASE_STATES = ("enrolled", "in_progress", "complete")


class Case(SQLModel, table=True):
    """One therapy event for one patient. `coi` holds the 13 data characters of the COI
    identifier; the check character is computed wherever it is shown."""

    __tablename__ = "therapy_case"  # "case" is a reserved word in SQL
    # The overdue-step sweep reads only cases whose due time has not raised its alarm yet.
    __table_args__ = (Index("ix_therapy_case_due_unalarmed", "next_due_at",
                            sqlite_where=text("overdue_alarm_id IS NULL"),
                            postgresql_where=text("overdue_alarm_id IS NULL")),)

    id: int | None = Field(default=None, primary_key=True)
    coi: str = Field(max_length=13, unique=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    product_id: int = Field(foreign_key="product.id", index=True)
    route_id: int = Field(foreign_key="product_route.id")
    site_id: int = Field(foreign_key="site.id", index=True)  # the treating site
    manufacturing_site_id: int = Field(foreign_key="site.id", index=True)
    state: str = Field(max_length=32, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime, index=True)
    created_by_id: int = Field(foreign_key="app_user.id")
    # Where the case is on its route: a projection of its ledger, written in the same
    # transaction as the event, for lists and for the deadline sweeps (indexed due time).
    last_step: str = Field(default="enrol", max_length=40)
    last_step_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_step: str | None = Field(default=None, max_length=40, index=True)
    next_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # The alarm raised when `next_due_at` passed (no foreign key: alarms point at cases);
    # cleared when the next step is recorded, so the following due time is watched again.
    overdue_alarm_id: int | None = Field(default=None)


class CoiSequence(SQLModel, table=True):
    """The last serial number issued per facility and year. Incremented with a single
    UPDATE ... RETURNING, which the database serialises, so concurrent enrolments never
    draw the same number."""

    __tablename__ = "coi_sequence"

    facility_id: str = Field(max_length=5, primary_key=True)
    year: str = Field(max_length=2, primary_key=True)
    last_number: int = Field(default=0)


def coi_of(case: Case) -> CoiId:
    """The case's COI identifier (its check character computed, not stored)."""
    return CoiId(facility=case.coi[:5], year=case.coi[5:7], serial=case.coi[7:])


def case_sites(case: Case) -> tuple[int, int]:
    """The sites a case involves: its treating site and its manufacturing site."""
    return (case.site_id, case.manufacturing_site_id)
