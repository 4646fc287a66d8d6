"""Logs: one JSON object per line (or plain text for a developer's terminal), and what every
line written during a web request says about it: request id, user, sites, endpoint, method,
path. One access line per request adds the status and the duration.

Never patient data: a line names the request by its path without the query string, and the
person by username and id; no form value, body or query string is ever put in a record here.
Messages elsewhere name records by id for the same reason.

`configure` is called by `create_app`, so the web workers, the scheduler process and every
`flask coi` command log the same way; gunicorn's own error log goes through the same handler
(`handler`, named in gunicorn.conf.py)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask, g, has_request_context, request
from werkzeug.wrappers import Response

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# An incoming X-Request-ID (set by a proxy or a client) is kept only when it is short and
# plain: it is written into every line and echoed back, so it must not carry markup, line
# breaks or someone's data.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
REQUEST_ID_HEADER = "X-Request-ID"
# What a line made during a request carries, in this order.
REQUEST_FIELDS = ("request_id", "user", "user_id", "sites", "site", "case", "endpoint", "method", "path")
ACCESS_FIELDS = ("status", "duration_ms", "remote_addr")
UNMATCHED = "unmatched"  # the endpoint of a request no route matched (404, 405)
log = logging.getLogger("coi.access")
# Loggers kept to warnings: alembic lists its plugins at import; APScheduler writes two lines
# per job run ("Running job", "executed successfully"), every few seconds, which the
# scheduler's heartbeat (scheduler_run) records better. Its start, stop and missed runs stay.
QUIET = {"alembic.runtime.plugins": "WARNING", "apscheduler.executors.default": "WARNING",
         "apscheduler.executors.telling": "WARNING"}
WERKZEUG_REQUEST_LINE = '"%s" %s %s'  # werkzeug.serving's request line, query string and all


class JsonFormatter(logging.Formatter):
    """One JSON object per line: UTC time with its zone, level, logger, message, process id,
    the request's fields when there is one, the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which gunicorn worker, or the scheduler
        }
        for name in (*REQUEST_FIELDS, *ACCESS_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A developer's terminal: the classic line, with the request id and endpoint appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{name}={getattr(record, name)}" for name in (*REQUEST_FIELDS, *ACCESS_FIELDS)
                  if name not in ("method", "path") and getattr(record, name, None) is not None]
        return text + (" [" + " ".join(extras) + "]" if extras else "")


class RequestContext(logging.Filter):
    """Adds the current request's fields to every record that passes the handler (a filter on
    the handler, not on a logger: records of every logger reach it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            for name, value in request_fields().items():
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True


class DevServerRequests(logging.Filter):
    """Drops the development server's own request lines (`flask run`): they carry the query
    string, and the access line replaces them. Its other lines (the address it serves on)
    stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return WERKZEUG_REQUEST_LINE not in str(record.msg)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is written (not when the handler was
    made), so a test capturing stderr, or gunicorn redirecting it, sees every line."""

    coi_handler = True  # how `configure` finds the handler it installed before

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def handler(log_format: str | None = None) -> logging.Handler:
    """The handler every process logs through: JSON (the default) or text, with the request
    fields. `log_format` defaults to COI_LOG_FORMAT (gunicorn's logging is set up from it
    before the app exists)."""
    chosen = log_format or os.environ.get("COI_LOG_FORMAT") or "json"
    made = StderrHandler()
    made.setFormatter(TextFormatter() if chosen == "text" else JsonFormatter())
    made.addFilter(RequestContext())
    return made


def configure(log_format: str, level: str) -> None:
    """Route every logger through one handler on the root logger. Idempotent: a second app
    in the same process (tests, the CLI) replaces the handler rather than doubling lines.
    Handlers others put on the root logger (pytest's) are left alone."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "coi_handler", False)]:
        root.removeHandler(old)
    root.addHandler(handler(log_format))
    root.setLevel(level)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, DevServerRequests) for f in werkzeug.filters):
        werkzeug.addFilter(DevServerRequests())


def check(log_format: str, level: str) -> str | None:
    """What is wrong with the logging settings, or None."""
    if log_format not in FORMATS:
        return f"COI_LOG_FORMAT is {log_format!r}; use one of: {', '.join(FORMATS)}."
    if level.upper() not in LEVELS:
        return f"COI_LOG_LEVEL is {level!r}; use one of: {', '.join(LEVELS)}."
    return None


# ---------------------------------------------------------------- requests

def install(app: Flask) -> None:
    """Give each request its id and start time (registered first, so that everything logged
    by later hooks carries them) and write its access line."""
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.request_started = time.perf_counter()
    g.request_id = _request_id()


def _request_id() -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


def request_id() -> str:
    """This request's id (made on first use if the request never reached `_start`)."""
    if "request_id" not in g:
        g.request_id = _request_id()
    return str(g.request_id)


def elapsed_seconds() -> float:
    """Seconds since this request began (0 if it never reached `_start`)."""
    started = g.get("request_started")
    return time.perf_counter() - started if started is not None else 0.0


def endpoint_name() -> str:
    """The Flask endpoint: a bounded set of names, whatever path was asked for."""
    return request.endpoint or UNMATCHED


def request_fields() -> dict[str, Any]:
    """The request's fields for a log line: who (username and id once the login is known,
    their sites' codes), what (endpoint, method, path without its query string, and the site
    and case it concerned when a handler named them: `concerns`)."""
    fields: dict[str, Any] = {"request_id": request_id(), "endpoint": endpoint_name(),
                              "method": request.method, "path": request.path}
    for name in ("site", "case"):
        if g.get(f"log_{name}"):
            fields[name] = g.get(f"log_{name}")
    actor = g.get("actor")
    if actor is not None:
        fields["user"], fields["user_id"] = actor.username, actor.user_id
        codes: Mapping[int, str] = getattr(actor, "site_codes", {})
        fields["sites"] = sorted({codes.get(site, str(site)) for site, _role in actor.grants})
    return fields


def concerns(*, site: str | None = None, case: str | None = None) -> None:
    """Name, for this request's later log lines and its access line, the site it acted at and
    the case it concerned (a site code and a COI identifier: never patient data). For requests
    whose path does not say so, e.g. a scan, whose case and site travel in its body."""
    if has_request_context():
        if site:
            g.log_site = site
        if case:
            g.log_case = case


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    log.info("%s %s %s", request.method, request.path, response.status_code,
             extra={"status": response.status_code, "duration_ms": round(elapsed_seconds() * 1000, 1),
                    "remote_addr": request.remote_addr})
    return response
