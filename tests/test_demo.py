"""`make run` loads the demo data set on first start (through `flask coi init`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from coi import demo
from coi.config import ConfigError
from coi.core.workflow import Entry
from coi.models import (
    Alarm,
    AlarmEvent,
    Case,
    CustodyEvent,
    LabelRevocation,
    LedgerCheckpoint,
    LoggerFile,
    LoggerFileResult,
    Shipment,
    Site,
    Unit,
    User,
    coi_of,
    serial_of,
)
from coi.services import alarms, custody, enrolment, holds, ledger, users
from coi.services.custody import Credential
from coi.services.loggers import clocks
from tests.databases import Databases, Template
from tests.helpers import login


def test_init_loads_the_demo_once_and_prints_the_logins(app_config, tmp_path):
    from coi.app import create_app

    app = create_app(app_config | {"MODE": "development",
                                   "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["coi", "init"])
    assert first.exit_code == 0, first.output
    assert "demo data loaded" in first.output and "nurse.boston" in first.output
    assert demo.PASSWORD in first.output
    again = runner.invoke(args=["coi", "init"])
    assert "already loaded" in again.output
    from sqlmodel import Session

    with Session(app.extensions["coi.engine"]) as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == len(demo.PATIENTS)
        assert session.exec(select(func.count()).select_from(Unit)).one() > len(demo.PATIENTS)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "coord.mfg", "password": demo.PASSWORD,
                                "csrf_token": token})
    listing = client.get("/cases").get_data(as_text=True)
    boston = sum(site == "BOS" for site, *_rest in demo.PATIENTS)
    assert listing.count("A9998 26 ") == boston and listing.count("A9997 26 ") == 1
    verified = runner.invoke(args=["coi", "ledger", "verify"])
    assert verified.exit_code == 0 and "Ledger intact" in verified.output, verified.output
    app.extensions["coi.engine"].dispose()


def test_init_in_production_migrates_but_loads_no_demo(app_config, tmp_path):
    from coi.app import create_app

    app = create_app(app_config | {"MODE": "production",
                                   "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}"})
    result = app.test_cli_runner().invoke(args=["coi", "init"])
    assert "Demo data is loaded in development mode only" in result.output
    from sqlmodel import Session

    with Session(app.extensions["coi.engine"]) as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 0
    app.extensions["coi.engine"].dispose()


# ---------------------------------------------------------------- the cases along the route

def load_demo(app, session, clock) -> dict[str, int]:
    """The demo loaded at the frozen clock's `now` (committed); its case ids by patient story."""
    logins = demo.load(session=session, now=clock.now(), cipher=app.extensions["coi.phi"],
                       signer=app.extensions["coi.signer"])
    session.commit()
    courier = [shows for username, _p, shows in logins if username == "courier"][0]
    rows = session.exec(select(Case).order_by(col(Case.id))).all()
    stories = [story for _site, _identity, _days, story in demo.PATIENTS]
    assert len(rows) == len(stories)
    by_story = {story: row for story, row in zip(stories, rows, strict=True) if story != "enrolled"}
    assert serial_of(_bag(session, by_story["handed_over"])).text in courier
    return {story: case.id for story, case in by_story.items()}


@pytest.fixture(scope="session")
def demo_template(databases: Databases) -> Template[dict[str, int]]:
    """The demo data set, loaded once per run into an empty database."""
    return databases.build("demo", databases.empty, load_demo)


@pytest.fixture
def template(template: Template[Any], request: pytest.FixtureRequest) -> Template[Any]:
    if "loaded" in request.fixturenames:
        return request.getfixturevalue("demo_template")  # type: ignore[no-any-return]
    return template


@pytest.fixture
def loaded(template, demo_template, session) -> dict[str, Case]:
    """The demo, loaded at the frozen clock's `now` (the test's database is a copy of the demo
    template); its cases by patient story."""
    assert template is demo_template, f"the test's database is a copy of {template.name}"
    return {story: session.get(Case, case_id) for story, case_id in demo_template.records.items()}


def _bag(session, case: Case, kind: str = "apheresis_bag") -> Unit:
    return session.exec(select(Unit).where(Unit.case_id == case.id, Unit.kind == kind)).one()


def _events(session, case: Case) -> list[CustodyEvent]:
    return ledger.events_of(session=session, case=case)


def _actor(session, username: str):
    user = session.exec(select(User).where(User.username == username)).one()
    return users.actor_for(session=session, user=user)


def test_every_demo_event_is_in_the_past_and_the_ledger_verifies(loaded, session, clock):
    events = session.exec(select(CustodyEvent)).all()
    assert max(e.at for e in events) <= clock.now()
    assert min(e.at for e in events) >= clock.now() - timedelta(days=demo.SET_UP_DAYS_AGO)
    for case in session.exec(select(Case)):
        times = [e.at for e in _events(session, case)]
        assert times == sorted(times)
    assert ledger.verify(session=session) == []
    assert session.exec(select(func.count()).select_from(LedgerCheckpoint)).one() == 1


def test_one_case_went_needle_to_needle_with_its_full_timeline(loaded, session):
    case = loaded["infused"]
    assert (case.state, case.last_step, case.next_step) == ("complete", "infuse", None)
    events = _events(session, case)
    kinds = [e.kind for e in events]
    assert kinds.count("handoff_give") == kinds.count("handoff_receive") == 4
    assert kinds.count("transform") == 1
    steps = [json.loads(e.body)["step"] for e in events if e.kind in ("step", "transform",
                                                                      "handoff_receive")]
    assert steps == ["collect", "pack", "pickup", "deliver_manufacturing", "manufacture",
                     "release", "pickup_return", "deliver_treatment", "thaw", "infuse"]
    meanings = [(s["signer"], s["meaning"]) for e in events
                for s in json.loads(e.body).get("signatures", [])]
    # The printed name with the username (two people may share a name: 21 CFR 11.50).
    alice, ben = "Alice Moreno (nurse.boston)", "Ben Okafor (nurse2.boston)"
    assert meanings == [(alice, "collected"), (ben, "verified"),
                        ("Eva Lindqvist (qa.mfg)", "released"),
                        (alice, "administered"), (ben, "verified")]
    refused = [json.loads(e.body) for e in events if e.kind == "scan_refused"]
    assert [(r["step"], r["refusals"][0]["code"], r["scans"][0]["method"]) for r in refused] == [
        ("deliver_manufacturing", "bad_check", "typed")]
    # Its only alarms: the outbound shipper's warm-up (below), decided by QA.
    assert {a.code: a.state for a in session.exec(select(Alarm).where(Alarm.case_id == case.id))} \
        == {"excursion_single": "resolved", "pre_alarm": "resolved"}
    assert session.exec(select(func.count()).select_from(LabelRevocation)).one() == 1
    assert {u.kind: u.state for u in session.exec(select(Unit).where(Unit.case_id == case.id))} == {
        "apheresis_bag": "consumed", "sample": "registered", "drug_product_bag": "infuse"}


def test_a_thawed_case_waits_for_infusion_with_its_clock_running(loaded, session, clock):
    case = loaded["thawed"]
    assert (case.last_step, case.next_step) == ("thaw", "infuse")
    assert case.last_step_at == clock.now() - timedelta(minutes=30)
    assert case.next_due_at == clock.now() + timedelta(hours=1)
    refused = _events(session, case)[-1]
    assert refused.kind == "scan_refused"
    assert [r["code"] for r in json.loads(refused.body)["refusals"]] == ["other_case", "missing_scan"]
    alarm = session.exec(select(Alarm).where(Alarm.case_id == case.id)).one()
    assert (alarm.code, alarm.severity, alarm.state, alarm.event_id) == (
        "other_case", "critical", "open", refused.id)
    product = serial_of(_bag(session, case, "drug_product_bag")).text

    def infuse(minutes: int):
        return custody.scan(session=session, now=clock.now() + timedelta(minutes=minutes),
                            actor=_actor(session, "nurse.boston"),
                            entries=[Entry(coi_of(case).text), Entry(product)], step_name="infuse",
                            own_password=demo.PASSWORD,
                            verifiers=[Credential("nurse2.boston", demo.PASSWORD)])

    # The mix-up alarm holds the infusion until QA decides.
    held = infuse(2)
    assert [r.code for r in held.verdict.refusals] == ["on_hold"]
    assert f"alarm {alarm.id}" in held.verdict.refusals[0].message
    qa = _actor(session, "qa.mfg")
    alarms.acknowledge(session=session, now=clock.now() + timedelta(minutes=3), actor=qa,
                       alarm_id=alarm.id, comment="Wrong wristband caught at the bedside")
    alarms.resolve(session=session, now=clock.now() + timedelta(minutes=4), actor=qa,
                   alarm_id=alarm.id, outcome="no_product_impact", comment="Caught in time",
                   password=demo.PASSWORD)
    outcome = infuse(5)
    assert outcome.verdict.accepted and outcome.alarms == []
    assert case.state == "complete"


def test_a_late_courier_pickup_is_on_record_with_a_late_alarm(loaded, session):
    case = loaded["at_manufacturing"]
    assert (case.last_step, case.next_step) == ("deliver_manufacturing", "manufacture")
    alarm = session.exec(select(Alarm).where(Alarm.case_id == case.id, Alarm.kind == "custody")).one()
    assert (alarm.code, alarm.severity) == ("late", "major")
    assert "35 min past its limit of 4 h" in alarm.summary
    given = session.get(CustodyEvent, alarm.event_id)
    assert given.kind == "handoff_give" and json.loads(given.body)["step"] == "pickup"
    mfg = session.exec(select(Site).where(Site.code == "MFG")).one()
    assert _bag(session, case).custodian_site_id == mfg.id


def test_a_handoff_waits_for_the_courier_who_can_receive_it(loaded, session, clock):
    case = loaded["handed_over"]
    assert (case.last_step, case.next_step) == ("pack", "pickup")
    given = _events(session, case)[-1]
    assert given.kind == "handoff_give" and given.at == clock.now() - timedelta(minutes=20)
    bag = _bag(session, case)
    outcome = custody.scan(session=session, now=clock.now() + timedelta(minutes=10),
                           actor=_actor(session, "courier"),
                           entries=[Entry(serial_of(bag).text)], step_name="pickup")
    assert outcome.verdict.accepted and outcome.verdict.phase == "receive" and outcome.alarms == []
    depot = session.exec(select(Site).where(Site.code == "DEP")).one()
    assert bag.custodian_site_id == depot.id


def test_the_other_case_is_enrolled_and_waits_for_collection(loaded, session):
    named = {c.id for c in loaded.values()}
    others = [c for c in session.exec(select(Case)) if c.id not in named]
    assert [(c.state, c.next_step) for c in others] == [("enrolled", "collect")]


def test_the_scheduler_found_an_overdue_packing_and_a_bag_near_its_shelf_life(loaded, session, clock):
    collected = loaded["collected"]
    assert (collected.last_step, collected.next_step) == ("collect", "pack")
    assert collected.next_due_at == clock.now() - timedelta(hours=2)
    overdue = session.exec(select(Alarm).where(Alarm.case_id == collected.id)).one()
    assert (overdue.code, overdue.kind, overdue.state) == ("step_overdue", "deadline", "open")
    assert collected.overdue_alarm_id == overdue.id
    bag = session.exec(select(Alarm).where(Alarm.case_id == loaded["at_manufacturing"].id,
                                           col(Alarm.code).in_(("expiry_near", "expired")))).one()
    assert bag.unit_id == _bag(session, loaded["at_manufacturing"]).id


def test_alarms_were_followed_up_and_the_unanswered_ones_escalated(loaded, session):
    case = loaded["at_manufacturing"]
    states = {a.code: a.state for a in session.exec(select(Alarm).where(Alarm.case_id == case.id))}
    assert states["step_overdue"] == states["late"] == "resolved"  # the sweep's and the scan's
    assert states["excursion_single"] == "resolved"  # quarantined: see the holds test
    resolved = session.exec(select(AlarmEvent).join(Alarm, col(Alarm.id) == AlarmEvent.alarm_id)
                            .where(AlarmEvent.action == "resolved", Alarm.case_id == case.id)).all()
    assert sorted(e.outcome for e in resolved) == ["accepted", "accepted", "quarantined"]
    assert all(e.signature_id for e in resolved)
    wristband = session.exec(select(Alarm).where(Alarm.code == "other_case")).one()
    assert (wristband.state, wristband.level) == ("open", 0)  # 8 min old: not yet due to escalate
    assert session.exec(select(AlarmEvent).where(AlarmEvent.action == "escalated")).first() is not None


def test_the_shipments_show_their_loggers_and_the_late_pickups_excursion(loaded, session):
    def of(story: str) -> list[Shipment]:
        return list(session.exec(select(Shipment).where(Shipment.case_id == loaded[story].id)
                                 .order_by(Shipment.id)))

    done = of("infused")
    assert [(s.leg, s.profile, s.state) for s in done] == [
        ("outbound", "2-8C", "received"), ("return", "lN2-vapour", "received")]
    for shipment in done:
        file = session.exec(select(LoggerFile).where(LoggerFile.shipment_id == shipment.id)).one()
        assert session.get(LoggerFileResult, file.id).reading_count > 200
    assert session.exec(select(Alarm).where(col(Alarm.case_id).in_(
        (loaded["thawed"].id, loaded["handed_over"].id)), Alarm.kind == "temperature")).all() == []
    assert [(s.leg, s.state) for s in of("thawed")] == [("outbound", "received"),
                                                        ("return", "received")]
    (warm,) = of("at_manufacturing")
    codes = {a.code: a.severity for a in session.exec(select(Alarm).where(Alarm.shipment_id == warm.id))}
    assert codes.get("excursion_single") == "critical"
    assert "50 min" in session.exec(select(Alarm.summary).where(
        Alarm.shipment_id == warm.id, Alarm.code == "excursion_single")).one()
    (waiting,) = of("handed_over")
    assert waiting.state == "open"
    assert session.exec(select(LoggerFile).where(LoggerFile.shipment_id == waiting.id)).all() == []
    # The outbound logger runs 40 s fast; the courier's clock check at the receipt scan
    # corrected its file, so its last reading falls inside the shipment's window.
    outbound = done[0]
    (check,) = clocks.clock_checks(session=session, shipment_id=outbound.id)
    assert (check[0].offset_s, check[0].handoff) == (40.0, "receive")
    file = session.exec(select(LoggerFile).where(LoggerFile.shipment_id == outbound.id)).one()
    result = session.get(LoggerFileResult, file.id)
    assert json.loads(file.report)["clock_offset_s"] == 40.0 and result.outside_window == 0
    assert result.last_at <= outbound.received_at


# ---------------------------------------------------------------- holds and QA's decisions


def test_case_3_is_held_by_its_quarantined_bag_until_qas_second_decision(loaded, session, clock):
    case = loaded["at_manufacturing"]
    assert coi_of(case).display.startswith("A9998 26 000003 ")  # the case the issue names
    found = {h.alarm.code: h for h in holds.holds_of(session=session, case=case)}
    excursion = found["excursion_single"]
    assert excursion.quarantined and "manufacture" in excursion.steps
    assert set(found) <= {"excursion_single", "expired"}  # the bag may be past its 72 h by now
    bag, coord, qa = _bag(session, case), _actor(session, "coord.mfg"), _actor(session, "qa.mfg")
    product = enrolment.register_unit(session=session, now=clock.now(), actor=coord,
                                      coi_text=coi_of(case).text, kind="drug_product_bag")

    def manufacture(minutes: int):
        return custody.scan(session=session, now=clock.now() + timedelta(minutes=minutes),
                            actor=coord, step_name="manufacture",
                            entries=[Entry(serial_of(bag).text), Entry(serial_of(product).text)])

    held = manufacture(1)
    assert "on_hold" in [r.code for r in held.verdict.refusals]
    assert held.verdict.refusals[0].message.startswith(
        f"On hold: temperature excursion on shipment {excursion.alarm.shipment_id}, since ")
    assert "quarantined by QA: a second signed QA decision" in held.verdict.refusals[0].message
    # QA's second decision lifts it (and QA decides on an expiry the same way).
    alarms.decide(session=session, now=clock.now() + timedelta(minutes=2), actor=qa,
                  alarm_id=excursion.alarm.id, outcome="accepted_with_deviation",
                  comment="Within the warm-hold study", password=demo.PASSWORD,
                  deviation="DEV-2026-0131")
    if "expired" in found:
        alarms.acknowledge(session=session, now=clock.now() + timedelta(minutes=2), actor=qa,
                           alarm_id=found["expired"].alarm.id, comment="Checking")
        alarms.resolve(session=session, now=clock.now() + timedelta(minutes=2), actor=qa,
                       alarm_id=found["expired"].alarm.id, outcome="accepted",
                       comment="Within the extended hold", password=demo.PASSWORD)
    assert holds.holds_of(session=session, case=case) == []
    assert manufacture(3).verdict.accepted


def test_case_1_was_quarantined_then_accepted_under_a_deviation_and_its_release_says_so(
        loaded, session):
    case = loaded["infused"]
    decisions = holds.decisions_of(session=session, case=case)
    excursion = [(d.event.action, d.event.outcome, d.deviation, d.signer.username)
                 for d in decisions if d.alarm.code == "excursion_single"]
    assert excursion == [("resolved", "quarantined", None, "qa.mfg"),
                         ("decided", "accepted_with_deviation", demo.DEVIATION, "qa.mfg")]
    decided = next(d for d in decisions if d.event.action == "decided")
    made = next(e for e in _events(session, case) if e.kind == "transform")
    assert decided.event.at < made.at  # the product was made only once QA had decided
    release = next(e for e in _events(session, case)
                   if e.kind == "step" and json.loads(e.body)["step"] == "release")
    no_holds = json.loads(release.body)["checks"][0]
    assert no_holds["ok"] and {"alarm": decided.alarm.id, "outcome": "accepted_with_deviation",
                               "deviation": demo.DEVIATION} in no_holds["decisions"]


def test_the_case_pages_show_the_holds_and_the_decisions_a_release_rests_on(loaded, client,
                                                                              session):
    login(client, "qa.mfg", demo.PASSWORD)
    held = client.get(f"/cases/{coi_of(loaded['at_manufacturing']).text}").get_data(as_text=True)
    assert "On hold:</b> temperature excursion on shipment" in held
    assert "Quarantined by QA: a second signed QA decision" in held
    done = client.get(f"/cases/{coi_of(loaded['infused']).text}").get_data(as_text=True)
    assert "Nothing holds this case's material." in done
    assert ("rests on QA's decision on alarm" in done
            and f'deviation <b class="deviation">{demo.DEVIATION}</b>' in done)
    assert "✔ outbound logger data" in done and "✔ stability budget" in done


@pytest.mark.parametrize("hour", [1, 7, 13, 19, 23])
def test_the_demo_loads_at_any_hour_of_the_day(app_config, tmp_path, hour):
    """The demo is made relative to `now` on the sites' clocks: an evening in Boston is the
    next day in UTC, and the scheduler replayed over the last days must still have seen every
    deadline the stories need (it missed the late pickup's overdue alarm in the evening)."""
    from coi.app import create_app
    from coi.core.clock import FrozenClock

    app = create_app(app_config | {"MODE": "development",
                                   "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"})
    app.extensions["coi.clock"] = FrozenClock(datetime(2026, 12, 5, hour, 17, tzinfo=UTC))
    result = app.test_cli_runner().invoke(args=["coi", "init"])
    assert result.exit_code == 0, (result.output, result.exception)
    app.extensions["coi.engine"].dispose()


def test_make_run_on_another_port_points_the_logins_and_links_there(app_config, tmp_path, monkeypatch):
    """`PORT=8000 make run`: the web server listens there, so the printed address, the labels'
    links and the alarm e-mails' links of the development machine say so too."""
    from coi.app import create_app

    monkeypatch.setenv("PORT", "8123")
    app = create_app(app_config | {"MODE": "development", "LABEL_VERIFY_BASE_URL": None,
                                   "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"})
    assert app.config["LABEL_VERIFY_BASE_URL"] == "http://127.0.0.1:8123"
    assert app.extensions["coi.alerting"].base_url == "http://127.0.0.1:8123"
    result = app.test_cli_runner().invoke(args=["coi", "init"])
    assert result.exit_code == 0, result.output
    assert "Open http://127.0.0.1:8123 and log in." in result.output
    app.extensions["coi.engine"].dispose()
    monkeypatch.setenv("PORT", "80a")
    with pytest.raises(ConfigError, match="PORT is '80a'"):
        create_app(app_config | {"MODE": "development", "LABEL_VERIFY_BASE_URL": None})
