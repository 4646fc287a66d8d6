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
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Flask, jsonify
from sqlalchemy import Engine, text

from coi.app import create_app, csrf
from coi.core.access import AUTHENTICATED, permission
from coi.db import for_writing, request_session
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

