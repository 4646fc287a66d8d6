"""Gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`.

Everything is read from the environment, so one file serves every installation
(docs/operations.md, "Production: gunicorn"). The app writes one JSON access line per request
itself (coi/logs.py): gunicorn's access log is off, and its own messages (workers starting,
timeouts) go through the same JSON handler.

Behind a reverse proxy, set COI_PROXY_FIX (e.g. x_for=1,x_proto=1) so the app takes the
client's address and scheme from the proxy's X-Forwarded-* headers; gunicorn's own
`forwarded_allow_ips` only governs which of those headers gunicorn itself believes for the
scheme (wsgi.url_scheme), and ProxyFix overrides that anyway."""

from __future__ import annotations

import os
from typing import Any


def _number(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {value!r}.") from None


bind = [address.strip() for address in os.environ.get("COI_BIND", "127.0.0.1:8000").split(",")]
# Sync workers: each request holds one; scans and uploads are short and queue on the
# database anyway. Two per core, as gunicorn suggests, capped so a large machine does not
# open more database connections than a default PostgreSQL allows.
workers = _number("COI_WORKERS", min(2 * (os.cpu_count() or 1) + 1, 9))
timeout = _number("COI_WORKER_TIMEOUT", 60)  # a logger file of 64 MiB is read within a request
graceful_timeout = _number("COI_GRACEFUL_TIMEOUT", 30)  # SIGTERM: requests under way finish
keepalive = 5
# Workers are replaced now and then, so no slow leak grows without bound; the jitter keeps
# them from restarting together.
max_requests = _number("COI_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10

# gunicorn 27's control socket (gunicornc: add workers, reload, stop) sits at one default path
# per user: off unless COI_CONTROL_SOCKET names where this installation's goes.
control_socket = os.environ.get("COI_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

accesslog = None  # the app's own JSON access line replaces it
errorlog = "-"
loglevel = os.environ.get("COI_LOG_LEVEL", "info").lower()
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": loglevel.upper(), "handlers": ["coi"]},
    "loggers": {
        # Both propagate to the root's one handler; gunicorn.access is silent (accesslog off).
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        # The app's quiet loggers (coi.logs.QUIET): the workers import it before create_app.
        "alembic.runtime.plugins": {"level": "WARNING"},
    },
    "handlers": {"coi": {"()": "coi.logs.handler"}},  # COI_LOG_FORMAT: json (default) or text
    "formatters": {},
}


def on_starting(server: Any) -> None:
    """Start the metrics afresh: the files of processes that are gone (an earlier run's
    workers) would be added to this run's counts. A live process's files stay: the
    scheduler writes into the same directory and may outlive a restart of the web server."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for entry in os.scandir(directory):
        pid = entry.name.removesuffix(".db").rpartition("_")[2]
        if entry.is_file() and entry.name.endswith(".db") and not (pid.isdigit() and _alive(int(pid))):
            os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_exit(server: Any, worker: Any) -> None:
    """A worker that ended: its live gauges are dropped (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
