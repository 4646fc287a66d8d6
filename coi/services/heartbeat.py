"""The scheduler's heartbeat. Every run of a job group by the scheduler process is recorded
(`record_run`); the scheduler is silent when a group's latest finished run is older than two
of its intervals (`silence`): then deadlines go unchecked and nobody is told of alarms, and
readiness, a banner and the alarm pages say so. Old runs are pruned by the sweep itself
(`prune_runs`, one of the deadline jobs)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from coi.models import SCHEDULER_GROUPS, SchedulerRun

SILENT_AFTER_INTERVALS = 2  # one late run is a slow job; two missed in a row, a dead process
RUNS_KEPT = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Silence:
    """How a job group stands at a moment: `last` is when its latest run finished (None: it
    never ran); it is silent when that is longer ago than `allowed`."""

    group: str
    last: datetime | None
    allowed: timedelta
    silent: bool


def record_run(*, session: Session, group: str, started_at: datetime, finished_at: datetime,
               found: Mapping[str, int], failed: Iterable[str], host: str, pid: int) -> SchedulerRun:
    """One run of `group`: what each job that succeeded found, and the jobs that failed."""
    if group not in SCHEDULER_GROUPS:
        raise ValueError(f"unknown job group {group!r}")
    run = SchedulerRun(job_group=group, started_at=started_at, finished_at=finished_at,
                       found=json.dumps(dict(found), sort_keys=True),
                       failed=json.dumps(sorted(failed)), host=host[:255], pid=pid)
    session.add(run)
    session.flush()
    return run


def latest_finished(session: Session, group: str) -> datetime | None:
    """When `group`'s latest run finished (one indexed lookup), or None if it never ran."""
    return session.exec(select(SchedulerRun.finished_at).where(SchedulerRun.job_group == group)
                        .order_by(col(SchedulerRun.finished_at).desc()).limit(1)).first()


def silence(*, session: Session, now: datetime, group: str, interval: timedelta) -> Silence:
    """Is `group`, which runs every `interval`, silent at `now`? A run that finished exactly
    two intervals ago still counts as alive."""
    last = latest_finished(session, group)
    allowed = SILENT_AFTER_INTERVALS * interval
    return Silence(group=group, last=last, allowed=allowed,
                   silent=last is None or now - last > allowed)


def prune_runs(session: Session, now: datetime, *, kept: timedelta = RUNS_KEPT) -> int:
    """Forget runs that finished longer than `kept` before `now`; how many were forgotten.
    One statement per group, so each is served by the (group, finished) index."""
    cutoff = now - kept
    forgotten = 0
    for group in SCHEDULER_GROUPS:
        result = session.exec(delete(SchedulerRun).where(  # type: ignore[call-overload]
            col(SchedulerRun.job_group) == group, col(SchedulerRun.finished_at) < cutoff))
        forgotten += result.rowcount or 0
    return forgotten
