"""The scheduler's deadline sweeps, each deadline one second before, at, and one second after
it; one alarm however often (and by however many schedulers) a sweep runs; a failing item
retried while the sweep goes on; and the `flask coi scheduler` command."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from coi import jobs
from coi.core import alerting
from coi.jobs import sweeps
from coi.models import Alarm, Case, Shipment, Unit, serial_of
from coi.services import shipments
from coi.services.loggers import intake
from tests.databases import ENGINE
from tests.helpers import Flow, make_case

AROUND = [(-1, False), (0, True), (1, True)]  # seconds from the deadline -> alarm raised?


@pytest.fixture
def flow(app, session, world, clock) -> Flow:
    return Flow(app, session, world, clock)


def alarms_of(session: Session, code: str) -> list[Alarm]:
    session.expire_all()
    return list(session.exec(select(Alarm).where(Alarm.code == code).order_by(col(Alarm.id))))


# ------------------------------------------------------------------ steps not done in time

@pytest.mark.parametrize(("offset", "raised"), AROUND)
def test_a_step_not_done_by_its_due_time_raises_an_alarm(flow, session, offset, raised):
    flow.until("collect")
    session.refresh(flow.case)
    due = flow.case.next_due_at
    assert flow.case.next_step == "pack" and due == flow.case.last_step_at + timedelta(hours=4)
    found = sweeps.overdue_steps(session, due + timedelta(seconds=offset))
    session.commit()
    assert found == int(raised)
    overdue = alarms_of(session, "step_overdue")
    assert len(overdue) == int(raised)
    if raised:
        alarm = overdue[0]
        assert (alarm.kind, alarm.severity, alarm.case_id) == ("deadline", "major", flow.case.id)
        assert "Pack fresh shipment (2-8 C) was due by" in alarm.summary
        rule = json.loads(alarm.rule)
        assert rule["step"] == {"name": "pack", "title": "Pack fresh shipment (2-8 C)", "max_hours": 4.0}
        assert rule["due_at"] == due.isoformat(timespec="seconds")


def test_an_overdue_step_is_alarmed_once_and_the_next_due_time_is_watched_again(flow, session, clock):
    flow.until("collect")
    session.refresh(flow.case)
    due = flow.case.next_due_at
    for minutes in (0, 1, 60):
        sweeps.overdue_steps(session, due + timedelta(minutes=minutes))
        session.commit()
    assert len(alarms_of(session, "step_overdue")) == 1
    clock.set(due + timedelta(hours=2))
    flow.until("pack")  # late: the next step's due time counts from now
    session.refresh(flow.case)
    assert flow.case.overdue_alarm_id is None and flow.case.next_step == "pickup"
    assert sweeps.overdue_steps(session, flow.case.next_due_at - timedelta(seconds=1)) == 0
    assert sweeps.overdue_steps(session, flow.case.next_due_at) == 1
    session.commit()
    steps = [json.loads(a.rule)["step"]["name"] for a in alarms_of(session, "step_overdue")]
    assert steps == ["pack", "pickup"]


@pytest.mark.parametrize(("offset", "raised"), AROUND)
def test_a_thawed_bag_not_infused_within_its_window_is_a_critical_alarm(flow, session, offset, raised):
    flow.until("thaw")
    session.refresh(flow.case)
    thawed, due = flow.case.last_step_at, flow.case.next_due_at
    assert due == thawed + timedelta(hours=1.5)
    sweeps.overdue_steps(session, due + timedelta(seconds=offset))
    session.commit()
    found = alarms_of(session, "thaw_window")
    assert len(found) == int(raised)
    if raised:
        assert found[0].severity == "critical"
        assert found[0].summary.startswith("Thawed product not infused within its 1.5 h window")


def test_a_completed_case_has_no_deadline_left(flow, session):
    flow.until("infuse")
    session.refresh(flow.case)
    assert flow.case.next_due_at is None
    assert sweeps.overdue_steps(session, flow.case.last_step_at + timedelta(days=365)) == 0


# ------------------------------------------------------------------ shipments

def open_shipment(app, session, world, clock, case, eta_hours: float | None = 24, loggers_=("LOG-1",)):
    from coi.models import coi_of

    shipment = shipments.open_shipment(
        session=session, now=clock.now(), actor=world.actor("staff"),
        profiles=app.extensions["coi.profiles"], coi_text=coi_of(case).text, leg="outbound",
        loggers=[shipments.LoggerSpec(s) for s in loggers_], shipper_id=None, profile_name=None,
        eta=clock.now() + timedelta(hours=eta_hours) if eta_hours else None)
    session.commit()
    return shipment


@pytest.mark.parametrize(("offset", "raised"), AROUND)
def test_a_shipment_not_received_by_its_eta_raises_an_alarm(app, session, world, clock, offset, raised):
    shipment = open_shipment(app, session, world, clock, make_case(app, session, world, clock))
    sweeps.late_shipments(session, shipment.eta + timedelta(seconds=offset))
    session.commit()
    late = alarms_of(session, "shipment_late")
    assert len(late) == int(raised)
    if raised:
        assert late[0].shipment_id == shipment.id and "not yet picked up" in late[0].summary
        assert sweeps.late_shipments(session, shipment.eta + timedelta(hours=1)) == 0


def test_a_received_shipment_is_never_late(flow, app, session, world, clock):
    flow.until("collect")
    shipment = open_shipment(app, session, world, clock, flow.case, eta_hours=10)
    flow.until("deliver_manufacturing")  # the courier's receipt dispatches, delivery receives
    session.refresh(shipment)
    assert shipment.state == "received"
    assert sweeps.late_shipments(session, shipment.eta + timedelta(days=1)) == 0


def readings(session, world, clock, shipment_id: int, *minutes: int, celsius: float = 5.0) -> None:
    document = {"logger": "LOG-1", "readings": [
        {"at": (clock.now() + timedelta(minutes=m)).isoformat(), "celsius": celsius} for m in minutes]}
    intake.store(session=session, now=clock.now() + timedelta(minutes=max(minutes)),
                  actor=world.actor("courier"),
                  shipment_id=shipment_id, stream=io.BytesIO(json.dumps(document).encode()),
                  filename="live.json", via="api")
    session.commit()


@pytest.mark.parametrize(("offset", "raised"), AROUND)
def test_logger_data_that_stops_in_transit_raises_an_alarm(flow, app, session, world, clock, offset,
                                                           raised):
    flow.until("collect")
    shipment = open_shipment(app, session, world, clock, flow.case)
    flow.until("pickup")
    readings(session, world, clock, shipment.id, 0, 5, 10)
    session.refresh(shipment)
    assert shipment.state == "in_transit"
    last = shipment.last_reading_at
    assert last == clock.now() + timedelta(minutes=10)
    silence = alerting.DEFAULT.logger_silence
    sweeps.silent_loggers(session, last + silence + timedelta(seconds=offset))
    session.commit()
    found = alarms_of(session, "logger_silent")
    assert len(found) == int(raised)
    if raised:
        assert found[0].shipment_id == shipment.id and "No logger data" in found[0].summary


def test_newer_readings_rearm_the_silence_watch(flow, app, session, world, clock):
    flow.until("collect")
    shipment = open_shipment(app, session, world, clock, flow.case)
    flow.until("pickup")
    readings(session, world, clock, shipment.id, 0, 5)
    session.refresh(shipment)
    first_silence = shipment.last_reading_at + alerting.DEFAULT.logger_silence
    assert sweeps.silent_loggers(session, first_silence) == 1
    session.commit()
    assert sweeps.silent_loggers(session, first_silence + timedelta(minutes=30)) == 0
    readings(session, world, clock, shipment.id, 120, 125)  # data again, then silence again
    session.refresh(shipment)
    assert shipment.silence_alarm_id is None
    assert sweeps.silent_loggers(session, shipment.last_reading_at + alerting.DEFAULT.logger_silence) == 1
    session.commit()
    assert len(alarms_of(session, "logger_silent")) == 2


def test_a_shipment_not_yet_picked_up_is_not_expected_to_send_data(app, session, world, clock):
    shipment = open_shipment(app, session, world, clock, make_case(app, session, world, clock))
    readings(session, world, clock, shipment.id, 0, 5)
    session.refresh(shipment)
    assert sweeps.silent_loggers(session, shipment.last_reading_at + timedelta(days=1)) == 0


# ------------------------------------------------------------------ expiry

@pytest.mark.parametrize(("offset", "raised"), AROUND)
def test_a_unit_close_to_expiry_raises_a_warning(flow, session, offset, raised):
    flow.until("collect")
    bag = session.exec(select(Unit).where(Unit.case_id == flow.case.id)).one()
    assert bag.expires_at == flow.case.last_step_at + timedelta(hours=72)  # the route's shelf life
    warn_at = bag.expires_at - timedelta(hours=24)
    sweeps.expiring_units(session, warn_at + timedelta(seconds=offset))
    session.commit()
    near = alarms_of(session, "expiry_near")
    assert len(near) == int(raised) and not alarms_of(session, "expired")
    if raised:
        assert near[0].unit_id == bag.id and serial_of(bag).display in near[0].summary


@pytest.mark.parametrize(("offset", "raised"), AROUND)
def test_a_unit_past_expiry_raises_a_critical_alarm(flow, session, offset, raised):
    flow.until("collect")
    bag = session.exec(select(Unit).where(Unit.case_id == flow.case.id)).one()
    sweeps.expiring_units(session, bag.expires_at - timedelta(hours=24))  # the warning first
    session.commit()
    sweeps.expiring_units(session, bag.expires_at + timedelta(seconds=offset))
    session.commit()
    expired = alarms_of(session, "expired")
    assert len(expired) == int(raised)
    if raised:
        assert expired[0].severity == "critical"
        assert sweeps.expiring_units(session, bag.expires_at + timedelta(days=3)) == 0


def test_a_consumed_unit_no_longer_expires(flow, session):
    flow.until("manufacture")
    units = {u.kind: u for u in session.exec(select(Unit).where(Unit.case_id == flow.case.id))}
    assert units["apheresis_bag"].state == "consumed" and units["apheresis_bag"].expiry_check_at is None
    product = units["drug_product_bag"]
    assert product.expires_at == flow.case.last_step_at + timedelta(hours=8760)
    assert sweeps.expiring_units(session, units["apheresis_bag"].expires_at + timedelta(days=1)) == 0


# ------------------------------------------------------------------ robustness

def test_an_item_that_fails_is_logged_and_retried_while_the_sweep_goes_on(app, session, world, clock,
                                                                         monkeypatch, caplog):
    cases = [make_case(app, session, world, clock, mrn=f"M-{n}", name=f"P {n}") for n in range(3)]
    due = clock.now() + timedelta(hours=1)
    for case in cases:
        case.next_step, case.last_step_at, case.next_due_at = "collect", clock.now(), due
        session.add(case)
    session.commit()
    broken, failing = cases[1].id, [True]
    original_get = Session.get

    def get(self, entity, ident, *args, **kwargs):
        if entity is Case and ident == broken and failing[0]:
            raise RuntimeError("this case cannot be read")
        return original_get(self, entity, ident, *args, **kwargs)

    monkeypatch.setattr(Session, "get", get)
    assert sweeps.overdue_steps(session, due) == 2
    session.commit()
    assert "could not be evaluated; it will be retried at the next sweep" in caplog.text
    assert sorted(a.case_id for a in alarms_of(session, "step_overdue")) == sorted(
        c.id for c in cases if c.id != broken)
    failing[0] = False
    assert sweeps.overdue_steps(session, due + timedelta(minutes=1)) == 1
    session.commit()
    assert sorted(a.case_id for a in alarms_of(session, "step_overdue")) == sorted(c.id for c in cases)


def test_the_scheduler_command_runs_every_job_once(app, session, world, clock):
    case = make_case(app, session, world, clock)
    case.next_step, case.last_step_at, case.next_due_at = "collect", clock.now(), clock.now()
    session.add(case)
    session.commit()
    result = app.test_cli_runner().invoke(args=["coi", "scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "overdue_steps 1" in result.output and "notify 0" in result.output
    assert len(alarms_of(session, "step_overdue")) == 1


@pytest.mark.skipif(ENGINE != "postgresql", reason="real concurrent transactions: PostgreSQL")
def test_two_schedulers_at_once_raise_each_alarm_exactly_once(app, engine, session, world, clock):
    """A failover, or a second scheduler started by mistake: both sweep the same due work at
    the same moment, each in its own transaction, again and again."""
    cases = [make_case(app, session, world, clock, mrn=f"M-{n}", name=f"P {n}") for n in range(40)]
    due = clock.now() + timedelta(hours=1)
    for case in cases:
        case.next_step, case.last_step_at, case.next_due_at = "collect", clock.now(), due
        session.add(case)
    shipment_ids = []
    for case in cases[:10]:
        shipment = open_shipment(app, session, world, clock, case, eta_hours=0.5)
        shipment_ids.append(shipment.id)
    session.commit()
    settings = alerting.DEFAULT
    work = jobs.deadline_jobs(settings) | jobs.notification_jobs(settings)
    barrier = threading.Barrier(2)
    found: list[dict[str, int]] = [{}, {}]
    errors: list[BaseException] = []

    def scheduler(index: int) -> None:
        try:
            for minute in range(3):
                barrier.wait()
                at = due + timedelta(minutes=minute)
                for name, job in work.items():
                    with Session(engine) as own:
                        found[index][name] = found[index].get(name, 0) + job(own, at)
                        own.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    overdue = alarms_of(session, "step_overdue")
    assert sorted(a.case_id for a in overdue) == sorted(c.id for c in cases)  # each exactly once
    assert found[0]["overdue_steps"] + found[1]["overdue_steps"] == len(cases)
    late = alarms_of(session, "shipment_late")
    assert sorted(a.shipment_id for a in late) == sorted(shipment_ids)
    marks = session.exec(select(Case.overdue_alarm_id).where(col(Case.id).in_([c.id for c in cases]))).all()
    assert sorted(marks) == sorted(a.id for a in overdue)
    assert session.exec(select(Shipment.eta_alarm_id).where(col(Shipment.id).in_(shipment_ids))).all()


@pytest.mark.skipif(ENGINE != "postgresql", reason="two scheduler processes: PostgreSQL")
def test_two_scheduler_processes_at_once_raise_each_alarm_exactly_once(app, app_config, session, world,
                                                                       clock):
    """The same, with two real `flask coi scheduler --once` processes started together."""
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    cases = [make_case(app, session, world, clock, mrn=f"M-{n}", name=f"P {n}") for n in range(40)]
    due = datetime.now(UTC) - timedelta(minutes=5)  # the processes read the real clock
    for case in cases:
        case.next_step, case.last_step_at, case.next_due_at = "collect", due - timedelta(hours=1), due
        session.add(case)
    session.commit()
    env = os.environ | {
        "COI_MODE": "testing", "COI_DATABASE_URL": app_config["DATABASE_URL"],
        "COI_SECRET_KEY": app_config["SECRET_KEY"], "COI_PHI_KEYS": ",".join(app_config["PHI_KEYS"]),
        "COI_PHI_INDEX_KEY": app_config["PHI_INDEX_KEY"],
        "COI_INSTALLATION_SIGNING_KEY": app_config["INSTALLATION_SIGNING_KEY"],
        "COI_LABEL_VERIFY_BASE_URL": app_config["LABEL_VERIFY_BASE_URL"]}
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "coi", "scheduler", "--once"]
    processes = [subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE,  # noqa: S603
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    counts = [int(out.split("overdue_steps ")[1].split(";")[0]) for out, _err in outputs]
    assert sum(counts) == len(cases)  # between them, each case once
    overdue = alarms_of(session, "step_overdue")
    assert sorted(a.case_id for a in overdue) == sorted(c.id for c in cases)
