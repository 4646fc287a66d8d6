"""The WSGI entry of the scan benchmark (bench/scan.py), for the benchmark only.

`gunicorn 'bench.bench_app:build()'` serves the real app, built by `coi.app.create_app`, plus one
extra endpoint: `POST /api/bench/bare` inserts one row into `bench_row` and commits. It runs
through the same request machinery as a custody scan (bearer token looked up by the auth
hook, the permission check, `coi.db.request_session()` on the writing engine, commit,
teardown), so a scan's cost beyond it is the scan service itself.

The path is under /api/ on purpose: `coi.auth` reads bearer tokens only for API requests
(`is_api_request`: the `api` blueprint or a path starting with /api/); elsewhere it reads
the login cookie. The table is made here with raw SQL, never by the app's migrations.

Configuration comes from the environment: COI_BENCH_DATABASE_URL (required) and the usual
COI_* settings (see coi/config.py); bench/scan.py sets all of them.

`gunicorn 'bench.bench_app:uninstrumented()'` is the baseline of bench/observability.py: the
production app (`wsgi:app`, configured from COI_* alone) without its request instrumentation,
no request id, access line or request metrics.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Flask, jsonify
from sqlalchemy import Engine, text

from coi import logs
from coi.app import create_app, csrf
from coi.core.access import AUTHENTICATED, permission
from coi.db import for_writing, request_session
from coi.views import metrics as metrics_view
from coi.web import actor, json_body, now

BARE_PATH = "/api/bench/bare"

blueprint = Blueprint("bench", __name__, url_prefix="/api/bench")

_TABLES = {
    "sqlite": "CREATE TABLE IF NOT EXISTS bench_row (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, "
              "at TEXT NOT NULL, note TEXT NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS bench_row (id BIGSERIAL PRIMARY KEY, "
                  "user_id INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL, note TEXT NOT NULL)",
}
_LOCK_KEY = 0x0C01BE7C  # PostgreSQL advisory lock: gunicorn workers start at the same time


@blueprint.route("/bare", methods=["POST"])
@permission(AUTHENTICATED)
def bare() -> Any:
    """Insert one row and commit: the floor under any write request of this app."""
    data = json_body()
    db = request_session()
    at = now()
    db.execute(text("INSERT INTO bench_row (user_id, at, note) VALUES (:user_id, :at, :note)"),
               {"user_id": actor().user_id,
                "at": at if db.get_bind().dialect.name == "postgresql" else at.isoformat(),
                "note": str(data.get("note", ""))[:100] if isinstance(data, dict) else ""})
    db.commit()
    return jsonify({"recorded": True})


def ensure_table(engine: Engine) -> None:
    """CREATE TABLE IF NOT EXISTS, safe when several workers start at once."""
    dialect = engine.dialect.name
    if dialect not in _TABLES:
        raise RuntimeError(f"bench_app supports sqlite and postgresql, not {dialect}")
    with for_writing(engine).begin() as connection:  # SQLite: BEGIN IMMEDIATE
        if dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        connection.execute(text(_TABLES[dialect]))


def overrides_from_environment() -> dict[str, Any]:
    url = os.environ.get("COI_BENCH_DATABASE_URL")
    if not url:
        raise RuntimeError("set COI_BENCH_DATABASE_URL (bench/scan.py does)")
    return {"DATABASE_URL": url}


def build(overrides: dict[str, Any] | None = None) -> Flask:
    """The app plus the bare endpoint; the gunicorn factory (`bench.bench_app:build()`)."""
    application = create_app(overrides if overrides is not None else overrides_from_environment())
    csrf.exempt(blueprint)  # bearer tokens, like the API blueprint
    application.register_blueprint(blueprint)
    ensure_table(application.extensions["coi.engine"])
    return application


# The request instrumentation create_app installs (coi.logs.install, coi.views.metrics.install):
# (hook list, function).
INSTRUMENTATION = (("before_request_funcs", logs._start), ("after_request_funcs", logs._finish),
                   ("after_request_funcs", metrics_view._count_request))


def remove_instrumentation(application: Flask) -> None:
    """Take the request id, the access line and the request metrics out of an app made by
    create_app. Fails if a hook is not where it was installed: a baseline that silently kept
    them would measure nothing."""
    for attribute, hook in INSTRUMENTATION:
        hooks = getattr(application, attribute).get(None, [])
        if hook not in hooks:
            raise RuntimeError(f"{hook.__module__}.{hook.__name__} is not in app.{attribute}: "
                               "has coi.logs or coi.views.metrics changed how they install?")
        hooks.remove(hook)


def uninstrumented() -> Flask:
    """`wsgi:app` without the request instrumentation; the gunicorn factory of the baseline of
    bench/observability.py (`bench.bench_app:uninstrumented()`). Run it with COI_LOG_LEVEL=WARNING
    and no PROMETHEUS_MULTIPROC_DIR, as that benchmark does."""
    application = create_app()
    remove_instrumentation(application)
    return application
