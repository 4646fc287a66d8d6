"""The scheduler's heartbeat: one row per run of a job group, so that silence can be seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime

SCHEDULER_GROUPS = ("sweeps", "notifications")


class SchedulerRun(SQLModel, table=True):
    """One run of a job group by the scheduler process (`flask coi scheduler`, or `--once`):
    when it started and finished on the app's clock, what each job found and which failed,
    and which process ran it. Operational data, not evidence: the sweep prunes old rows."""

    __tablename__ = "scheduler_run"
    __table_args__ = (  # "the latest finished sweep", asked by readiness and on every page
        Index("ix_scheduler_run_group_finished", "job_group", "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_group: str = Field(max_length=20)  # SCHEDULER_GROUPS
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime = Field(sa_type=UTCDateTime)
    found: str = Field(sa_type=Text)  # JSON: {job name: items found}, for the jobs that succeeded
    failed: str = Field(sa_type=Text)  # JSON: [job name], the jobs that raised and were rolled back
    host: str = Field(max_length=255)
    pid: int
