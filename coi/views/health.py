"""Health for monitors and orchestrators: liveness (the process answers), readiness (the
database is reachable and migrated, and the scheduler is not silent), and `/healthz`, the
readiness answer with the barcode decoders, as monitors have always asked it. Also the
scheduler's silence as pages show it (a banner in the layout, the alarm page)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from coi import migrate
from coi.core.access import PUBLIC, allowed, permission
from coi.labels import available_decoders
from coi.services import heartbeat
from coi.web import now, request_session

blueprint = Blueprint("health", __name__)

START_COMMAND = "flask --app wsgi coi scheduler"


@blueprint.route("/healthz/live")
@permission(PUBLIC)
def live() -> Any:
    """Liveness: the process answers requests. Touches no database, so an orchestrator does
    not restart a healthy web worker because the database or the scheduler is down."""
    return jsonify({"status": "ok", "version": current_app.config["VERSION"]})


@blueprint.route("/healthz/ready")
@permission(PUBLIC)
def ready() -> Any:
    """Readiness: 503 when the database is unreachable or not migrated to the code's head, or
    when the scheduler is expected and silent (its latest sweep finished more than two sweep
    intervals ago, or it never ran)."""
    body, healthy = _readiness()
    return jsonify(body), 200 if healthy else 503


@blueprint.route("/healthz")
@permission(PUBLIC)
def healthz() -> Any:
    """Readiness (as /healthz/ready), with the barcode decoders."""
    body, healthy = _readiness()
    body["decoders"] = {d.name: {"available": d.available, "version": d.version, "detail": d.detail}
                        for d in available_decoders()}
    return jsonify(body), 200 if healthy else 503


def _readiness() -> tuple[dict[str, Any], bool]:
    engine = current_app.extensions["coi.engine"]
    head = migrate.head_revision()
    database: dict[str, Any] = {"engine": engine.dialect.name, "migration_head": head}
    try:
        current = migrate.current_revision(engine)
        database.update(migration_current=current, reachable=True)
        healthy = current == head
        if not healthy:
            database["problem"] = "the database is not at the migration head: run `flask coi db upgrade`"
    except SQLAlchemyError as error:
        database.update(reachable=False, problem=type(error).__name__)
        healthy = False
    scheduler = _scheduler_state(engine, checkable=healthy)
    healthy = healthy and "problem" not in scheduler
    body = {"status": "ok" if healthy else "unavailable", "version": current_app.config["VERSION"],
            "database": database, "scheduler": scheduler}
    return body, healthy


def _scheduler_state(engine: Any, *, checkable: bool) -> dict[str, Any]:
    """The scheduler as readiness reports it: its latest sweep, and a problem when silent."""
    if not current_app.config["SCHEDULER_EXPECTED"]:
        return {"expected": False}
    if not checkable:
        return {"expected": True, "checked": False}  # the database's problem is the one to fix
    interval = sweep_interval()
    try:
        with Session(engine) as session:
            found = heartbeat.silence(session=session, now=now(), group="sweeps", interval=interval)
    except SQLAlchemyError as error:
        return {"expected": True, "checked": False, "problem": type(error).__name__}
    state: dict[str, Any] = {
        "expected": True, "checked": True, "sweep_interval_seconds": int(interval.total_seconds()),
        "last_sweep_finished_at": found.last.isoformat() if found.last else None}
    if found.silent:
        state["silent_since"] = state["last_sweep_finished_at"]
        state["problem"] = (
            f"the scheduler is silent: no sweep has finished since {found.last.isoformat()}, more "
            f"than {int(found.allowed.total_seconds())} s ago; start `{START_COMMAND}`"
            if found.last else f"the scheduler never ran: start `{START_COMMAND}`")
    return state


def sweep_interval() -> timedelta:
    return timedelta(seconds=int(current_app.config["SWEEP_INTERVAL_SECONDS"]))


def delivery_interval() -> timedelta:
    return timedelta(seconds=int(current_app.config["DELIVERY_INTERVAL_SECONDS"]))


def notifications_silence(session: Session) -> heartbeat.Silence | None:
    """Whether notifications go out (the alarm page says so): None when the installation does
    not run the scheduler as expected (COI_SCHEDULER_EXPECTED off) and this cannot be known."""
    if not current_app.config["SCHEDULER_EXPECTED"]:
        return None
    return heartbeat.silence(session=session, now=now(), group="notifications",
                             interval=delivery_interval())


@blueprint.app_context_processor
def scheduler_banner() -> dict[str, Any]:
    """`scheduler_silence()` for the layout: the sweeps' silence, for the people who must act
    on it (coordinators and QA at any site, global administrators), else None. A callable, so
    that only the layout's render asks, once per request (one indexed query)."""
    return {"scheduler_silence": _silence_for_reader}


def _silence_for_reader() -> heartbeat.Silence | None:
    if "scheduler_silence" not in g:
        g.scheduler_silence = _sweeps_silence()
    found: heartbeat.Silence | None = g.scheduler_silence
    return found if found is not None and found.silent else None


def _sweeps_silence() -> heartbeat.Silence | None:
    if not current_app.config["SCHEDULER_EXPECTED"] or not allowed(g.get("actor"), "scheduler.watch"):
        return None
    try:
        if request.method in ("GET", "HEAD"):  # the request's own (reading) transaction
            return heartbeat.silence(session=request_session(), now=now(), group="sweeps",
                                     interval=sweep_interval())
        # A form's answer: a reading session of its own, never the request's writing one.
        with Session(current_app.extensions["coi.engine"]) as session:
            return heartbeat.silence(session=session, now=now(), group="sweeps",
                                     interval=sweep_interval())
    except SQLAlchemyError:
        return None  # the error page of a database failure must not fail on its banner
