"""The production recipe, run for real: gunicorn with gunicorn.conf.py, two workers, the
metrics of both in one /metrics, JSON logs on stderr, ProxyFix, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
TOKEN = "scrape-token-for-the-test-0123456789"  # noqa: S105 - a test's own
REQUESTS = 40
STARTUP_S = 60.0  # waited for at most; nothing is asserted about time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    stderr: Path
    env: dict[str, str]

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        request = urllib.request.Request(self.url + path, headers=headers or {})  # noqa: S310 - http://127.0.0.1
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - our own server
                return answer.status, dict(answer.headers), answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def lines(self) -> list[dict[str, Any]]:
        """Every line gunicorn and the app wrote to stderr, each parsed as JSON (fails on one
        that is not)."""
        return [json.loads(line) for line in self.stderr.read_text().splitlines() if line.strip()]


def environment(run_config: dict[str, Any], database_url: str, metrics_dir: Path,
                port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("COI_")}
    env.update({
        "PYTHONPATH": str(ROOT), "COI_MODE": "testing", "COI_DATABASE_URL": database_url,
        "COI_SECRET_KEY": run_config["SECRET_KEY"], "COI_PHI_KEYS": ",".join(run_config["PHI_KEYS"]),
        "COI_PHI_INDEX_KEY": run_config["PHI_INDEX_KEY"],
        "COI_INSTALLATION_SIGNING_KEY": run_config["INSTALLATION_SIGNING_KEY"],
        "COI_BIND": f"127.0.0.1:{port}", "COI_WORKERS": "2", "COI_METRICS_TOKEN": TOKEN,
        "COI_PROXY_FIX": "x_for=1", "COI_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    })
    return env


@pytest.fixture
def server(run_config: dict[str, Any], database_url: str, tmp_path: Path) -> Iterator[Server]:
    if not GUNICORN.exists():
        pytest.skip("gunicorn is not installed beside this Python")
    port, stderr = free_port(), tmp_path / "gunicorn.stderr"
    env = environment(run_config, database_url, tmp_path / "metrics", port)
    with stderr.open("wb") as sink:
        process = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                                   env=env, stdout=subprocess.DEVNULL, stderr=sink)
    running = Server(f"http://127.0.0.1:{port}", process, stderr, env)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, stderr.read_text()
            try:
                running.get("/login")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not answer:\n{stderr.read_text()}")
                time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    for line in metrics.splitlines():
        found = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if found and dict(re.findall(r'(\w+)="([^"]*)"', found.group(1))) == labels:
            return float(found.group(2))
    return 0.0


def test_gunicorn_serves_counts_and_logs_across_two_workers_and_stops_on_sigterm(server):
    # The scheduler, started beside the web with the same directory: readiness sees its run,
    # and its sweeps show up in the web's /metrics.
    once = subprocess.run([str(Path(sys.executable).with_name("flask")), "--app", "wsgi", "coi",
                           "scheduler", "--once"], cwd=ROOT, env=server.env, capture_output=True,
                          timeout=120, check=False)
    assert once.returncode == 0, once.stderr
    with ThreadPoolExecutor(4) as pool:  # concurrent, so both workers take requests
        answers = list(pool.map(lambda _n: server.get("/healthz/ready"), range(REQUESTS)))
    assert [status for status, _h, _b in answers] == [200] * REQUESTS

    status, _headers, _body = server.get("/metrics")
    assert status == 401  # no token
    status, _headers, metrics = server.get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert sample(metrics, "coi_http_requests_total", endpoint="health.ready", method="GET",
                  status="200") == REQUESTS
    assert sample(metrics, "coi_http_request_duration_seconds_count", endpoint="health.ready") == REQUESTS
    assert sample(metrics, "coi_alarms_open", severity="critical") == 0
    assert sample(metrics, "coi_sweep_duration_seconds_count", job="overdue_steps") == 1

    forwarded = server.get("/login", {"X-Forwarded-For": "203.0.113.7"})

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=STARTUP_S) == 0
    lines = server.lines()  # every line JSON
    access = {line["request_id"]: line for line in lines if line["logger"] == "coi.access"}
    served_by = {access[headers["X-Request-ID"]]["pid"] for _s, headers, _b in answers}
    assert len(served_by) == 2  # both workers answered, and /metrics counted both
    assert access[forwarded[1]["X-Request-ID"]]["remote_addr"] == "203.0.113.7"
    assert all(line["remote_addr"] == "127.0.0.1" for _id, line in access.items()
               if line["path"] == "/healthz/ready")
    gunicorn = [line["message"] for line in lines if line["logger"] == "gunicorn.error"]
    assert any("Booting worker" in message for message in gunicorn)
    assert any("Shutting down" in message for message in gunicorn)
