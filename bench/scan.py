"""Custody scans through the JSON API under concurrent load, against the floor of one insert.

Serves the app with gunicorn (bench/bench_app.py: the real app plus `POST /api/bench/bare`,
which inserts one row and commits), then N scanner threads drive complete custody handoffs
through `POST /api/v1/scans` (pickup: clinic gives, courier receives; delivery to
manufacturing: courier gives, coordinator receives), and, on the same server in the same run,
send as many requests to the bare endpoint. Reports requests/s and p50/p99 latency of both
and the ratio scan/bare. See bench/README.md.

    .venv/bin/python bench/scan.py --engine sqlite|postgresql [--scanners N] [--cases M]
        [--workers W] [--threads T] [--rounds R] [--profile P] [--plans] [--json]
        [--preload-events N --preload-cases M]

Growth: `--preload-events N` fills the database with N custody events spread over
`--preload-cases` M cases (default N / 10; 1 to 17 events each, a complete CARTX route being
17) before the timed cases are enrolled, as bench/preload.py describes: the patients, cases,
units, audit entries and signatures the services make, the hash chains computed by
`coi.services.ledger.event_hash` (the checks after the run verify every chain), in bulk
(executemany on SQLite, COPY on PostgreSQL, then VACUUM (ANALYZE) on PostgreSQL). 1,000,000
events load in 1.5-3 minutes. The timed scans then run against that database. `--plans` shows
the query plan of every statement of one case's scans, run after the timed phase.

Run from the repository root. PostgreSQL: --postgres-url names a server where the user may
create databases (default: COI_BENCH_POSTGRES_URL, else postgresql+psycopg://postgres@
127.0.0.1:5432/test); a scratch database is made for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import http.client
import io
import json
import os
import pstats
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import create_engine, event, func, make_url, text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

import coi.passwords  # noqa: E402
from bench import bench_app, preload  # noqa: E402
from coi import migrate  # noqa: E402
from coi.core.access import Actor  # noqa: E402
from coi.core.phi import PatientIdentity  # noqa: E402
from coi.core.workflow import Entry  # noqa: E402
from coi.db import make_engine  # noqa: E402
from coi.models import CustodyEvent, User, coi_of, serial_of  # noqa: E402  # noqa: E402
from coi.services import custody, enrolment, ledger, masterdata, seals, tokens, users  # noqa: E402
from coi.services.custody import Credential  # noqa: E402

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROUTE = (ROOT / "coi" / "route_definitions" / "cartx-v1.toml").read_text()
PASSWORD = "bench password 1"
SCAN_PATH = "/api/v1/scans"
# The timed part of a case: two complete handoffs, four requests. (step, who, phase)
HANDOFFS = (("pickup", "staff", "give"), ("pickup", "courier", "receive"),
            ("deliver_manufacturing", "courier", "give"),
            ("deliver_manufacturing", "coordinator", "receive"))
REQUESTS_PER_CASE = len(HANDOFFS)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- database and app


def secrets_config() -> dict[str, Any]:
    """Production mode with throwaway keys: nothing is relaxed for the server but the rate
    limit per API token, as every scanner of the benchmark sends with one of three tokens."""
    return {"MODE": "production", "SECRET_KEY": secrets.token_urlsafe(32),
            "API_TOKEN_REQUESTS_PER_MINUTE": 0, "RATE_LIMIT_STORAGE": "memory://",
            "PHI_KEYS": Fernet.generate_key().decode(),
            "PHI_INDEX_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "INSTALLATION_SIGNING_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "LABEL_VERIFY_BASE_URL": "https://coi.example.org"}


def scratch_database(engine: str, postgres_url: str, workdir: Path, cleanup: contextlib.ExitStack
                     ) -> tuple[str, Callable[[], list[int]] | None]:
    """The database URL, and for PostgreSQL a function listing its server processes' pids."""
    if engine == "sqlite":
        return f"sqlite:///{workdir / 'coi-bench.sqlite3'}", None
    name = f"coi_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    cleanup.callback(admin.dispose)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        log(f"dropped PostgreSQL database {name}")

    def backends() -> list[int]:
        with admin.connect() as connection:
            return list(connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                                           {"name": name}).scalars())

    cleanup.callback(drop)
    log(f"created PostgreSQL database {name}")
    return make_url(postgres_url).set(database=name).render_as_string(hide_password=False), backends


# ---------------------------------------------------------------- CPU accounting


class CpuMeter:
    """CPU seconds used by the gunicorn workers, the PostgreSQL server processes of the scratch
    database and this process (the clients), read from /proc. Unlike requests/s, CPU per
    request hardly moves when other programs share the machine."""

    def __init__(self, server_pid: int, backends: Callable[[], list[int]] | None) -> None:
        self.server_pid, self.backends = server_pid, backends
        self.tick = os.sysconf("SC_CLK_TCK")

    def _stat(self, pid: int) -> tuple[int, float] | None:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = raw[raw.rindex(")") + 2:].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / self.tick  # ppid, utime+stime

    def _workers(self) -> dict[int, float]:
        """The gunicorn workers (children of the master) and their CPU seconds so far."""
        workers: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = self._stat(int(entry.name))
                if stat is not None and stat[0] == self.server_pid:
                    workers[int(entry.name)] = stat[1]
        return workers

    def worker_pids(self) -> list[int]:
        return sorted(self._workers())

    def sample(self) -> dict[str, dict[int, float]]:
        workers = self._workers()
        database = {}
        for pid in self.backends() if self.backends else []:
            stat = self._stat(pid)
            if stat is not None:
                database[pid] = stat[1]
        return {"server": workers, "database": database, "client": {0: time.process_time()}}

    @staticmethod
    def used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {group: sum(value - before[group].get(pid, 0.0) for pid, value in after[group].items())
                for group in after}


# ---------------------------------------------------------------- seeding (not timed)


@dataclass
class Scanner:
    """One scanner thread's people (with API tokens) and its cases' bag serials."""

    number: int
    tokens: dict[str, str]  # staff, courier, coordinator -> bearer token
    bags: list[str] = field(default_factory=list)


def master_data(session: Session, now: datetime) -> dict[str, Any]:
    """The sites (BOS, MFG, DEP), the CARTX product and its route, for a benchmark's world."""
    sites = {code: masterdata.create_site(session=session, now=now, actor=None, code=code,
                                          name=name, kinds=kinds, timezone=tz, facility_id=fid,
                                          reason="bench")
             for code, name, kinds, tz, fid in [
                 ("BOS", "Boston Hospital", ["collection", "treatment"], "America/New_York", "A9998"),
                 ("MFG", "Manufacturing", ["manufacturing"], "America/Chicago", None),
                 ("DEP", "Courier depot", ["courier_depot"], "America/New_York", None)]}
    masterdata.create_product(session=session, now=now, actor=None, code="CARTX", name="CAR-T",
                              description="", reason="bench")
    masterdata.add_route_version(session=session, now=now, actor=None, definition=ROUTE, reason="bench")
    return sites


def seed(app: Any, scanners: int, cases_each: int, history: tuple[int, int] = (0, 0)
         ) -> tuple[list[Scanner], Actor, preload.Loaded | None]:
    """Sites, product, route, people and tokens; then, with `history` (events, cases), that
    custody history loaded in bulk (bench/preload.py); then `cases_each` cases per scanner
    brought to just before the courier pickup (enrolled, bag registered, collected, packed):
    the newest cases, as at a platform that has run for a while."""
    # Seeding checks the collect step's two passwords per case: the cheap hash the test
    # suite uses keeps that quick. The timed scans sign nothing, so no password is checked
    # while measuring.
    coi.passwords.METHOD = "pbkdf2:sha256:1000"
    engine = app.extensions["coi.engine"]
    cipher = app.extensions["coi.phi"]
    t0 = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        now = datetime.now(UTC)
        sites = master_data(session, now)

        def person(username: str, site: str, role: str) -> tuple[Actor, int]:
            user = users.create_user(session=session, now=now, actor=None, username=username,
                                     full_name=username.title(), password=PASSWORD, reason="bench")
            site_id = sites[site].id
            assert user.id is not None and site_id is not None
            users.grant_role(session=session, now=now, actor=None, user_id=user.id,
                             site_id=site_id, role=role, reason="bench")
            return users.actor_for(session=session, user=user), user.id

        verifier, _ = person("verifier", "BOS", "site_staff")
        team: list[Scanner] = []
        actors: list[Actor] = []
        for number in range(scanners):
            issued = {}
            for who, site, role in (("staff", "BOS", "site_staff"), ("courier", "DEP", "courier"),
                                    ("coordinator", "MFG", "coordinator")):
                someone, user_id = person(f"{who}{number}", site, role)
                if who == "staff":
                    actors.append(someone)
                issued[who], _row = tokens.issue_token(session=session, now=now, actor=None,
                                                       user_id=user_id, name=f"bench {who}{number}",
                                                       days=1, reason="bench")
            team.append(Scanner(number, issued))
        session.commit()
        loaded = None
        if history[0]:
            loaded = preload.preload(engine=engine, cipher=cipher, events=history[0],
                                     cases=history[1], log=log)

        for index in range(cases_each):
            for scanner, staff in zip(team, actors, strict=True):
                scanner.bags.append(_prepared_case(session, cipher, staff, verifier,
                                                   f"M-{scanner.number}-{index}"))
        log(f"seeded {scanners} x {cases_each} cases in {time.perf_counter() - t0:.1f} s")
    return team, verifier, loaded


def _prepared_case(session: Session, cipher: Any, staff: Actor, verifier: Actor, mrn: str) -> str:
    """Enrol, register a bag, collect (signed, verified) and pack; returns the bag's serial."""
    case = enrolment.enrol(session=session, now=datetime.now(UTC), actor=staff, cipher=cipher,
                           site_code="BOS", product_code="CARTX", manufacturing_site_code="MFG",
                           identity=PatientIdentity(f"Bench Patient {mrn}", date(1970, 5, 1), mrn))
    wristband = coi_of(case).text
    bag = serial_of(enrolment.register_unit(session=session, now=datetime.now(UTC), actor=staff,
                                            coi_text=wristband, kind="apheresis_bag")).text
    session.commit()
    for step, entries, signed in (("collect", [wristband, bag], True), ("pack", [bag], False)):
        outcome = custody.scan(
            session=session, now=datetime.now(UTC), actor=staff, entries=[Entry(t) for t in entries],
            step_name=step, own_password=PASSWORD if signed else None,
            verifiers=[Credential(verifier.username, PASSWORD)] if signed else [])
        if not outcome.verdict.accepted:
            raise RuntimeError(f"seeding: {step} refused: {outcome.verdict.refusals}")
        session.commit()
    return bag


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(url: str, config: dict[str, Any], workers: int, threads: int, workdir: Path,
                 cleanup: contextlib.ExitStack) -> tuple[int, int]:
    """Starts gunicorn; returns its port and its master's pid once /healthz answers 200."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("COI_")}
    env.update({f"COI_{name}": str(value) for name, value in config.items()})
    env["COI_BENCH_DATABASE_URL"] = url
    logfile = (workdir / "gunicorn.log").open("w")
    cleanup.callback(logfile.close)
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gthread",
               "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--keep-alive", "75",
               "--log-level", "warning", "--chdir", str(ROOT), "bench.bench_app:build()"]
    log("server: " + " ".join(command[2:]))
    server = subprocess.Popen(command, env=env, stdout=logfile, stderr=subprocess.STDOUT, cwd=ROOT,
                              start_new_session=True)

    def stop() -> None:
        if server.poll() is None:
            server.terminate()  # gunicorn's graceful shutdown: workers finish, then exit
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log(f"server stopped (exit status {server.returncode})")

    cleanup.callback(stop)
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited while starting:\n" + tail(workdir / "gunicorn.log"))
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            body = response.read()
            connection.close()
            if response.status == 200:
                return port, server.pid
            if time.monotonic() > deadline:
                raise RuntimeError(f"/healthz answers {response.status}: {body[:500]!r}")
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer within 60 s:\n"
                                   + tail(workdir / "gunicorn.log")) from None
        time.sleep(0.2)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- load


class Failure(Exception):
    pass


class Client:
    """One keep-alive HTTP/1.1 connection (stdlib http.client: little client overhead)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.connection.connect()

    def post(self, path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.connection.request("POST", path, body=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json",
                                         "Authorization": f"Bearer {token}"})
        response = self.connection.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data[:300]

    def close(self) -> None:
        self.connection.close()


def _owner(client: Client, port: int, workers: list[int], timeout: float = 5.0) -> int | None:
    """The gunicorn worker that accepted this connection: the server side of the socket is found
    in /proc/net/tcp by the client's port, then among the workers' open files."""
    mine = client.connection.sock.getsockname()[1]
    local, remote = f"0100007F:{port:04X}", f"0100007F:{mine:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inode = next((fields[9] for fields in (line.split() for line in
                                               Path("/proc/net/tcp").read_text().splitlines()[1:])
                      if fields[1] == local and fields[2] == remote), None)
        for pid in workers if inode else []:
            try:
                links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            except OSError:
                continue
            if f"socket:[{inode}]" in links:
                return pid
        time.sleep(0.01)  # not accepted yet
    return None


def connect_balanced(port: int, count: int, workers: list[int]) -> list[Client]:
    """`count` keep-alive connections spread evenly over the gunicorn workers. Left to the
    accept race, 8 connections often all land on one worker of two, and one process (one
    GIL) then serves everything: requests/s swing by a third from run to run."""
    quota = {pid: count // len(workers) + (1 if n < count % len(workers) else 0)
             for n, pid in enumerate(workers)}
    kept: list[Client] = []
    spare: list[Client] = []
    for _attempt in range(40 * count):
        if len(kept) == count:
            break
        client = Client(port)
        owner = _owner(client, port, workers)
        if owner is not None and quota.get(owner, 0) > 0:
            quota[owner] -= 1
            kept.append(client)
        else:
            spare.append(client)  # held open a moment, so the next accept may go elsewhere
            if len(spare) > 4:
                spare.pop(0).close()
    for client in spare:
        client.close()
    while len(kept) < count:  # could not balance (should not happen): take what comes
        log("warning: connections not balanced over the gunicorn workers")
        kept.append(Client(port))
    return kept


@dataclass
class Result:
    kind: str  # "scan" or "bare"
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # group -> CPU seconds in the phase


def scan_body(step: str, bag: str) -> dict[str, Any]:
    return {"step": step, "scans": [{"text": bag}], "idempotency_key": str(uuid.uuid4()),
            "device_at": datetime.now(UTC).isoformat(), "device": "bench"}


def drive_scans(client: Client, scanner: Scanner, bags: list[str], latencies: list[float],
                failures: list[str]) -> None:
    for bag in bags:
        for step, who, phase in HANDOFFS:
            body = scan_body(step, bag)
            start = time.perf_counter()
            status, answer = client.post(SCAN_PATH, scanner.tokens[who], body)
            latencies.append(time.perf_counter() - start)
            if not (status == 200 and isinstance(answer, dict) and answer.get("accepted") is True
                    and answer.get("recorded") is True and answer.get("phase") == phase
                    and not answer.get("alarms")):
                failures.append(f"{step}/{who} {bag}: {status} {str(answer)[:300]}")
                break  # the rest of this case cannot be accepted either


def drive_bare(client: Client, scanner: Scanner, count: int, latencies: list[float],
               failures: list[str]) -> None:
    people = [scanner.tokens[who] for _step, who, _phase in HANDOFFS]  # the same token mix
    for number in range(count):
        start = time.perf_counter()
        status, answer = client.post(bench_app.BARE_PATH, people[number % len(people)],
                                     {"note": f"scanner {scanner.number} request {number}"})
        latencies.append(time.perf_counter() - start)
        if not (status == 200 and isinstance(answer, dict) and answer.get("recorded") is True):
            failures.append(f"bare: {status} {str(answer)[:300]}")


Work = Callable[[Client, Scanner, list[float], list[str]], None]  # one scanner's part of a phase


def scans_of(bags: dict[int, list[str]]) -> Work:
    """Each scanner hands off its own cases (scanner number -> bag serials)."""
    def work(client: Client, scanner: Scanner, latencies: list[float], failures: list[str]) -> None:
        drive_scans(client, scanner, bags[scanner.number], latencies, failures)
    return work


def bare_of(counts: dict[int, int]) -> Work:
    """Each scanner sends its number of bare requests (scanner number -> count)."""
    def work(client: Client, scanner: Scanner, latencies: list[float], failures: list[str]) -> None:
        drive_bare(client, scanner, counts[scanner.number], latencies, failures)
    return work


def run_phase(kind: str, port: int, meter: CpuMeter, team: list[Scanner], work: Work) -> Result:
    """All scanners at once: connections opened first, then a barrier, then the clock."""
    clients = connect_balanced(port, len(team), meter.worker_pids())
    per_thread: list[tuple[list[float], list[str]]] = [([], []) for _ in team]
    barrier = threading.Barrier(len(team) + 1)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        barrier.wait()
        try:
            work(clients[index], team[index], *per_thread[index])
        except BaseException as error:  # noqa: BLE001 - reported after the phase
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(team))]
    for thread in threads:
        thread.start()
    before = meter.sample()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    cpu = meter.used(before, meter.sample())
    for client in clients:
        client.close()
    if errors:
        raise RuntimeError(f"{kind} phase: a scanner thread failed: {errors[0]!r}") from errors[0]
    result = Result(kind, seconds=seconds, cpu=cpu)
    for latencies, failures in per_thread:
        result.latencies += latencies
        result.failures += failures
    result.requests = len(result.latencies)
    return result


def merged(results: list[Result]) -> Result:
    total = Result(results[0].kind)
    for result in results:
        total.requests += result.requests
        total.seconds += result.seconds
        total.latencies += result.latencies
        total.failures += result.failures
        for group, seconds in result.cpu.items():
            total.cpu[group] = total.cpu.get(group, 0.0) + seconds
    return total


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(share * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summary(result: Result) -> dict[str, Any]:
    return {"requests": result.requests, "seconds": round(result.seconds, 3),
            "per_second": round(result.requests / result.seconds, 1) if result.seconds else 0.0,
            "p50_ms": round(percentile(result.latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(result.latencies, 0.99) * 1000, 1),
            "max_ms": round(max(result.latencies) * 1000, 1),
            "failures": len(result.failures),
            "cpu_ms_per_request": {group: round(seconds / result.requests * 1000, 2)
                                   for group, seconds in result.cpu.items()} if result.requests else {}}


# ---------------------------------------------------------------- plans (in-process)


def plans(app: Any, team: list[Scanner], bag: str) -> list[dict[str, Any]]:
    """Every statement of one case's four scans (give and receive of two handoffs) through
    Flask's test client, as executed, then under EXPLAIN QUERY PLAN (SQLite) or EXPLAIN
    (PostgreSQL) with the same parameters: what each request reads, and whether anything
    reads a whole table."""
    engine = app.extensions["coi.engine"]
    seen: list[tuple[str, str, Any]] = []  # (request, statement, parameters)
    current = [""]

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               _many: bool) -> None:
        seen.append((current[0], statement, parameters))

    client = app.test_client()
    event.listen(engine, "before_cursor_execute", record)
    try:
        for step, who, phase in HANDOFFS:
            current[0] = f"{step} {phase}"
            answer = client.post(SCAN_PATH, json=scan_body(step, bag),
                                 headers={"Authorization": f"Bearer {team[0].tokens[who]}"})
            if answer.status_code != 200 or not answer.get_json()["accepted"]:
                raise Failure(f"plans: scan refused: {answer.status_code} {answer.get_json()}")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    sqlite_ = engine.dialect.name == "sqlite"
    found: list[dict[str, Any]] = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for request_, statement, parameters in seen:
            verb = statement.lstrip().split()[0].upper()
            if verb not in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                found.append({"request": request_, "statement": statement, "plan": []})
                continue
            cursor.execute(("EXPLAIN QUERY PLAN " if sqlite_ else "EXPLAIN ") + statement, parameters)
            lines = [str(row[-1] if sqlite_ else row[0]) for row in cursor.fetchall()]
            found.append({"request": request_, "statement": statement, "plan": lines,
                          "full_scan": any(("SCAN " in line and " USING " not in line)
                                           or "Seq Scan" in line for line in lines)})
        raw.rollback()
    finally:
        raw.close()
    return found


def plans_report(found: list[dict[str, Any]]) -> str:
    lines = []
    for item in found:
        statement = " ".join(item["statement"].split())
        flag = "  << READS A WHOLE TABLE" if item.get("full_scan") else ""
        lines.append(f"[{item['request']}] {statement[:160]}{'...' if len(statement) > 160 else ''}{flag}")
        lines += [f"      {line}" for line in item["plan"]]
    return "\n".join(lines)


# ---------------------------------------------------------------- profile (in-process)


def profile(app: Any, team: list[Scanner], bags: list[str], top: int) -> dict[str, Any]:
    """One thread, Flask's test client (no HTTP, no server): milliseconds per request of a
    scan and of the bare insert, SQL statements per request, and a cProfile of the scans."""
    engine = app.extensions["coi.engine"]
    statements = [0]

    def count(*_args: Any) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    client = app.test_client()
    scanner = team[0]
    half = len(bags) // 2

    def scans(chosen: list[str]) -> int:
        sent = 0
        for bag in chosen:
            for step, who, phase in HANDOFFS:
                answer = client.post(SCAN_PATH, json=scan_body(step, bag),
                                     headers={"Authorization": f"Bearer {scanner.tokens[who]}"})
                body = answer.get_json()
                if answer.status_code != 200 or not body["accepted"] or body["phase"] != phase:
                    raise Failure(f"profile scan refused: {answer.status_code} {body}")
                sent += 1
        return sent

    def bare(count_: int) -> int:
        for number in range(count_):
            answer = client.post(bench_app.BARE_PATH, json={"note": f"profile {number}"},
                                 headers={"Authorization":
                                          f"Bearer {scanner.tokens[HANDOFFS[number % 4][1]]}"})
            if answer.status_code != 200:
                raise Failure(f"profile bare refused: {answer.status_code} {answer.get_json()}")
        return count_

    found: dict[str, Any] = {}
    bare(8)  # warm: connections, caches
    for kind, run in (("scan", lambda: scans(bags[:half])), ("bare", lambda: bare(half * 4))):
        statements[0] = 0
        start = time.perf_counter()
        sent = run()
        seconds = time.perf_counter() - start
        found[f"{kind}_ms_in_process"] = round(seconds / sent * 1000, 2)
        found[f"{kind}_statements_per_request"] = round(statements[0] / sent, 1)
    profiler = cProfile.Profile()
    profiler.enable()
    scans(bags[half:])
    profiler.disable()
    event.remove(engine, "before_cursor_execute", count)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    found["cprofile"] = out.getvalue()
    found["time_by_package"] = _by_package(stats)
    return found


def _by_package(stats: pstats.Stats) -> dict[str, float]:
    """Share of own time (tottime) per package: where the scan's CPU goes."""
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
        elif f"{ROOT}/coi/" in filename:
            key = "coi." + filename.split(f"{ROOT}/coi/")[1].split("/")[0].removesuffix(".py")
        elif filename == "~":
            key = "sqlite3 (C)" if "sqlite3" in name else "builtins (C)"
        else:
            key = "stdlib"
        totals[key] = totals.get(key, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return {key: round(100 * value / whole, 1) for key, value in ranked[:15]}


# ---------------------------------------------------------------- main


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--scanners", type=int, default=8, help="concurrent scanner threads (8)")
    parser.add_argument("--cases", type=int, default=48,
                        help="cases per scanner, 4 timed scans each (48)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (2)")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker (4)")
    parser.add_argument("--rounds", type=int, default=8,
                        help="bare/scan rounds; the order alternates (8): short phases in turn, so "
                             "a change in the machine's load falls on both kinds alike")
    parser.add_argument("--profile", type=int, default=0, metavar="P",
                        help="then profile P cases' scans in-process (cProfile), 0: no profile")
    parser.add_argument("--top", type=int, default=25, help="cProfile rows to print (25)")
    parser.add_argument("--plans", action="store_true",
                        help="then show the query plan of every statement of one case's scans")
    parser.add_argument("--preload-events", type=int, default=0, metavar="N",
                        help="custody events loaded in bulk before the timed phase (0)")
    parser.add_argument("--preload-cases", type=int, default=None, metavar="M",
                        help="cases those events are spread over (N / 10: 1 to 17 events each)")
    parser.add_argument("--postgres-url",
                        default=os.environ.get("COI_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.preload_cases is None:
        args.preload_cases = max(1, args.preload_events // 10)
    if args.preload_events:
        try:
            preload.events_per_case(args.preload_events, args.preload_cases, 17)
        except ValueError as error:
            parser.error(f"--preload-events/--preload-cases: {error}")
    if min(args.scanners, args.cases, args.workers, args.threads, args.rounds) < 1:
        parser.error("--scanners, --cases, --workers, --threads and --rounds must be at least 1")
    if args.cases < args.rounds:
        parser.error("--cases must be at least --rounds (each round needs a case per scanner)")
    return args


def chunks(items: list[str], parts: int) -> list[list[str]]:
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for part in range(parts):
        end = start + size + (1 if part < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def load(port: int, meter: CpuMeter, team: list[Scanner], warm: int,
         rounds_: int) -> tuple[dict[str, list[Result]], int]:
    """Warm-up, then `rounds_` rounds of a bare phase and a scan phase of the same number of
    requests, in alternating order. Returns the phases' results and how many bare rows were sent."""
    warmup = run_phase("scan", port, meter, team, scans_of({s.number: s.bags[:warm] for s in team}))
    warmup_bare = run_phase("bare", port, meter, team,
                            bare_of({s.number: warm * REQUESTS_PER_CASE for s in team}))
    bare_total = warmup_bare.requests
    if warmup.failures or warmup_bare.failures:
        raise Failure("warm-up refused: " + "; ".join((warmup.failures + warmup_bare.failures)[:3]))
    rounds: dict[str, list[Result]] = {"scan": [], "bare": []}
    slices = [chunks(scanner.bags[warm:], rounds_) for scanner in team]
    for number in range(rounds_):
        mine = {scanner.number: slices[i][number] for i, scanner in enumerate(team)}
        count = {scanner.number: len(mine[scanner.number]) * REQUESTS_PER_CASE for scanner in team}
        order = ("bare", "scan") if number % 2 == 0 else ("scan", "bare")
        for kind in order:
            if kind == "scan":
                result = run_phase("scan", port, meter, team, scans_of(mine))
            else:
                result = run_phase("bare", port, meter, team, bare_of(count))
                bare_total += result.requests
            log(f"round {number + 1} {kind}: {summary(result)}")
            rounds[kind].append(result)
    return rounds, bare_total


def run(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> dict[str, Any]:
    workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="coi-bench-")))
    url, backends = scratch_database(args.engine, args.postgres_url, workdir, cleanup)
    config = secrets_config()
    migrating = make_engine(url)
    migrate.upgrade(migrating)
    migrating.dispose()
    app = bench_app.build({**config, "DATABASE_URL": url})
    engine = app.extensions["coi.engine"]
    cleanup.callback(engine.dispose)

    warm = 1  # one case per scanner warms every worker and path before the clock starts
    profiled = 2 * args.profile  # half timed plainly, half under cProfile
    team, _verifier, loaded = seed(app, args.scanners, warm + args.cases,
                                   (args.preload_events, args.preload_cases))
    extra = seed_more(app, profiled + (1 if args.plans else 0)) if profiled or args.plans else []
    engine.dispose()  # no connection of this process stays open while the server runs

    load_before = _load_average()  # other programs on the machine skew requests/s, not CPU/request
    with contextlib.ExitStack() as serving:  # the server stops before the checks and the profile
        port, server_pid = start_server(url, config, args.workers, args.threads, workdir, serving)
        try:
            rounds, bare_total = load(port, CpuMeter(server_pid, backends), team, warm, args.rounds)
        except BaseException:
            log("server log (last lines):\n" + tail(workdir / "gunicorn.log"))
            raise
    scan, bare = merged(rounds["scan"]), merged(rounds["bare"])

    # The server's work, checked in the database: every handoff recorded, the ledger intact.
    with Session(engine) as session:
        kinds = dict(session.exec(select(CustodyEvent.kind, func.count())
                                  .group_by(CustodyEvent.kind)).all())
        rows = session.execute(text("SELECT count(*) FROM bench_row")).scalar_one()
        problems = ledger.verify(session=session)
        # The identity chain, written by every scan under load: unbroken, every row sealed.
        # Not with preloaded data, which goes in without the session (and so unsealed).
        sealing = [] if loaded else seals.check(session=session).findings
    cases_timed = args.scanners * (warm + args.cases)
    before = loaded.kinds if loaded else {}
    expected = {"handoff_give": 2 * cases_timed + before.get("handoff_give", 0),
                "handoff_receive": 2 * cases_timed + before.get("handoff_receive", 0)}
    checks = {"handoffs_recorded": {k: kinds.get(k, 0) for k in expected},
              "handoffs_expected": expected, "scan_refused": kinds.get("scan_refused", 0),
              "bench_rows": rows, "bench_rows_expected": bare_total,
              "ledger_problems": len(problems), "identity_chain_problems": len(sealing)}
    ok = (all(kinds.get(k, 0) == v for k, v in expected.items()) and not kinds.get("scan_refused")
          and rows == bare_total and not problems and not sealing and not scan.failures
          and not bare.failures)

    figures: dict[str, Any] = {
        "engine": args.engine, "scanners": args.scanners, "cases_per_scanner": args.cases,
        "workers": args.workers, "threads": args.threads, "rounds": args.rounds,
        "cpus": os.cpu_count(), "load_average": {"before": load_before, "after": _load_average()},
        "scan": summary(scan), "bare": summary(bare),
        "ratio": round((scan.requests / scan.seconds) / (bare.requests / bare.seconds), 3),
        # The same ratio from CPU per request (gunicorn workers + PostgreSQL server processes):
        # what the throughput ratio tends to when the machine's CPUs are the bottleneck.
        "cpu_ratio": round(sum(bare.cpu[g] for g in ("server", "database")) / bare.requests
                           / (sum(scan.cpu[g] for g in ("server", "database")) / scan.requests), 3),
        "checks": checks, "ok": ok,
        "failure_examples": (scan.failures + bare.failures)[:5],
        "preload": loaded.summary() if loaded else None,
        "database_mb": _database_mb(engine),
    }
    if args.plans:
        figures["plans"] = plans(app, team, extra.pop())
    if profiled:
        figures["profile"] = profile(app, team, extra, args.top)
    return figures


def _database_mb(engine: Any) -> int:
    """The database's size on disk (SQLite: the file and its WAL)."""
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database)
        return round(sum(f.stat().st_size for f in (path, Path(f"{path}-wal")) if f.exists()) / 2**20)
    with engine.connect() as connection:
        return round(connection.execute(text("SELECT pg_database_size(current_database())"))
                     .scalar_one() / 2**20)


def _load_average() -> float:
    return round(os.getloadavg()[0], 2)


def seed_more(app: Any, cases: int) -> list[str]:
    """Extra prepared cases for the in-process profile, all with scanner 0's people."""
    engine = app.extensions["coi.engine"]
    cipher = app.extensions["coi.phi"]
    with Session(engine, expire_on_commit=False) as session:
        staff = users.actor_for(session=session, user=session.exec(
            select(User).where(User.username == "staff0")).one())
        verifier = users.actor_for(session=session, user=session.exec(
            select(User).where(User.username == "verifier")).one())
        return [_prepared_case(session, cipher, staff, verifier, f"P-{n}") for n in range(cases)]


def report(figures: dict[str, Any]) -> str:
    lines = [f"engine {figures['engine']}, {figures['scanners']} scanners x "
             f"{figures['cases_per_scanner']} cases ({REQUESTS_PER_CASE} scans each), gunicorn "
             f"{figures['workers']} workers x {figures['threads']} threads (gthread), "
             f"{figures['cpus']} CPUs, {figures['rounds']} rounds; 1-min load average "
             f"{figures['load_average']['before']} before, {figures['load_average']['after']} after",
             f"preloaded: {_preloaded(figures)}; database {figures['database_mb']:,} MB",
             "",
             f"{'':<6} {'requests':>9} {'seconds':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'failed':>7}   CPU ms/request: {'server':>6} {'db':>5} {'client':>6}"]
    for kind in ("scan", "bare"):
        s = figures[kind]
        cpu = s["cpu_ms_per_request"]
        db = f"{cpu['database']:>5.2f}" if figures["engine"] == "postgresql" else f"{'-':>5}"
        lines.append(f"{kind:<6} {s['requests']:>9} {s['seconds']:>8.2f} {s['per_second']:>8.1f} "
                     f"{s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} {s['failures']:>7}   "
                     f"{'':15} {cpu['server']:>6.2f} {db} {cpu['client']:>6.2f}")
    lines += ["", f"ratio scan/bare throughput: {figures['ratio']:.2f}"
                  f"  ({'meets' if figures['ratio'] >= 0.5 else 'BELOW'} the 0.5 aim); "
                  f"from CPU per request (server + db): {figures['cpu_ratio']:.2f}",
              f"checks: {json.dumps(figures['checks'])}",
              "result: " + ("OK" if figures["ok"] else "FAILED " + "; ".join(figures["failure_examples"]))]
    if "profile" in figures:
        p = figures["profile"]
        lines += ["", "in-process, one thread (test client, no HTTP): "
                      f"scan {p['scan_ms_in_process']} ms, {p['scan_statements_per_request']} SQL "
                      f"statements; bare {p['bare_ms_in_process']} ms, "
                      f"{p['bare_statements_per_request']} statements",
                  "own time by package (cProfile of the scans, %): "
                  + ", ".join(f"{k} {v}" for k, v in p["time_by_package"].items()),
                  "", p["cprofile"]]
    if "plans" in figures:
        lines += ["", "query plans of one case's scans:", plans_report(figures["plans"])]
    return "\n".join(lines)


def _preloaded(figures: dict[str, Any]) -> str:
    loaded = figures["preload"]
    if not loaded:
        return "nothing"
    return (f"{loaded['events']:,} custody events over {loaded['cases']:,} cases in "
            f"{loaded['seconds']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)

    def terminated(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)  # unwinds through the cleanup stack

    signal.signal(signal.SIGTERM, terminated)
    with contextlib.ExitStack() as cleanup:
        figures = run(args, cleanup)
    if args.json:
        print(json.dumps({k: v for k, v in figures.items() if k != "profile"}
                         | ({"profile": {k: v for k, v in figures["profile"].items() if k != "cprofile"}}
                            if "profile" in figures else {}), indent=2))
    else:
        print(report(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
