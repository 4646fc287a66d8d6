"""What the request instrumentation costs: the shipped app against itself without it.

Every request of the app gets a request id, one JSON access line on stderr and Prometheus
counts (coi/logs.py, coi/metrics.py, coi/views/metrics.py). This script serves the app twice,
side by side in one run, each with `gunicorn -c gunicorn.conf.py` and 2 sync workers, as in
production:

  shipped   `wsgi:app`, COI_LOG_LEVEL=INFO, JSON lines to stderr redirected to a file (as
            journald would take them), PROMETHEUS_MULTIPROC_DIR a temporary directory;
  baseline  `bench.bench_app:uninstrumented()`: the same app with the hooks of coi.logs and
            coi.views.metrics removed, COI_LOG_LEVEL=WARNING, no multiprocess directory;

and loads both in turn (rounds of one phase per server and endpoint, the order alternating),
from client threads of this process, on two endpoints: GET /healthz/live (no database: the
instrumentation's share at its largest) and GET /api/v1/cases/<coi> with a site_staff's API
token (reads the case, its units, patient and timeline). Reports requests/s, p50/p99, server
CPU per request and log bytes per request, the median over the rounds, and the ratio
shipped/baseline. Nothing is asserted about the figures. See bench/README.md.

    .venv/bin/python bench/observability.py [--engine sqlite|postgresql] [--rounds R]
        [--seconds S] [--clients C] [--workers W] [--json]

Run from the repository root. PostgreSQL: --postgres-url as for bench/scan.py (a scratch
database is made and dropped). Leaves nothing behind: the servers are stopped and the
temporary directory removed on errors, Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, select  # noqa: E402

from bench import scan  # noqa: E402
from bench.scan import CpuMeter, log, percentile  # noqa: E402
from coi import migrate  # noqa: E402
from coi.app import create_app  # noqa: E402
from coi.db import make_engine  # noqa: E402
from coi.models import Case, coi_of  # noqa: E402

VARIANTS = ("shipped", "baseline")
APPS = {"shipped": "wsgi:app", "baseline": "bench.bench_app:uninstrumented()"}
LEVELS = {"shipped": "INFO", "baseline": "WARNING"}


@dataclass(frozen=True)
class Target:
    """An endpoint as the clients ask it: its Flask endpoint name (the metrics' label), the
    paths to rotate through, the token, and a byte string every good answer contains."""

    name: str
    endpoint: str
    paths: tuple[str, ...]
    token: str | None
    marker: bytes

    def requests(self, port: int) -> list[bytes]:
        """The raw requests: HTTP/1.1 with Connection: close, as a sync worker answers anyway
        (it closes every connection after one answer, as nginx's default upstream does too)."""
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        return [(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
                 f"{auth}Connection: close\r\n\r\n").encode() for path in self.paths]


@dataclass
class Server:
    variant: str
    port: int
    pid: int
    log_path: Path
    meter: CpuMeter
    process: subprocess.Popen[bytes]
    answered: dict[str, int] = field(default_factory=dict)  # endpoint -> 200s we received


@dataclass
class Phase:
    variant: str
    target: str
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    log_bytes: int = 0
    log_lines: int = 0
    access_lines: int = 0

    def figures(self) -> dict[str, Any]:
        n = self.requests or 1
        return {"requests": self.requests, "seconds": round(self.seconds, 3),
                "per_second": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(percentile(self.latencies, 0.50) * 1000, 2) if self.latencies else 0.0,
                "p99_ms": round(percentile(self.latencies, 0.99) * 1000, 2) if self.latencies else 0.0,
                "server_cpu_ms": round(self.cpu.get("server", 0.0) / n * 1000, 3),
                "db_cpu_ms": round(self.cpu.get("database", 0.0) / n * 1000, 3),
                "client_cpu_ms": round(self.cpu.get("client", 0.0) / n * 1000, 3),
                "log_bytes": round(self.log_bytes / n, 1), "log_lines": round(self.log_lines / n, 2),
                "access_lines": round(self.access_lines / n, 2), "failures": len(self.failures)}


# ---------------------------------------------------------------- one request


def fetch(port: int, request: bytes, marker: bytes) -> tuple[bool, bytes]:
    """One request on a new connection, read to the server's close. True if 200 with the marker."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        chunks = []
        while data := connection.recv(65536):
            chunks.append(data)
    answer = b"".join(chunks)
    return answer[9:12] == b"200" and marker in answer, answer


# ---------------------------------------------------------------- servers


def start_server(variant: str, url: str, config: dict[str, Any], workers: int, workdir: Path,
                 backends: Callable[[], list[int]] | None, cleanup: contextlib.ExitStack) -> Server:
    """gunicorn -c gunicorn.conf.py, the variant's app and settings, stderr to a file."""
    port = scan.free_port()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("COI_") and name != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({f"COI_{name}": str(value) for name, value in config.items()})
    env.update({"COI_DATABASE_URL": url, "COI_BIND": f"127.0.0.1:{port}", "COI_WORKERS": str(workers),
                "COI_LOG_FORMAT": "json", "COI_LOG_LEVEL": LEVELS[variant],
                # No worker replaced during the run: a new worker's start (create_app) would fall
                # into whichever phase it happens in. The same for both variants.
                "COI_MAX_REQUESTS": "0"})
    if variant == "shipped":
        env["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / "prometheus")
    log_path = workdir / f"{variant}.log"
    stderr = log_path.open("wb")
    stdout = (workdir / f"{variant}.out").open("wb")
    cleanup.callback(stderr.close)
    cleanup.callback(stdout.close)
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", APPS[variant]]
    log(f"{variant}: {' '.join(command[2:])} (port {port}, COI_LOG_LEVEL={LEVELS[variant]}"
        + (", PROMETHEUS_MULTIPROC_DIR set)" if variant == "shipped" else ")"))
    process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=ROOT,
                               start_new_session=True)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()  # graceful: workers finish, then exit
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log(f"{variant} server stopped (exit status {process.returncode})")

    cleanup.callback(stop)
    return Server(variant, port, process.pid, log_path, CpuMeter(process.pid, backends), process)


def wait_ready(server: Server, workers: int, timeout: float = 60) -> None:
    """Until /healthz/live answers 200 and every worker is up."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.variant}: gunicorn exited while starting:\n"
                               + scan.tail(server.log_path))
        with contextlib.suppress(OSError):
            if get_live(server, timeout=5).status == 200 and len(server.meter.worker_pids()) >= workers:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.variant}: no answer within {timeout:.0f} s:\n"
                               + scan.tail(server.log_path))
        time.sleep(0.2)


# ---------------------------------------------------------------- load


def run_phase(server: Server, target: Target, seconds: float, clients: int) -> Phase:
    """`clients` threads, each one request at a time on a new connection, for `seconds` from a
    common start; CPU of the server's workers (and database) and the log's growth measured
    around it."""
    requests = target.requests(server.port)
    per_thread: list[tuple[list[float], list[str]]] = [([], []) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]
    errors: list[BaseException] = []

    def client(index: int) -> None:
        latencies, failures = per_thread[index]
        barrier.wait()
        number = index
        try:
            while time.perf_counter() < deadline[0]:
                start = time.perf_counter()
                ok, answer = fetch(server.port, requests[number % len(requests)], target.marker)
                latencies.append(time.perf_counter() - start)
                if not ok:
                    failures.append(answer[:300].decode(errors="replace"))
                number += clients
        except BaseException as error:  # noqa: BLE001 - reported after the phase
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    log_before = server.log_path.stat().st_size
    cpu_before = server.meter.sample()
    deadline[0] = time.perf_counter() + seconds
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu = CpuMeter.used(cpu_before, server.meter.sample())
    if errors:
        raise RuntimeError(f"{server.variant} {target.name}: a client failed: {errors[0]!r}") from errors[0]
    with server.log_path.open("rb") as written:
        written.seek(log_before)
        grown = written.read()
    phase = Phase(server.variant, target.name, seconds=elapsed, cpu=cpu, log_bytes=len(grown),
                  log_lines=grown.count(b"\n"), access_lines=grown.count(b'"logger": "coi.access"'))
    for latencies, failures in per_thread:
        phase.latencies += latencies
        phase.failures += failures
    phase.requests = len(phase.latencies)
    server.answered[target.endpoint] = (server.answered.get(target.endpoint, 0)
                                        + phase.requests - len(phase.failures))
    return phase


# ---------------------------------------------------------------- checks


def get_live(server: Server, timeout: float) -> http.client.HTTPResponse:
    """One GET /healthz/live outside the load, read and closed; an answer counted as the
    server's /metrics will count it."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    connection.request("GET", "/healthz/live")
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status == 200:
        server.answered["health.live"] = server.answered.get("health.live", 0) + 1
    return response


def request_id_header(server: Server) -> str | None:
    return get_live(server, timeout=10).getheader("X-Request-ID")


def counted(server: Server) -> dict[str, int]:
    """coi_http_requests_total by endpoint (status 200, GET) as /metrics shows it: in
    multiprocess mode the sum over both workers; the scrape itself is not yet counted."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"{server.variant}: /metrics answered {response.status}: {body[:300]}")
    found: dict[str, int] = {}
    for line in body.splitlines():
        if line.startswith("coi_http_requests_total{") and 'status="200"' in line:
            endpoint = line.split('endpoint="', 1)[1].split('"', 1)[0]
            found[endpoint] = found.get(endpoint, 0) + int(float(line.rsplit(" ", 1)[1]))
    return found


# ---------------------------------------------------------------- main


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url",
                        default=os.environ.get("COI_BENCH_POSTGRES_URL", scan.DEFAULT_POSTGRES))
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of one phase per server and endpoint, order alternating (3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one phase (4 s)")
    parser.add_argument("--clients", type=int, default=4,
                        help="client threads, one request in flight each (4: two per worker)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (2)")
    parser.add_argument("--cases", type=int, default=8, help="cases the API requests rotate over (8)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if min(args.rounds, args.clients, args.workers, args.cases) < 1 or args.seconds <= 0:
        parser.error("--rounds, --clients, --workers, --cases and --seconds must be positive")
    return args


def seed(url: str, config: dict[str, Any], cases: int) -> tuple[str, list[str]]:
    """Sites, product, route and people with API tokens (bench/scan.py's seeding), `cases`
    cases enrolled, bag registered, collected and packed; returns a site_staff's token and the
    cases' COI identifiers."""
    app = create_app({**config, "DATABASE_URL": url})
    engine = app.extensions["coi.engine"]
    try:
        team, _verifier, _loaded = scan.seed(app, 1, cases)
        with Session(engine) as session:
            cois = [coi_of(case).text for case in session.exec(select(Case)).all()]
    finally:
        engine.dispose()  # no connection of this process stays open while the servers run
    return team[0].tokens["staff"], cois


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def run(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> dict[str, Any]:
    workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="coi-bench-obs-")))
    url, backends = scan.scratch_database(args.engine, args.postgres_url, workdir, cleanup)
    config = scan.secrets_config()
    migrating = make_engine(url)
    migrate.upgrade(migrating)
    migrating.dispose()
    token, cois = seed(url, config, args.cases)
    targets = [Target("/healthz/live", "health.live", ("/healthz/live",), None, b'"status":"ok"'),
               Target("/api/v1/cases/<coi>", "api.get_case",
                      tuple(f"/api/v1/cases/{coi}" for coi in cois), token, b'"units":')]

    load_before = round(os.getloadavg()[0], 2)
    servers = {variant: start_server(variant, url, config, args.workers, workdir, backends, cleanup)
               for variant in VARIANTS}
    for server in servers.values():
        wait_ready(server, args.workers)
    headers = {variant: request_id_header(server) for variant, server in servers.items()}
    for target in targets:  # warm-up, not timed: connections, caches, imports on first use
        for server in servers.values():
            warm = run_phase(server, target, 1.0, args.clients)
            if warm.failures:
                raise RuntimeError(f"warm-up {server.variant} {target.name}: {warm.failures[0]}")

    phases: dict[tuple[str, str], list[Phase]] = {(v, t.name): [] for v in VARIANTS for t in targets}
    for number in range(args.rounds):
        order = VARIANTS if number % 2 == 0 else VARIANTS[::-1]
        for target in targets:
            for variant in order:
                phase = run_phase(servers[variant], target, args.seconds, args.clients)
                phases[(variant, target.name)].append(phase)
                f = phase.figures()
                log(f"round {number + 1} {target.name:<20} {variant:<8} {f['per_second']:>7.1f} req/s "
                    f"p50 {f['p50_ms']:.2f} ms p99 {f['p99_ms']:.2f} ms server CPU "
                    f"{f['server_cpu_ms']:.3f} ms/req log {f['log_bytes']:.0f} B/req")

    metrics_seen = {variant: counted(server) for variant, server in servers.items()}
    answered = {variant: dict(server.answered) for variant, server in servers.items()}
    log_sample = _last_access_line(servers["shipped"].log_path)
    load_after = round(os.getloadavg()[0], 2)

    results: dict[str, Any] = {}
    failures: list[str] = []
    for target in targets:
        per_variant: dict[str, Any] = {}
        for variant in VARIANTS:
            rounds = [p.figures() for p in phases[(variant, target.name)]]
            failures += [f"{variant} {target.name}: {x}" for p in phases[(variant, target.name)]
                         for x in p.failures[:2]]
            per_variant[variant] = {
                "median": {key: median([r[key] for r in rounds])
                           for key in ("per_second", "p50_ms", "p99_ms", "server_cpu_ms", "db_cpu_ms",
                                       "client_cpu_ms", "log_bytes", "log_lines", "access_lines")},
                "requests": sum(r["requests"] for r in rounds), "rounds": rounds}
        shipped, baseline = per_variant["shipped"]["median"], per_variant["baseline"]["median"]
        per_variant["ratio"] = {key: round(shipped[key] / baseline[key], 3) if baseline[key] else None
                                for key in ("per_second", "p50_ms", "p99_ms", "server_cpu_ms")}
        per_variant["server_cpu_ms_added"] = round(shipped["server_cpu_ms"] - baseline["server_cpu_ms"], 3)
        results[target.name] = per_variant

    checks = {
        "request_id_header": {v: headers[v] is not None for v in VARIANTS},
        # every answer of the shipped server counted once in /metrics, none by the baseline
        "metrics_counted": {v: {t.endpoint: [metrics_seen[v].get(t.endpoint, 0),
                                             answered[v].get(t.endpoint, 0)] for t in targets}
                            for v in VARIANTS},
        "access_lines_per_request": {v: {t.name: results[t.name][v]["median"]["access_lines"]
                                         for t in targets} for v in VARIANTS},
    }
    ok = (not failures and checks["request_id_header"] == {"shipped": True, "baseline": False}
          and all(seen == sent for seen, sent in checks["metrics_counted"]["shipped"].values())
          and all(seen == 0 for seen, _sent in checks["metrics_counted"]["baseline"].values())
          and all(v == 1 for v in checks["access_lines_per_request"]["shipped"].values())
          and all(v == 0 for v in checks["access_lines_per_request"]["baseline"].values()))
    return {"engine": args.engine, "workers": args.workers,
            "worker_class": _worker_class(servers["shipped"].log_path),
            "clients": args.clients, "rounds": args.rounds, "seconds": args.seconds,
            "cpus": os.cpu_count(), "load_average": {"before": load_before, "after": load_after},
            "results": results, "checks": checks, "ok": ok, "failure_examples": failures[:5],
            "access_line_example": log_sample}


def _worker_class(path: Path) -> str:
    """As gunicorn told it at INFO in the shipped server's log ("Using worker: sync")."""
    for line in path.read_text(errors="replace").splitlines():
        if "Using worker: " in line:
            return line.split("Using worker: ", 1)[1].split('"', 1)[0]
    return "?"


def _last_access_line(path: Path) -> str | None:
    lines = [line for line in path.read_text(errors="replace").splitlines()
             if '"logger": "coi.access"' in line and "/api/v1/cases/" in line]
    return lines[-1] if lines else None


def report(figures: dict[str, Any]) -> str:
    lines = [f"engine {figures['engine']}, gunicorn -c gunicorn.conf.py: {figures['workers']} "
             f"{figures['worker_class']} workers; {figures['clients']} clients (a new connection per "
             f"request), {figures['rounds']} rounds x {figures['seconds']:g} s per phase, "
             f"{figures['cpus']} CPUs; 1-min load average {figures['load_average']['before']} before, "
             f"{figures['load_average']['after']} after. Medians over the rounds.", "",
             f"{'endpoint':<20} {'variant':<9} {'requests':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
             f"{'server CPU ms/req':>17} {'client CPU':>10} {'log B/req':>9}"]
    for name, result in figures["results"].items():
        for variant in VARIANTS:
            m = result[variant]["median"]
            cpu = f"{m['server_cpu_ms']:.3f}" + (f" +{m['db_cpu_ms']:.3f} db"
                                                 if figures["engine"] == "postgresql" else "")
            lines.append(f"{name:<20} {variant:<9} {result[variant]['requests']:>8} "
                         f"{m['per_second']:>8.1f} {m['p50_ms']:>7.2f} {m['p99_ms']:>7.2f} "
                         f"{cpu:>17} {m['client_cpu_ms']:>10.3f} {m['log_bytes']:>9.0f}")
        r = result["ratio"]
        lines.append(f"{name:<20} {'ratio':<9} {'':>8} {r['per_second']:>8.3f} {r['p50_ms']:>7.3f} "
                     f"{r['p99_ms']:>7.3f} {r['server_cpu_ms']:>17.3f} {'':>10}   (shipped/baseline; "
                     f"CPU added {result['server_cpu_ms_added']:.3f} ms/req)")
    lines += ["", f"checks: {json.dumps(figures['checks'])}",
              f"an access line: {figures['access_line_example']}",
              "result: " + ("OK" if figures["ok"] else "FAILED " + "; ".join(figures["failure_examples"]))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)

    def terminated(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)  # unwinds through the cleanup stack

    signal.signal(signal.SIGTERM, terminated)
    with contextlib.ExitStack() as cleanup:
        figures = run(args, cleanup)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
