"""Prometheus metrics: requests, scans, logger readings, notification failures, sweeps, and
the open alarms (read from the database when /metrics is scraped).

Under gunicorn every worker is its own process: with PROMETHEUS_MULTIPROC_DIR set (before
the process starts; prometheus_client reads it on import) each process writes its values to
files there and /metrics adds up the files of all of them, the scheduler's sweeps included
when it runs with the same directory. Without it, /metrics shows this process's values.

What is counted as done is counted once its transaction commits (`after_commit`): a scan
rolled back is not a scan."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

HTTP_REQUESTS = Counter("coi_http_requests", "HTTP requests answered, by Flask endpoint, method and status.",
                        ["endpoint", "method", "status"])
HTTP_DURATION = Histogram("coi_http_request_duration_seconds",
                          "Time from the start of a request to its answer, by Flask endpoint.",
                          ["endpoint"])
SCANS = Counter("coi_scans", "Custody scans recorded: accepted (reason 'none'), or refused, once "
                "per refusal reason (a scan refused for two reasons counts under both).",
                ["outcome", "reason"])
SWEEP_DURATION = Histogram("coi_sweep_duration_seconds", "Time a scheduler job took, by job.", ["job"],
                           buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
NOTIFICATION_FAILURES = Counter("coi_notification_failures",
                                "Notification attempts that failed, by channel; permanent: given up.",
                                ["channel", "permanent"])
READINGS_INGESTED = Counter("coi_readings_ingested", "Logger readings stored, by how they came in.",
                            ["via"])

PENDING = "coi.metrics.pending"  # Session.info key: counts waiting for the commit
ACCEPTED, REFUSED, NO_REASON = "accepted", "refused", "none"


# ---------------------------------------------------------------- counted at commit

def after_commit(session: Session, count: Callable[[], None]) -> None:
    """Run `count` when `session`'s transaction commits; forget it if it rolls back."""
    session.info.setdefault(PENDING, []).append(count)


# Both events fire for savepoints too (begin_nested): only the outermost transaction decides.
# A count made inside a savepoint that is rolled back stays pending; none is made there today.
def _committed(session: OrmSession) -> None:
    if not session.in_nested_transaction():
        for count in session.info.pop(PENDING, []):
            count()


def _rolled_back(session: OrmSession) -> None:
    if not session.in_nested_transaction():
        session.info.pop(PENDING, None)


# Once, when the module is imported (before any count can be pending), not on every count.
event.listen(OrmSession, "after_commit", _committed)
event.listen(OrmSession, "after_rollback", _rolled_back)


def count_scan(session: Session, refusal_codes: list[str]) -> None:
    """A scan recorded: accepted when there are no refusal codes."""
    if not refusal_codes:
        after_commit(session, SCANS.labels(outcome=ACCEPTED, reason=NO_REASON).inc)
    for code in dict.fromkeys(refusal_codes):
        after_commit(session, SCANS.labels(outcome=REFUSED, reason=code).inc)


def count_readings(session: Session, via: str, count: int) -> None:
    if count:
        after_commit(session, lambda: READINGS_INGESTED.labels(via=via).inc(count))


def count_notification_failure(channel: str, permanent: bool) -> None:
    """Called by the delivery job once it has committed the failed attempt."""
    NOTIFICATION_FAILURES.labels(channel=channel, permanent=str(permanent).lower()).inc()


def observe_sweep(job: str, seconds: float) -> None:
    SWEEP_DURATION.labels(job=job).observe(seconds)


# ---------------------------------------------------------------- requests

def count_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """One answered request (coi/views/metrics.py calls this at the end of each)."""
    HTTP_REQUESTS.labels(endpoint=endpoint, method=method, status=str(status)).inc()
    HTTP_DURATION.labels(endpoint=endpoint).observe(seconds)


# ---------------------------------------------------------------- exposition

class OpenAlarms(Collector):
    """coi_alarms_open{severity}: alarms open or acknowledged, counted in the database when
    scraped, so every worker (and no worker's memory) gives the same answer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        from coi.models import Alarm
        from coi.services.alarms import SEVERITY_RANK, STATE_FILTERS

        with Session(self.engine) as session:
            rows = session.exec(select(Alarm.severity, func.count(col(Alarm.id)))
                                .where(col(Alarm.state).in_(STATE_FILTERS["active"]))
                                .group_by(col(Alarm.severity))).all()
        counts: dict[str, int] = dict.fromkeys(SEVERITY_RANK, 0)
        counts.update({severity: count for severity, count in rows})
        family = GaugeMetricFamily("coi_alarms_open", "Alarms open or acknowledged, by severity.",
                                   labels=["severity"])
        for severity, count in counts.items():
            family.add_metric([severity], count)
        yield family

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only: no database query when registered


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(engine: Engine) -> bytes:
    """The text every scrape gets: the processes' counters and histograms (all workers' in
    multiprocess mode, else this process's with its default collectors), then the open
    alarms from the database."""
    if multiprocess_dir():
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
        values = generate_latest(processes)
    else:
        values = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(OpenAlarms(engine))
    return values + generate_latest(database)
