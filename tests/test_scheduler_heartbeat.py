"""The scheduler's heartbeat: each run of a job group is recorded with what its jobs found and
which failed; readiness fails, and coordinators, QA and global administrators see a banner,
once the latest sweep is older than two sweep intervals (one second before, at and after);
liveness answers whatever the database; the alarm page says whether anyone will be told;
the sweep prunes old runs."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlmodel import Session, col, select

from coi import jobs
from coi.app import create_app
from coi.config import ConfigError
from coi.core import alerting
from coi.core.display import local_text
from coi.jobs import sweeps
from coi.jobs.recording import run_recorded
from coi.models import Alarm, SchedulerRun
from coi.services import heartbeat
from tests.databases import ENGINE
from tests.helpers import login, make_case, post_form

SWEEP = timedelta(seconds=60)  # the default COI_SWEEP_INTERVAL_SECONDS
BANNER = 'class="scheduler-silent" role="alert"'
MEANING = "Deadlines are not checked and nobody is told of alarms."


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """As an installation runs: a scheduler is expected beside the web workers."""
    return app_config | {"SCHEDULER_EXPECTED": True}


def beat(session: Session, at: datetime, group: str = "sweeps") -> None:
    """A run of `group` that finished at `at`, as the scheduler records it."""
    heartbeat.record_run(session=session, group=group, started_at=at - timedelta(seconds=1),
                         finished_at=at, found={}, failed=[], host="scheduler-1", pid=4242)
    session.commit()


def runs(session: Session) -> list[SchedulerRun]:
    session.expire_all()
    return list(session.exec(select(SchedulerRun).order_by(col(SchedulerRun.id))))


# ------------------------------------------------------------------ recording

def test_the_scheduler_command_records_each_group_with_what_its_jobs_found(app, session, world, clock):
    case = make_case(app, session, world, clock)
    case.next_step, case.last_step_at, case.next_due_at = "collect", clock.now(), clock.now()
    session.add(case)
    session.commit()
    result = app.test_cli_runner().invoke(args=["coi", "scheduler", "--once"])
    assert result.exit_code == 0, result.output
    sweep, telling = runs(session)
    assert (sweep.job_group, telling.job_group) == ("sweeps", "notifications")
    assert sweep.started_at == sweep.finished_at == clock.now()  # the app's clock, in UTC
    assert json.loads(sweep.found) == {"overdue_steps": 1, "late_shipments": 0, "silent_loggers": 0,
                                       "expiring_units": 0, "escalate": 0, "old_scheduler_runs": 0}
    assert set(json.loads(telling.found)) == {"notify", "deliver"}
    assert json.loads(sweep.failed) == json.loads(telling.failed) == []
    assert (sweep.host, sweep.pid) == (socket.gethostname(), os.getpid())


def test_a_failing_job_is_recorded_as_failed_and_the_others_still_run_and_are_recorded(
        engine, session, clock, caplog):
    def broken(_session: Session, _now: datetime) -> int:
        raise RuntimeError("the mail server is on fire")

    found = run_recorded(engine, clock, "notifications", {
        "first": lambda _s, _n: 2, "broken": broken, "last": lambda _s, _n: 1})
    assert found == {"first": 2, "last": 1}
    assert "job broken failed" in caplog.text
    (run,) = runs(session)
    assert json.loads(run.found) == {"first": 2, "last": 1}
    assert json.loads(run.failed) == ["broken"]


# ------------------------------------------------------------------ readiness and liveness

@pytest.mark.parametrize(("offset", "ready"), [(-1, True), (0, True), (1, False)])
def test_readiness_fails_once_the_last_sweep_is_older_than_two_intervals(
        client, session, clock, offset, ready):
    last = clock.now()
    beat(session, last)
    assert client.get("/healthz/ready").status_code == 200
    clock.advance(seconds=2 * SWEEP.total_seconds() + offset)
    response = client.get("/healthz/ready")
    body = response.get_json()
    assert response.status_code == (200 if ready else 503)
    assert body["scheduler"]["last_sweep_finished_at"] == last.isoformat()
    if not ready:
        assert body["status"] == "unavailable"
        assert body["scheduler"]["silent_since"] == last.isoformat()
        assert f"no sweep has finished since {last.isoformat()}" in body["scheduler"]["problem"]
        assert "flask --app wsgi coi scheduler" in body["scheduler"]["problem"]


def test_healthz_answers_as_readiness_with_the_decoders(client, session, clock):
    beat(session, clock.now() - 3 * SWEEP)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert "silent" in body["scheduler"]["problem"]
    assert body["database"]["reachable"] is True
    assert body["decoders"]["zxing-cpp"]["available"] is True


def test_readiness_fails_when_the_scheduler_never_ran(client, session, clock):
    beat(session, clock.now(), group="notifications")  # telling people is not sweeping deadlines
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert response.get_json()["scheduler"]["silent_since"] is None
    assert "the scheduler never ran" in response.get_json()["scheduler"]["problem"]


def test_an_installation_that_runs_the_jobs_otherwise_turns_the_scheduler_check_off(app_config):
    app = create_app(app_config | {"SCHEDULER_EXPECTED": False})
    try:
        response = app.test_client().get("/healthz/ready")
    finally:
        app.extensions["coi.engine"].dispose()
    assert response.status_code == 200
    assert response.get_json()["scheduler"] == {"expected": False}


def test_liveness_answers_while_the_database_is_unreachable(app_config, tmp_path):
    unreachable = (f"sqlite:///{tmp_path / 'no-such-folder' / 'coi.sqlite3'}" if ENGINE == "sqlite"
                   else "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    app = create_app(app_config | {"DATABASE_URL": unreachable})
    client = app.test_client()
    try:
        live, ready = client.get("/healthz/live"), client.get("/healthz/ready")
    finally:
        app.extensions["coi.engine"].dispose()
    assert live.status_code == 200 and live.get_json()["status"] == "ok"
    assert ready.status_code == 503
    assert ready.get_json()["database"]["reachable"] is False


# ------------------------------------------------------------------ the banner

@pytest.mark.parametrize(("persona", "zone"), [("coordinator", "America/Chicago"),
                                               ("qa", "America/Chicago"), ("root", "UTC")])
def test_coordinators_qa_and_global_admins_are_told_since_when_the_scheduler_is_silent(
        client, session, world, clock, persona, zone):
    last = clock.now()
    beat(session, last)
    login(client, persona)
    assert BANNER not in client.get("/").get_data(as_text=True)
    clock.advance(seconds=2 * SWEEP.total_seconds() + 1)
    page = client.get("/").get_data(as_text=True)
    assert BANNER in page
    assert f"The scheduler has been silent since <time datetime=\"{last.isoformat()}\"" in page
    assert local_text(last, zone) in page  # the reader's own zone, named
    assert MEANING in page and "flask --app wsgi coi scheduler" in page
    assert BANNER in client.get("/account/tokens").get_data(as_text=True)  # on every page


def test_a_form_shown_again_with_its_error_carries_the_banner_too(client, session, world, clock):
    """A refused form is answered from a POST, whose own transaction writes: the banner is
    read in a session of its own, and the refusal is shown with it."""
    beat(session, clock.now())
    login(client, "coordinator")
    clock.advance(seconds=2 * SWEEP.total_seconds() + 1)
    answer = post_form(client, "/account/password", "/account/password",
                       {"current": "not the password", "new": "x", "repeated": "y"})
    page = answer.get_data(as_text=True)
    assert answer.status_code >= 400 and "Nothing was changed" in page
    assert BANNER in page and "The scheduler has been silent since" in page


@pytest.mark.parametrize("persona", ["staff", "courier", "admin"])
def test_site_staff_couriers_and_site_admins_see_no_banner(client, world, persona):
    login(client, persona)  # the scheduler never ran
    assert BANNER not in client.get("/").get_data(as_text=True)


def test_the_banner_says_when_the_scheduler_never_ran(client, world):
    login(client, "coordinator")
    page = client.get("/").get_data(as_text=True)
    assert BANNER in page and "The scheduler has never run." in page and MEANING in page


# ------------------------------------------------------------------ the alarm page

@pytest.fixture
def quiet_alarm(app: Flask, session: Session, world: Any, clock: Any) -> Alarm:
    """A step overdue, raised by a sweep; nobody told yet (no notification written)."""
    case = make_case(app, session, world, clock)
    case.next_step, case.last_step_at, case.next_due_at = "collect", clock.now(), clock.now()
    session.add(case)
    session.commit()
    assert sweeps.overdue_steps(session, clock.now()) == 1
    session.commit()
    return session.exec(select(Alarm)).one()


def test_the_alarm_page_says_notifications_go_out_within_seconds_while_the_scheduler_runs(
        client, session, clock, quiet_alarm):
    beat(session, clock.now(), group="notifications")
    login(client, "staff")
    page = client.get(f"/alarms/{quiet_alarm.id}").get_data(as_text=True)
    assert "the scheduler is running and sends notifications within seconds" in page


def test_the_alarm_page_says_nothing_will_be_sent_while_the_scheduler_is_silent(
        client, session, clock, quiet_alarm):
    last = clock.now()
    beat(session, last, group="notifications")
    clock.advance(minutes=5)
    login(client, "staff")
    page = client.get(f"/alarms/{quiet_alarm.id}").get_data(as_text=True)
    assert (f"the scheduler has been silent since <time datetime=\"{last.isoformat()}\"" in page)
    assert local_text(last, "America/New_York") in page  # Boston staff: Boston's time
    assert "nothing will be sent until it runs again" in page
    assert "within seconds" not in page


# ------------------------------------------------------------------ pruning

def test_the_sweep_forgets_runs_older_than_thirty_days(engine, session, clock):
    beat(session, clock.now() - timedelta(days=30, seconds=1))
    beat(session, clock.now() - timedelta(days=30), group="notifications")  # kept: not older
    beat(session, clock.now() - timedelta(days=31), group="notifications")
    found = run_recorded(engine, clock, "sweeps", jobs.deadline_jobs(alerting.DEFAULT))
    assert found["old_scheduler_runs"] == 2
    assert [(run.job_group, run.finished_at) for run in runs(session)] == [
        ("notifications", clock.now() - timedelta(days=30)), ("sweeps", clock.now())]


def test_the_runs_kept_are_a_setting(app_config, session, clock):
    beat(session, clock.now() - timedelta(days=8))
    app = create_app(app_config | {"SCHEDULER_RUNS_KEPT_DAYS": 7})
    try:
        result = app.test_cli_runner().invoke(args=["coi", "scheduler", "--once"])
    finally:
        app.extensions["coi.engine"].dispose()
    assert result.exit_code == 0, result.output
    assert "old_scheduler_runs 1" in result.output
    assert [run.job_group for run in runs(session)] == ["sweeps", "notifications"]


def test_keeping_no_runs_is_refused_at_start(app_config):
    with pytest.raises(ConfigError, match="COI_SCHEDULER_RUNS_KEPT_DAYS must be at least 1"):
        create_app(app_config | {"SCHEDULER_RUNS_KEPT_DAYS": 0})
