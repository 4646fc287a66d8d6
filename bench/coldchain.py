"""Logger-file ingest end to end, against the raw limit of the same rows in the same run.

Generates one plain CSV export of N readings (one a minute, 2-8 C with a few excursions),
then, each in a fresh process with a fresh database:

- app: `coi.services.loggers.intake.store` on the file (read, normalise, store the readings and the
  file, evaluate the shipment, raise alarms) in one session, and the commit;
- raw: `csv.reader` over the same file, `datetime.fromisoformat` and `float`, and
  `executemany` of the same six columns into `logger_reading` in batches of 5,000 on the raw
  DBAPI connection, and the commit;
- raw-copy (PostgreSQL only): the same rows through one `COPY ... FROM STDIN`.

Reports readings/s, the ratio app/raw, and each phase's peak RSS growth. `--memory-check`
also runs the app phase at N/10 readings, and once at 100,000 under tracemalloc to name what
holds memory at the highest point. See bench/README.md.

    .venv/bin/python bench/coldchain.py --engine sqlite|postgresql [--readings N]
        [--memory-check] [--profile P] [--json]

Run from the repository root. PostgreSQL: --postgres-url names a server where the user may
create databases (default: COI_BENCH_POSTGRES_URL, else postgresql+psycopg://postgres@
127.0.0.1:5432/test); each phase makes a scratch database and drops it after.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import gc
import io
import itertools
import json
import math
import os
import pstats
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, func  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

import coi.passwords  # noqa: E402
from bench.scan import DEFAULT_POSTGRES, log, master_data, scratch_database, secrets_config  # noqa: E402
from coi import migrate  # noqa: E402
from coi.core.access import Actor  # noqa: E402
from coi.core.phi import PatientIdentity, PhiCipher  # noqa: E402
from coi.db import for_writing, make_engine  # noqa: E402
from coi.models import (  # noqa: E402
    LoggerFile,
    LoggerReading,
    coi_of,  # noqa: E402
)
from coi.services import enrolment, shipments, users  # noqa: E402
from coi.services.loggers import evaluation, intake, rawfiles  # noqa: E402
from coi.services.loggers.readings import sqlite_time  # noqa: E402
from coi.services.shipments import LoggerSpec, visible_shipment  # noqa: E402
from coldchain import load_profiles  # noqa: E402

SERIAL = "LOG-BENCH-1"
OPENED = datetime(2026, 1, 1, tzinfo=UTC)  # the shipment opens; the first reading is a minute later
INTERVAL = timedelta(seconds=60)
HEADER = "Date Time,Temperature (°C)"
# (where in the file, minutes at 9.5 C): a single excursion over the profile's 30 minutes,
# and the cumulative 60 minutes and the case's budget of 120 minutes used up.
EXCURSIONS = ((0.2, 20), (0.4, 45), (0.6, 20), (0.8, 90))
COLUMNS = "shipment_id, file_id, logger, at, celsius, line"  # of logger_reading, as the app writes
RAW_BATCH = 5000
MEMORY_TRACE_READINGS = 100_000
MIB = 1024  # ru_maxrss is in KiB on Linux


def now_after(readings: int) -> datetime:
    """The upload's time: a minute after the last reading, so every reading is in the window."""
    return OPENED + INTERVAL * (readings + 1)


# ---------------------------------------------------------------- the file


def generate(path: Path, readings: int) -> None:
    """A plain export: UTC wall-clock times without a zone, one reading a minute, a smooth
    daily curve between 3.5 and 6.5 C, and the EXCURSIONS above 8 C."""
    starts = {int(readings * where): minutes for where, minutes in EXCURSIONS}
    warm_until = -1
    wall_clock = OPENED.replace(tzinfo=None)  # isoformat() then writes no zone
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\r\n")
        for i in range(readings):
            if i in starts:
                warm_until = i + starts[i]
            celsius = 9.5 if i < warm_until else 5.0 + 1.5 * math.sin(2 * math.pi * i / 1440)
            out.write(f"{(wall_clock + INTERVAL * (i + 1)).isoformat(' ')},{celsius:.1f}\r\n")


# ---------------------------------------------------------------- one phase (child process)


@dataclass(frozen=True)
class World:
    shipment_id: int
    courier: Actor  # uploads the file


def build_world(engine: Engine) -> World:
    """Sites, product, route, a site_staff and a courier, one enrolled case and its outbound
    shipment with one logger (zone UTC), opened a minute before the first reading."""
    coi.passwords.METHOD = "pbkdf2:sha256:1000"  # a handful of users: no need for the slow hash
    keys = secrets_config()
    cipher = PhiCipher([keys["PHI_KEYS"]], keys["PHI_INDEX_KEY"])
    with Session(for_writing(engine), expire_on_commit=False) as session:
        sites = master_data(session, OPENED)

        def person(username: str, site: str, role: str) -> Actor:
            user = users.create_user(session=session, now=OPENED, actor=None, username=username,
                                     full_name=username.title(), password="bench password 1",
                                     reason="bench")
            assert user.id is not None and sites[site].id is not None
            users.grant_role(session=session, now=OPENED, actor=None, user_id=user.id,
                             site_id=sites[site].id, role=role, reason="bench")  # type: ignore[arg-type]
            return users.actor_for(session=session, user=user)

        staff, courier = person("staff", "BOS", "site_staff"), person("courier", "DEP", "courier")
        case = enrolment.enrol(session=session, now=OPENED, actor=staff, cipher=cipher, site_code="BOS",
                               product_code="CARTX", manufacturing_site_code="MFG",
                               identity=PatientIdentity("Bench Patient", date(1970, 5, 1), "M-1"))
        shipment = shipments.open_shipment(
            session=session, now=OPENED, actor=staff, profiles=load_profiles(), coi_text=coi_of(case).text,
            leg="outbound", loggers=[LoggerSpec(SERIAL, "UTC")], shipper_id="SHIP-1", profile_name=None,
            eta=OPENED + timedelta(days=2))
        session.commit()
        assert shipment.id is not None
        return World(shipment.id, courier)


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_growth(before: int) -> dict[str, float]:
    after = peak_rss_kib()
    return {"peak_rss_before_mib": round(before / MIB, 1), "peak_rss_after_mib": round(after / MIB, 1),
            "peak_rss_growth_mib": round((after - before) / MIB, 1)}


def phase_app(engine: Engine, world: World, path: Path, readings: int,
              around: contextlib.AbstractContextManager[Any] | None = None) -> dict[str, Any]:
    """The full path, timed from `store` to the end of the commit (`around` wraps that part:
    a profiler or tracemalloc); then the evaluation alone."""
    now = now_after(readings)
    marks: list[float] = []  # when `progress` was called: the last one is after the readings

    def progress(_count: int) -> None:
        marks.append(time.perf_counter())

    gc.collect()
    before = peak_rss_kib()
    with (Session(for_writing(engine), expire_on_commit=False) as session, path.open("rb") as stream,
          around or contextlib.nullcontext()):
        start = time.perf_counter()
        stored = intake.store(session=session, now=now, actor=world.courier, shipment_id=world.shipment_id,
                               stream=stream, filename=path.name, via="cli", progress=progress)
        returned = time.perf_counter()
        session.commit()
        seconds = time.perf_counter() - start
        assert stored.result is not None
        stored_count, alarms = stored.result.reading_count, len(stored.alarms)
    split = {"readings_s": round(marks[-1] - start, 3),
             "file_result_evaluation_s": round(returned - marks[-1], 3),
             "commit_s": round(start + seconds - returned, 3)}
    figures: dict[str, Any] = {"seconds": round(seconds, 3), "per_second": round(readings / seconds),
                               "split": split, **rss_growth(before)}
    with Session(engine) as session:
        view = visible_shipment(session=session, actor=world.courier, shipment_id=world.shipment_id)
        start = time.perf_counter()
        found = evaluation.evaluate(session=session, now=now, view=view)
        figures["evaluate_alone_s"] = round(time.perf_counter() - start, 3)
        in_table = session.exec(select(func.count()).select_from(LoggerReading)).one()
    figures["checks"] = {"readings_stored": stored_count, "rows_in_table": in_table,
                         "breaches": len(found.breaches), "alarms_raised": alarms}
    figures["ok"] = stored_count == in_table == readings and alarms > 0
    return figures


def file_row(engine: Engine, world: World, path: Path) -> int:
    """The LoggerFile row the raw readings point to (not timed)."""
    with Session(for_writing(engine)) as session, path.open("rb") as stream:
        sha256, size = rawfiles.digest(stream)
        file = LoggerFile(shipment_id=world.shipment_id, logger_serial=SERIAL, sha256=sha256,
                          filename=path.name, size=size, format="delimited", via="cli",
                          uploaded_at=now_after(0), uploaded_by_id=world.courier.user_id, report="{}")
        session.add(file)
        session.commit()
        assert file.id is not None
        return file.id


def raw_rows(path: Path, shipment_id: int, file_id: int,
             time_of: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    """The file's rows as the six columns, read with nothing but the csv module."""
    with path.open(encoding="utf-8", newline="") as text:
        lines = csv.reader(text)
        next(lines)
        for line, (at, celsius) in enumerate(lines, start=2):
            yield (shipment_id, file_id, SERIAL, time_of(datetime.fromisoformat(at).replace(tzinfo=UTC)),
                   float(celsius), line)


def batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    while batch := list(itertools.islice(rows, RAW_BATCH)):
        yield batch


def phase_raw(engine: Engine, world: World, path: Path, readings: int, copy: bool) -> dict[str, Any]:
    """The limit: the same rows into the same table, timed from opening the file to the end
    of the commit, on the raw DBAPI connection (the engine's, with its SQLite pragmas)."""
    file_id = file_row(engine, world, path)
    pooled = engine.raw_connection()
    raw: Any = pooled.driver_connection
    try:
        gc.collect()
        before = peak_rss_kib()
        start = time.perf_counter()
        if engine.dialect.name == "sqlite":
            with contextlib.closing(raw.cursor()) as cursor:
                cursor.execute("BEGIN IMMEDIATE")  # as the app's writing sessions begin
                for batch in batches(raw_rows(path, world.shipment_id, file_id, sqlite_time)):
                    cursor.executemany(f"INSERT INTO logger_reading ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                                       batch)
        elif copy:
            with raw.cursor() as cursor, cursor.copy(f"COPY logger_reading ({COLUMNS}) FROM STDIN") as out:
                for row in raw_rows(path, world.shipment_id, file_id, lambda at: at):
                    out.write_row(row)
        else:
            with raw.cursor() as cursor:
                for batch in batches(raw_rows(path, world.shipment_id, file_id, lambda at: at)):
                    cursor.executemany(f"INSERT INTO logger_reading ({COLUMNS}) VALUES "
                                       "(%s, %s, %s, %s, %s, %s)", batch)
        raw.commit()
        seconds = time.perf_counter() - start
        figures: dict[str, Any] = {"seconds": round(seconds, 3), "per_second": round(readings / seconds),
                                   **rss_growth(before)}
    finally:
        pooled.close()
    with Session(engine) as session:
        in_table = session.exec(select(func.count()).select_from(LoggerReading)).one()
    figures["checks"] = {"rows_in_table": in_table}
    figures["ok"] = in_table == readings
    return figures


class PeakSnapshots:
    """tracemalloc, sampled from a thread: keeps the snapshot taken at the highest traced
    memory (a new snapshot each time it grows by a tenth)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.best, self.peak = interval, 0, 0
        self.snapshot: tracemalloc.Snapshot | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(self.interval):
            current, _peak = tracemalloc.get_traced_memory()
            if current > self.best * 1.1:
                self.best, self.snapshot = current, tracemalloc.take_snapshot()

    def __enter__(self) -> PeakSnapshots:
        tracemalloc.start()
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    def top(self, count: int = 10) -> list[str]:
        if self.snapshot is None:
            return []
        stats = self.snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]
                                            ).statistics("lineno")
        return [f"{stat.size / MIB / MIB:7.2f} MiB {stat.count:>8} blocks  {_where(stat.traceback[0])}"
                for stat in stats[:count]]


def _where(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    for prefix in (f"{ROOT}/", "site-packages/"):
        if prefix in name:
            name = name.split(prefix, 1)[1]
    return f"{name}:{frame.lineno}"


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="coi-bench-")))
        url, _backends = scratch_database(args.engine, args.postgres_url, workdir, cleanup)
        engine = make_engine(url)
        cleanup.callback(engine.dispose)
        migrate.upgrade(engine)
        world = build_world(engine)
        path = Path(args.file)
        if args.phase != "app":
            return phase_raw(engine, world, path, args.readings, copy=args.phase == "raw-copy")
        if args.tracemalloc:
            traced = PeakSnapshots()
            figures = phase_app(engine, world, path, args.readings, traced)
            return {**figures, "traced_peak_mib": round(traced.peak / MIB / MIB, 1), "top": traced.top()}
        if args.cprofile:
            profiler = cProfile.Profile()
            figures = phase_app(engine, world, path, args.readings, profiler)
            return {**figures, "cprofile": profile_text(profiler)}
        return phase_app(engine, world, path, args.readings)


def profile_text(profiler: cProfile.Profile, top: int = 15) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------- the run (parent process)


def child(args: argparse.Namespace, phase: str, path: Path, readings: int, *extra: str) -> dict[str, Any]:
    """One phase in a fresh process: its peak RSS is its own."""
    command = [sys.executable, __file__, "--phase", phase, "--file", str(path), "--readings", str(readings),
               "--engine", args.engine, "--postgres-url", args.postgres_url, *extra]
    log(f"{phase} at {readings:,} readings {' '.join(extra)}...")
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            out, _err = process.communicate()
        except BaseException:
            process.terminate()  # the child drops its database on SIGTERM
            process.wait()
            raise
    if process.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit status {process.returncode})")
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    log(f"  {figures['per_second']:,} readings/s, peak RSS +{figures['peak_rss_growth_mib']} MiB")
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coi-bench-coldchain-") as workdir:
        files: dict[int, Path] = {}

        def file_of(readings: int) -> Path:
            if readings not in files:
                files[readings] = Path(workdir) / f"logger-{readings}.csv"
                start = time.perf_counter()
                generate(files[readings], readings)
                log(f"generated {readings:,} readings ({files[readings].stat().st_size / MIB / MIB:.1f} MiB) "
                    f"in {time.perf_counter() - start:.1f} s")
            return files[readings]

        big = file_of(args.readings)
        figures: dict[str, Any] = {
            "engine": args.engine, "readings": args.readings,
            "file_mib": round(big.stat().st_size / MIB / MIB, 1), "cpus": os.cpu_count(),
            "load_average_before": round(os.getloadavg()[0], 2)}
        phases = ("app", "raw", "raw-copy") if args.engine == "postgresql" else ("app", "raw")
        for phase in phases:
            figures[phase] = child(args, phase, big, args.readings)
        figures["ratio"] = round(figures["app"]["per_second"] / figures["raw"]["per_second"], 3)
        if "raw-copy" in figures:
            figures["ratio_copy"] = round(figures["app"]["per_second"] / figures["raw-copy"]["per_second"], 3)
        if args.memory_check:
            tenth = args.readings // 10
            figures["app_tenth"] = child(args, "app", file_of(tenth), tenth)
            traced = min(MEMORY_TRACE_READINGS, args.readings)
            figures["app_traced"] = child(args, "app", file_of(traced), traced, "--tracemalloc")
        if args.profile:
            figures["app_profiled"] = child(args, "app", file_of(args.profile), args.profile, "--cprofile")
        figures["load_average_after"] = round(os.getloadavg()[0], 2)
    figures["ok"] = all(value["ok"] for value in figures.values() if isinstance(value, dict))
    return figures


def stored_count(phase: dict[str, Any]) -> int:
    return int(phase["checks"]["readings_stored"])


def report(figures: dict[str, Any]) -> str:
    n = figures["readings"]
    lines = [f"engine {figures['engine']}, {n:,} readings ({figures['file_mib']} MiB CSV), "
             f"{figures['cpus']} CPUs; 1-min load average {figures['load_average_before']} before, "
             f"{figures['load_average_after']} after", "",
             f"{'phase':<34} {'seconds':>8} {'readings/s':>11} {'peak RSS':>9} {'growth':>7}"]
    names = {"app": "app: intake.store + commit", "raw": "raw: csv + executemany + commit",
             "raw-copy": "raw: csv + COPY + commit", "app_tenth": f"app at {n // 10:,} readings"}
    for key, name in names.items():
        if key in figures:
            p = figures[key]
            lines.append(f"{name:<34} {p['seconds']:>8.2f} {p['per_second']:>11,} "
                         f"{p['peak_rss_after_mib']:>6.0f} MiB {p['peak_rss_growth_mib']:>+7.1f}")
    app = figures["app"]
    split = app["split"]
    lines += ["", f"app split: readings read, normalised and stored {split['readings_s']:.2f} s; file "
                  f"chunks, result, audit and evaluation {split['file_result_evaluation_s']:.2f} s; commit "
                  f"{split['commit_s']:.2f} s; evaluate() alone afterwards {app['evaluate_alone_s']:.2f} s",
              f"app checks: {json.dumps(app['checks'])}",
              f"ratio app/raw executemany: {figures['ratio']:.2f} "
              f"({'meets' if figures['ratio'] >= 0.5 else 'BELOW'} the 0.5 aim)"]
    if "ratio_copy" in figures:
        lines.append(f"ratio app/raw COPY: {figures['ratio_copy']:.2f}")
    if "app_traced" in figures:
        traced = figures["app_traced"]
        lines += ["", f"tracemalloc, app at {stored_count(traced):,} readings (not timed): "
                      f"peak traced {traced['traced_peak_mib']} MiB; the largest allocation sites at the "
                      "highest sample:", *("  " + line for line in traced["top"])]
    if "app_profiled" in figures:
        profiled = figures["app_profiled"]
        lines += ["", f"cProfile, app at {stored_count(profiled):,} readings (not timed), store + commit:",
                  profiled["cprofile"]]
    lines.append("result: " + ("OK" if figures["ok"] else "FAILED (a check above does not hold)"))
    return "\n".join(lines)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--readings", type=int, default=1_000_000, help="readings in the file (1,000,000)")
    parser.add_argument("--memory-check", action="store_true",
                        help="also the app phase at N/10 readings, and at 100,000 under tracemalloc")
    parser.add_argument("--profile", type=int, default=0, metavar="P",
                        help="then the app phase at P readings under cProfile (0: none)")
    parser.add_argument("--postgres-url",
                        default=os.environ.get("COI_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    # A phase in its own process (the parent runs these).
    parser.add_argument("--phase", choices=("app", "raw", "raw-copy"), help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cprofile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.readings < 100 or 0 < args.profile < 100:
        parser.error("--readings and --profile must be at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)

    def terminated(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)  # unwinds through the cleanup

    signal.signal(signal.SIGTERM, terminated)
    if args.phase:
        print(json.dumps(run_phase(args)))  # the parent reads it and judges `ok`
        return 0
    figures = run(args)
    print(json.dumps(figures) if args.json else report(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
