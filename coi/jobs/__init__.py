"""The scheduler's jobs. Each body is a plain function `f(session, now) -> found_work` (settings
bound by keyword), so tests call them directly with a frozen clock; `run` gives one a session
and the time and commits what it did. The process that runs them on a timer is
`flask coi scheduler` (coi/cli.py), never a web worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Engine
from sqlmodel import Session

from coi import metrics
from coi.core.alerting import Alerting
from coi.core.clock import Clock
from coi.db import for_writing
from coi.jobs.sweeps import expiring_units, late_shipments, overdue_steps, silent_loggers
from coi.services import alarms, delivery, heartbeat

log = logging.getLogger(__name__)

Job = Callable[[Session, datetime], int]


def deadline_jobs(settings: Alerting, *, runs_kept: timedelta = heartbeat.RUNS_KEPT) -> dict[str, Job]:
    """Deadlines and escalation, run every sweep interval; the sweep also forgets the
    scheduler's own runs older than `runs_kept` (its heartbeat)."""
    return {
        "overdue_steps": overdue_steps,
        "late_shipments": late_shipments,
        "silent_loggers": partial(silent_loggers, settings=settings),
        "expiring_units": expiring_units,
        "escalate": partial(alarms.escalate, settings=settings),
        "old_scheduler_runs": partial(heartbeat.prune_runs, kept=runs_kept),
    }


def notification_jobs(settings: Alerting) -> dict[str, Job]:
    """Notifications written for alarm changes, then sent: run every delivery interval."""
    return {
        "notify": partial(alarms.notify, settings=settings),
        "deliver": partial(delivery.deliver, settings=settings),
    }


def run(engine: Engine, clock: Clock, jobs: dict[str, Job]) -> dict[str, int]:
    """Run each job in its own transaction at one reading of the clock; a job that fails is
    logged and rolled back, and the others still run."""
    now = clock.now()
    found: dict[str, int] = {}
    for name, job in jobs.items():
        started = time.monotonic()
        # A writing session: on SQLite it takes the write lock at its start (BEGIN IMMEDIATE),
        # so a job waits its turn behind another writer instead of failing on the upgrade.
        with Session(for_writing(engine)) as session:
            try:
                found[name] = job(session, now)
                session.commit()
            except Exception:
                session.rollback()
                log.exception("job %s failed; it runs again at the next interval", name)
                continue
        seconds = time.monotonic() - started
        metrics.observe_sweep(name, seconds)
        if found[name]:
            log.info("%s: %d found in %.0f ms", name, found[name], seconds * 1000)
    return found
