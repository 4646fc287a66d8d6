"""The scheduler's deadline sweep over 100,000 active cases, and the time from a deadline
passing to its alarm being visible.

Fills a fresh database (migrated by the app's own migrations) with N active cases spread
over the route, each with an apheresis bag whose shelf life runs, and one shipment in transit
per ten cases, with due times spread over the coming month: `--due` of them are past their
due time (and as many bags near expiry and shipments past their ETA), and as many were
alarmed before (they must not be read again). Then, in this one process:

- sweep: every deadline job once at `now` (`coi.jobs.deadline_jobs`), raising the due
  alarms, and the notify job writing their notifications: the work of one sweep interval;
- idle: the same jobs again at the same `now`, when nothing is left to do: the floor (index
  probes only) that every sweep pays however large the database grows;
- plans: each SELECT the sweep issued, captured as it was executed, with EXPLAIN (QUERY PLAN)
  on the same engine: each must read an index, never the whole table.

Then the latency: the real scheduler process (`flask coi scheduler`, sweep interval
`--interval` seconds) runs against the same database while deadlines are set a few seconds
ahead on the real clock; the time from each deadline to its alarm row being committed (what
the inbox reads) is measured by polling, and must be at most one interval.

    .venv/bin/python bench/sweep.py --engine sqlite|postgresql [--cases N] [--due N]
        [--interval S] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, event, func, insert, text, update  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

import coi.passwords  # noqa: E402
from bench.scan import DEFAULT_POSTGRES, log, master_data, scratch_database, secrets_config  # noqa: E402
from coi import jobs, migrate  # noqa: E402
from coi.core import alerting  # noqa: E402
from coi.core.phi import PatientIdentity, PhiCipher  # noqa: E402
from coi.db import for_writing, make_engine  # noqa: E402
from coi.models import Alarm, Case, Notification, Product, ProductRoute, Shipment, Unit  # noqa: E402
from coi.services import alarms, enrolment, users  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)  # the real clock: the scheduler process reads it
STEPS = ("pack", "pickup", "deliver_manufacturing", "manufacture", "release", "pickup_return",
         "deliver_treatment", "thaw", "infuse")
BATCH = 5000


def fill(engine: Engine, cases: int, due: int, now: datetime) -> dict[str, int]:
    """N cases with one bag each and a shipment in transit per ten; `due` of each kind due
    now and `due` alarmed before. Rows go in with executemany: only the sweep is measured."""
    coi.passwords.METHOD = "pbkdf2:sha256:1000"
    keys = secrets_config()
    cipher = PhiCipher([keys["PHI_KEYS"]], keys["PHI_INDEX_KEY"])
    rng = random.Random(20261122)  # noqa: S311 - reproducible fill, not security
    with Session(for_writing(engine), expire_on_commit=False) as session:
        sites = master_data(session, now - timedelta(days=60))
        staff = users.create_user(session=session, now=now, actor=None, username="staff",
                                  full_name="Staff", password="bench password 1", reason="bench")
        users.grant_role(session=session, now=now, actor=None, user_id=staff.id,  # type: ignore[arg-type]
                         site_id=sites["BOS"].id, role="site_staff", reason="bench")  # type: ignore[arg-type]
        actor = users.actor_for(session=session, user=staff)
        template = enrolment.enrol(session=session, now=now, actor=actor, cipher=cipher, site_code="BOS",
                                   product_code="CARTX", manufacturing_site_code="MFG",
                                   identity=PatientIdentity("Bench Patient", date(1970, 5, 1), "M-1"))
        product = session.exec(select(Product)).one()
        route = session.exec(select(ProductRoute)).one()
        session.commit()
        # One "old" alarm the alarmed-before rows point at (its id is all the sweep compares).
        old = alarms.raise_alarm(session=session, now=now - timedelta(days=1), kind="deadline",
                                 code="bench", severity="minor", summary="bench", rule={"rule": "bench"})
        session.commit()
        assert old is not None and old.id is not None

        def due_at(index: int) -> tuple[datetime, int | None]:
            if index < due:  # due now, not alarmed yet
                return now - timedelta(seconds=rng.randint(0, 3600)), None
            if index < 2 * due:  # due and alarmed before: the sweep must not read them
                return now - timedelta(hours=rng.randint(2, 200)), old.id
            return now + timedelta(seconds=rng.randint(60, 30 * 86400)), None

        counter = 0
        for start in range(0, cases, BATCH):
            rows, units, ships = [], [], []
            indexes = range(start, min(start + BATCH, cases))
            for index in indexes:
                counter += 1
                case_due, case_alarm = due_at(index)
                rows.append({"coi": f"A9999{26}{counter:06d}", "patient_id": template.patient_id,
                             "product_id": product.id, "route_id": route.id, "site_id": sites["BOS"].id,
                             "manufacturing_site_id": sites["MFG"].id, "state": "in_progress",
                             "created_at": now - timedelta(days=10), "created_by_id": staff.id,
                             "last_step": "collect", "last_step_at": now - timedelta(days=1),
                             "next_step": STEPS[index % len(STEPS)], "next_due_at": case_due,
                             "overdue_alarm_id": case_alarm})
            case_ids = list(session.scalars(insert(Case).returning(Case.id, sort_by_parameter_order=True),
                                            rows))
            for index, case_id in zip(indexes, case_ids, strict=True):
                check, warned = due_at((index * 7919) % cases)  # a different spread per kind
                if warned is not None:  # warned before: its next check is the expiry itself
                    check = now + timedelta(hours=rng.randint(1, 24))
                units.append({"serial": f"A9999{26}{index + 1:06d}A01", "case_id": case_id,
                              "kind": "apheresis_bag", "sequence": 1, "state": "collect",
                              "custodian_site_id": sites["BOS"].id, "created_at": now - timedelta(days=1),
                              "created_by_id": staff.id, "expires_at": check + timedelta(hours=24),
                              "expiry_check_at": check})
                if index % 10 == 0:
                    eta, eta_alarm = due_at((index * 104729) % cases)
                    ships.append({"case_id": case_id, "leg": "outbound",
                                  "origin_site_id": sites["BOS"].id, "destination_site_id": sites["MFG"].id,
                                  "profile": "2-8C", "profile_rule": "{}", "state": "in_transit",
                                  "opened_at": now - timedelta(hours=6), "opened_by_id": staff.id,
                                  "eta": eta, "eta_alarm_id": eta_alarm,
                                  "dispatched_at": now - timedelta(hours=5),
                                  # the first `due` shipments' loggers fell silent
                                  "last_reading_at": now - timedelta(minutes=rng.randint(61, 120)
                                                                     if index < 10 * due else
                                                                     rng.randint(1, 55))})
            session.execute(insert(Unit), units)
            if ships:
                session.execute(insert(Shipment), ships)
            session.commit()
        history(session, cases // 10, now, sites["BOS"].id)
        session.execute(text("ANALYZE"))  # fresh statistics, as autovacuum would have made
        session.commit()
        counts = {name: session.exec(select(func.count()).select_from(model)).one()
                  for name, model in (("cases", Case), ("units", Unit), ("shipments", Shipment))}
    return counts


def history(session: Session, count: int, now: datetime, site_id: int) -> None:
    """Alarms of the past, resolved: the alarm table of a platform that has run for a while."""
    for start in range(0, count, BATCH):
        session.execute(insert(Alarm), [
            {"kind": "deadline", "code": "step_overdue", "severity": "major", "state": "resolved",
             "raised_at": now - timedelta(days=30, minutes=n), "site_id": site_id, "summary": "past",
             "rule": "{}", "fingerprint": f"bench:past:{n}", "level": 0, "outcome": "accepted",
             "resolved_at": now - timedelta(days=29, minutes=n)}
            for n in range(start, min(start + BATCH, count))])
        session.commit()


class Statements:
    """The SELECTs a sweep sends, with their parameters, as executed."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.seen = engine, {}

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and " LIMIT " in statement.upper():
            self.seen.setdefault(statement, parameters)


def plans(engine: Engine, statements: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements.items():
            prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
            cursor.execute(prefix + statement, parameters)
            rows = cursor.fetchall()
            lines = [row[-1] if engine.dialect.name == "sqlite" else row[0] for row in rows]
            table = statement.replace("\n", " ").split(" FROM ", 1)[1].split()[0]
            found.append({"table": table, "plan": lines,
                          "full_scan": any(("SCAN " in line and "USING" not in line) or "Seq Scan" in line
                                           for line in lines)})
    finally:
        raw.close()
    return found


def timed_sweep(engine: Engine, now: datetime, settings: alerting.Alerting) -> tuple[float, dict[str, int]]:
    work = jobs.deadline_jobs(settings) | {"notify": jobs.notification_jobs(settings)["notify"]}
    found: dict[str, int] = {}
    started = time.perf_counter()
    for name, job in work.items():
        with Session(for_writing(engine)) as session:
            found[name] = job(session, now)
            session.commit()
    return time.perf_counter() - started, found


def latency(url: str, engine: Engine, interval: int, deadlines: int, env: dict[str, str]) -> dict[str, Any]:
    """The real scheduler process against the database; deadlines a few seconds ahead on the
    real clock; how long after each its alarm is committed."""
    with Session(for_writing(engine)) as session:
        ids = session.exec(select(Case.id).where(col(Case.next_due_at) > NOW + timedelta(days=1))
                           .order_by(col(Case.id)).limit(deadlines)).all()
        start = datetime.now(UTC)
        due = {case_id: start + timedelta(seconds=3 + n * interval * 0.7) for n, case_id in enumerate(ids)}
        for case_id, at in due.items():
            session.execute(update(Case).where(col(Case.id) == case_id).values(next_due_at=at))
        session.commit()
    process = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "flask", "--app", "wsgi", "coi", "scheduler"], cwd=ROOT,
        env=env | {"COI_DATABASE_URL": url, "COI_SWEEP_INTERVAL_SECONDS": str(interval)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: dict[int, float] = {}
    try:
        deadline = max(due.values()) + timedelta(seconds=3 * interval)
        while len(seen) < len(due) and datetime.now(UTC) < deadline:
            with engine.connect() as connection:
                rows = connection.execute(select(Alarm.case_id).where(
                    col(Alarm.case_id).in_(list(due)), col(Alarm.code) == "step_overdue")).scalars().all()
            now = datetime.now(UTC)
            for case_id in rows:
                seen.setdefault(case_id, (now - due[case_id]).total_seconds())
            time.sleep(0.05)
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    if len(seen) < len(due):
        raise SystemExit(f"only {len(seen)} of {len(due)} alarms appeared; scheduler said:\n"
                         + err.decode()[-2000:])
    delays = sorted(seen.values())
    return {"interval_s": interval, "deadlines": len(delays), "delays_s": [round(d, 2) for d in delays],
            "max_s": round(delays[-1], 2), "within_one_interval": delays[-1] <= interval}


def run(args: argparse.Namespace) -> dict[str, Any]:
    keys = secrets_config()
    with contextlib.ExitStack() as cleanup, tempfile.TemporaryDirectory() as work:
        url, _backends = scratch_database(args.engine, args.postgres_url, Path(work), cleanup)
        engine = make_engine(url)
        cleanup.callback(engine.dispose)
        migrate.upgrade(engine)
        log(f"filling {args.cases} cases ({args.due} of each kind due) ...")
        started = time.perf_counter()
        counts = fill(engine, args.cases, args.due, NOW)
        log(f"filled in {time.perf_counter() - started:.0f} s: {counts}")
        # Every alarm goes to one webhook: the notify job writes a notification for each.
        settings = alerting.Alerting(levels=alerting.DEFAULT.levels,
                                     webhooks=(alerting.Webhook("bench", "http://127.0.0.1:9/", "s" * 16),))
        with Statements(engine) as captured:
            sweep_s, found = timed_sweep(engine, NOW, settings)
        idle_s, idle = timed_sweep(engine, NOW, settings)
        with Session(engine) as session:
            raised = session.exec(select(func.count()).select_from(Alarm).where(
                col(Alarm.raised_at) == NOW)).one()
            written = session.exec(select(func.count()).select_from(Notification)).one()
        figures: dict[str, Any] = {
            "engine": args.engine, **counts, "due_each": args.due, "sweep_s": round(sweep_s, 3),
            "found": found, "alarms_raised": raised, "notifications": written,
            "idle_sweep_s": round(idle_s, 4), "idle_found": idle, "sweep_interval_s": 60,
            "sweep_share_of_interval": round(sweep_s / 60, 4),
            "plans": plans(engine, captured.seen)}
        env = {**os.environ, **{f"COI_{k}": v for k, v in keys.items()}}
        figures["latency"] = latency(url, engine, args.interval, args.deadlines, env)
        return figures


def report(figures: dict[str, Any]) -> str:
    lines = [f"engine {figures['engine']}: {figures['cases']} cases, {figures['units']} units, "
             f"{figures['shipments']} shipments in transit",
             f"one sweep with {figures['due_each']} due of each kind: {figures['sweep_s']:.3f} s "
             f"({figures['alarms_raised']} alarms: {figures['found']}, {figures['notifications']} "
             "notifications; "
             f"{figures['sweep_share_of_interval']:.2%} of a 60 s interval)",
             f"the same sweep with nothing left to do (the floor): {figures['idle_sweep_s'] * 1000:.1f} ms",
             "plans:"]
    for plan in figures["plans"]:
        mark = "   <-- FULL SCAN" if plan["full_scan"] else ""
        lines.append(f"  {plan['table']}: {' / '.join(plan['plan'])}{mark}")
    lat = figures["latency"]
    lines.append(f"deadline -> alarm visible, scheduler every {lat['interval_s']} s: max {lat['max_s']} s "
                 f"(all: {lat['delays_s']}); within one interval: {lat['within_one_interval']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("COI_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=100, help="items of each kind due at the sweep")
    parser.add_argument("--interval", type=int, default=5,
                        help="the scheduler's sweep interval for the latency")
    parser.add_argument("--deadlines", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args)
    print(json.dumps(figures, indent=2, default=str) if args.json else report(figures))
    bad = [p for p in figures["plans"] if p["full_scan"]]
    return 1 if bad or not figures["latency"]["within_one_interval"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
