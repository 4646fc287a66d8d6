"""The scheduler's job groups run and recorded: `run_recorded` is what `flask coi scheduler`
runs on its timers (and once with `--once`). The recording wraps `coi.jobs.run` rather than
living in it, so that the job bodies stay callable alone: the demo replays four days of
sweeps by calling them at simulated times, and those replays are not recorded, since the
heartbeat says whether a scheduler process is alive now, not what a loader simulated."""

from __future__ import annotations

import logging
import os
import socket

from sqlalchemy import Engine
from sqlmodel import Session

from coi.core.clock import Clock
from coi.db import for_writing
from coi.jobs import Job, run
from coi.services import heartbeat

log = logging.getLogger(__name__)


def run_recorded(engine: Engine, clock: Clock, group: str, jobs: dict[str, Job]) -> dict[str, int]:
    """Run `jobs` (`coi.jobs.run`: each job in its own transaction, a failing one rolled back
    and the others still run), then record the run of `group`: started and finished on
    `clock`, what each job found, which failed, this host and process."""
    started = clock.now()
    found = run(engine, clock, jobs)
    try:
        with Session(for_writing(engine)) as session:
            heartbeat.record_run(session=session, group=group, started_at=started,
                                 finished_at=clock.now(), found=found,
                                 failed=[name for name in jobs if name not in found],
                                 host=socket.gethostname(), pid=os.getpid())
            session.commit()
    except Exception:
        # Not recorded means the heartbeat goes silent: readiness and the banner say so,
        # which is the truth when the database cannot be written.
        log.exception("the %s run could not be recorded", group)
    return found
