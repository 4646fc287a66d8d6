"""The Prometheus metrics: what an operator reads at /metrics after scans, logger uploads,
failed notifications, sweeps and requests, and who may read them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlmodel import Session

from coi import jobs
from coi.core.workflow import Entry
from coi.models import Alarm, Notification
from coi.services import custody
from coi.services.delivery import deliver
from tests.helpers import Flow, csv_file, make_case, open_for, store


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counted:
    """How much samples grew since this was made (the registry is the process's, shared by
    every test: each test reads its own increase)."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.before = {(name, tuple(sorted(labels.items()))): value(name, **labels)
                       for name, labels in samples}

    def grew(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {key: value(key[0], **dict(key[1])) - was for key, was in self.before.items()}


def scans(outcome: str, reason: str) -> tuple[str, dict[str, str]]:
    return "coi_scans_total", {"outcome": outcome, "reason": reason}


@pytest.fixture
def flow(app, session, world, clock) -> Flow:
    return Flow(app, session, world, clock)


def test_scans_are_counted_accepted_or_refused_by_each_reason_once_committed(flow, session, world, clock):
    counted = Counted(scans("accepted", "none"), scans("refused", "wrong_role"),
                      scans("refused", "wrong_site"), scans("refused", "wrong_person"),
                      scans("refused", "no_case_named"))
    flow.until("pickup.give")  # collect, pack, the giving side of the pickup
    flow.scan("staff", flow.bag)  # the giver cannot receive: three reasons
    rolled_back = custody.scan(session=session, now=clock.now(), actor=world.actor("courier"),
                               entries=[Entry(flow.bag)], step_name="pickup")
    assert rolled_back.verdict.accepted
    session.rollback()  # never happened: not counted
    custody.record_unplaced(session=session, now=clock.now(), actor=world.actor("courier"),
                            entries=[Entry("no code of ours")], step_name="pickup",
                            error=custody.NoCaseNamed("nothing names a case"))
    session.commit()
    assert list(counted.grew().values()) == [3, 1, 1, 1, 1]


def test_readings_stored_from_a_logger_file_are_counted_by_how_they_came(app, session, world, clock):
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    counted = Counted(("coi_readings_ingested_total", {"via": "api"}))
    clock.advance(hours=2)
    data = csv_file([5.0, 5.5, 6.0, 5.0, 5.2], start=shipment.opened_at)
    store(session, world, clock, shipment, data)
    store(session, world, clock, shipment, data)  # the same file again stores nothing
    assert list(counted.grew().values()) == [5]


def make_alarm(session: Session, now: datetime, severity: str = "critical", state: str = "open") -> Alarm:
    alarm = Alarm(kind="deadline", code="step_overdue", severity=severity, state=state, raised_at=now,
                  summary="Apheresis was due by 09:00 and has not been recorded.",
                  rule=json.dumps({"step": "collect"}))
    session.add(alarm)
    session.commit()
    return alarm


def test_a_notification_that_fails_is_counted_by_channel_and_whether_it_is_given_up(session, clock):
    now = clock.now()
    alarm = make_alarm(session, now)
    for channel, target in (("email", "qa@example.org"), ("webhook", "retired-lims")):
        session.add(Notification(alarm_id=alarm.id, channel=channel, target=target, next_attempt_at=now,
                                 created_at=now))
    session.commit()
    counted = Counted(("coi_notification_failures_total", {"channel": "email", "permanent": "true"}),
                      ("coi_notification_failures_total", {"channel": "webhook", "permanent": "true"}))
    deliver(session, now)  # no mail server, no such webhook: both given up
    assert list(counted.grew().values()) == [1, 1]


def test_each_scheduler_job_run_is_timed_under_its_name(engine, clock):
    counted = Counted(("coi_sweep_duration_seconds_count", {"job": "metrics_test_job"}))
    found = jobs.run(engine, clock, {"metrics_test_job": lambda _session, _now: 0})
    assert found == {"metrics_test_job": 0}
    assert list(counted.grew().values()) == [1]


def scrape(client: Any, **kwargs: Any) -> Any:
    return client.get("/metrics", **kwargs)


def sample(text: str, line_start: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(line_start + " ")).split()[-1])


def test_open_alarms_are_read_from_the_database_by_severity(client, session, clock):
    now = clock.now()
    for severity, state in (("critical", "open"), ("critical", "acknowledged"), ("major", "open"),
                            ("minor", "resolved")):
        make_alarm(session, now, severity, state)
    answer = scrape(client)
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    text = answer.get_data(as_text=True)
    assert sample(text, 'coi_alarms_open{severity="critical"}') == 2
    assert sample(text, 'coi_alarms_open{severity="major"}') == 1
    assert sample(text, 'coi_alarms_open{severity="minor"}') == 0


def test_requests_are_counted_by_endpoint_and_any_unknown_path_under_one_name(client):
    counted = Counted(
        ("coi_http_requests_total", {"endpoint": "unmatched", "method": "GET", "status": "404"}),
        ("coi_http_requests_total", {"endpoint": "auth.login", "method": "GET", "status": "200"}))
    client.get("/no/such/page-1")
    client.get("/another/unknown/path")
    client.get("/login")
    assert list(counted.grew().values()) == [2, 1]


def test_without_a_token_only_a_local_client_not_behind_a_proxy_may_scrape(client):
    assert scrape(client).status_code == 200
    assert scrape(client, environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code == 403
    assert scrape(client, headers={"X-Forwarded-For": "198.51.100.4"}).status_code == 403


def test_with_a_token_any_client_that_sends_it_may_scrape(app_config):
    from coi.app import create_app

    app = create_app(app_config | {"METRICS_TOKEN": "s3cret-scrape-token-0123456789"})
    try:
        client = app.test_client()
        remote = {"REMOTE_ADDR": "10.0.0.5"}
        assert scrape(client).status_code == 401  # even locally
        wrong = {"Authorization": "Bearer wrong"}
        assert scrape(client, environ_base=remote, headers=wrong).status_code == 401
        assert scrape(client, environ_base=remote, headers={
            "Authorization": "Bearer s3cret-scrape-token-0123456789"}).status_code == 200
    finally:
        app.extensions["coi.engine"].dispose()
