"""Holds: an alarm of a blocking code stops the case's material at the steps its route says,
until QA decides with a signature (issue 15, items 1, 2, 5): the route's [[hold]] section, the
held scan refused and recorded, QA's outcomes (a deviation, a quarantine and its second
decision, a destruction), what the pages show, and an alarm racing a scan."""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from coi.core.errors import Conflict, InvalidInput
from coi.core.route import DEFAULT_HOLD_CODES, RouteError, parse_route
from coi.core.workflow import Entry
from coi.labels import payload
from coi.models import Alarm, AlarmDeviation, Case, LabelRevocation, RecordSeal, Signature, Unit
from coi.services import alarms, custody, holds, integrity, labels, ledger
from coi.services.signatures import content_hash
from tests.databases import ENGINE
from tests.helpers import PASSWORD, REPO, ROUTE, Flow, login, post_form

V2 = (REPO / "coi" / "route_definitions" / "cartx-v2.toml").read_text()
HELD_STEPS = ("pack", "pickup", "manufacture", "release", "pickup_return", "thaw", "infuse")
# The script step after which each held step is next.
BEFORE = {"pack": "collect", "pickup": "pack", "manufacture": "deliver_manufacturing",
          "release": "manufacture", "pickup_return": "release", "thaw": "deliver_treatment",
          "infuse": "thaw"}
# One blocking code of each kind, as the platform raises them.
BLOCKING = {"custody": ("other_case", "major"), "temperature": ("excursion_single", "critical"),
            "deadline": ("expired", "critical")}
# An alarm's state: (acknowledged?, resolution outcome or None, second decision or None), and
# whether the step is then refused ("on_hold", "destroyed") or accepted (None).
STATES: dict[str, tuple[bool, str | None, str | None, str | None]] = {
    "open": (False, None, None, "on_hold"),
    "acknowledged": (True, None, None, "on_hold"),
    "accepted": (True, "accepted", None, None),
    "accepted_with_deviation": (True, "accepted_with_deviation", None, None),
    "no_product_impact": (True, "no_product_impact", None, None),
    "quarantined": (True, "quarantined", None, "on_hold"),
    "quarantined_then_accepted": (True, "quarantined", "accepted", None),
    "quarantined_then_accepted_with_deviation": (True, "quarantined", "accepted_with_deviation", None),
    "quarantined_then_destroyed": (True, "quarantined", "destroyed", "destroyed"),
    "destroyed": (True, "destroyed", None, "destroyed"),
}


@pytest.fixture
def flow(app, session, world, clock) -> Flow:
    return Flow(app, session, world, clock)


def hold_on(flow: Flow, kind: str = "temperature", code: str = "excursion_single",
            severity: str = "critical", **where: Any) -> Alarm:
    alarm = alarms.raise_alarm(session=flow.session, now=flow.clock.now(), kind=kind, code=code,
                               severity=severity, summary=f"{code} for the test",
                               rule={"rule": f"test.{code}"}, case_id=flow.case.id, **where)
    flow.session.commit()
    assert alarm is not None
    return alarm


def decide(flow: Flow, alarm: Alarm, acknowledged: bool, outcome: str | None,
           second: str | None) -> None:
    qa, now = flow.world.actor("qa"), flow.clock.now
    if acknowledged:
        alarms.acknowledge(session=flow.session, now=now(), actor=qa, alarm_id=alarm.id,
                           comment="Looking into it")
    if outcome:
        alarms.resolve(session=flow.session, now=now(), actor=qa, alarm_id=alarm.id,
                       outcome=outcome, comment="Reviewed", password=PASSWORD,
                       deviation="DEV-2026-0142" if outcome == "accepted_with_deviation" else None)
    if second:
        alarms.decide(session=flow.session, now=now(), actor=qa, alarm_id=alarm.id,
                      outcome=second, comment="Investigation closed", password=PASSWORD,
                      deviation="DEV-2026-0143" if second == "accepted_with_deviation" else None)
    flow.session.commit()


def attempt(flow: Flow, step: str) -> Any:
    """The held step, scanned right in every other way."""
    flow.step = step
    coi, bag = flow.coi.text, flow.bag
    scans = {
        "pack": lambda: flow.scan("staff", bag),
        "pickup": lambda: flow.scan("staff", bag),
        "manufacture": lambda: flow.scan("coordinator", bag, flow.register_product()),
        "release": lambda: flow.scan("qa", flow.product, signer="qa"),
        "pickup_return": lambda: flow.scan("coordinator", flow.product),
        "thaw": lambda: flow.scan("staff", flow.product),
        "infuse": lambda: flow.scan("staff", coi, flow.product, signer="staff", verifier="staff2"),
    }
    return scans[step]()


# ---------------------------------------------------------------- the route says what holds

def test_route_v2_writes_out_the_defaults_that_v1_gets_by_omission():
    v1, v2 = parse_route(ROUTE), parse_route(V2)
    assert v2.version == 2 and v1.steps == v2.steps and v1.holds == v2.holds
    for kind, codes in DEFAULT_HOLD_CODES.items():
        for code in codes:
            assert v1.held_steps(kind, code, "major") == HELD_STEPS
    # Deliveries are not held: material in transit must reach a site that can quarantine it.
    assert "deliver_manufacturing" not in HELD_STEPS and "deliver_treatment" not in HELD_STEPS


@pytest.mark.parametrize(("kind", "code", "severity"), [
    ("custody", "late", "major"), ("deadline", "step_overdue", "major"),
    ("deadline", "expiry_near", "major"), ("temperature", "pre_alarm", "minor"),
    ("temperature", "excursion_single", "minor"), ("temperature", "data_gap", "major")])
def test_late_reminders_and_minor_alarms_hold_nothing(kind, code, severity):
    assert parse_route(V2).held_steps(kind, code, severity) == ()


def test_a_route_can_say_that_nothing_holds_or_hold_only_some_steps():
    nothing = parse_route(ROUTE.replace("version = 1", "version = 3\nhold = []"))
    assert nothing.holds == () and nothing.held_steps("deadline", "expired", "critical") == ()
    some = parse_route(ROUTE.replace("[[step]]\nname = \"enrol\"", "[[hold]]\nkind = \"deadline\"\n"
                                     "codes = [\"expired\"]\nsteps = [\"infuse\"]\n\n"
                                     "[[step]]\nname = \"enrol\"", 1))
    assert some.held_steps("deadline", "expired", "critical") == ("infuse",)
    assert some.held_steps("temperature", "excursion_single", "critical") == ()


@pytest.mark.parametrize(("section", "message"), [
    ('kind = "custody"\ncodes = ["other_case"]\nsteps = ["no_such_step"]', "steps of this route"),
    ('kind = "weather"\ncodes = ["rain"]\nsteps = ["pack"]', "`kind` must be one of"),
    ('kind = "custody"\ncodes = ["late"]\nsteps = ["pack"]', "late step does not hold"),
    ('kind = "custody"\ncodes = ["other_case"]\nsteps = ["enrol"]', "cannot be held"),
    ('kind = "custody"\ncodes = []\nsteps = ["pack"]', "`codes` must list"),
    ('kind = "custody"\ncodes = ["other_case"]', "needs exactly"),
])
def test_a_wrong_hold_section_is_refused_saying_where(section, message):
    enrol = "[[step]]\nname = \"enrol\""
    text = ROUTE.replace(enrol, f"[[hold]]\n{section}\n\n{enrol}", 1)
    with pytest.raises(RouteError, match=message):
        parse_route(text)


# ---------------------------------------------------------------- step x kind x state

@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("kind", sorted(BLOCKING))
@pytest.mark.parametrize("step", HELD_STEPS)
def test_a_blocking_alarm_holds_each_later_step_until_qa_decides(flow, session, step, kind, state):
    flow.until(BEFORE[step])
    code, severity = BLOCKING[kind]
    alarm = hold_on(flow, kind, code, severity)
    acknowledged, outcome, second, refused = STATES[state]
    decide(flow, alarm, acknowledged, outcome, second)
    result = attempt(flow, step)
    codes = [r.code for r in result.verdict.refusals]
    if refused is None:
        assert codes == [] and result.event.kind != "scan_refused"
        assert holds.holds_of(session=session, case=flow.case) == []
        return
    assert refused in codes, codes
    # Refused, and the refusal is on the case's ledger with its reasons.
    assert result.event.kind == "scan_refused"
    recorded = json.loads(result.event.body)["refusals"]
    assert refused in [r["code"] for r in recorded]
    if refused == "on_hold":
        message = next(r.message for r in result.verdict.refusals if r.code == "on_hold")
        assert message.startswith("On hold: ") and f"alarm {alarm.id}" in message
        assert ("second signed QA decision" if outcome == "quarantined" else "QA must decide") in message
        assert [h.alarm.id for h in holds.holds_of(session=session, case=flow.case)] == [alarm.id]
    assert ledger.verify(session=session) == []


def test_a_hold_says_what_holds_it_since_when_and_what_lifts_it(flow, session):
    flow.until("deliver_manufacturing")
    alarm = hold_on(flow, shipment_id=None)
    [found] = holds.holds_of(session=session, case=flow.case)
    assert found.alarm.id == alarm.id and found.since == alarm.raised_at
    assert found.steps == HELD_STEPS and found.subject == f"case {flow.coi.display}"
    assert found.message("Europe/Berlin") == (
        f"On hold: temperature excursion on case {flow.coi.display}, since 2026-11-22 "
        f"{alarm.raised_at.astimezone(ZoneInfo('Europe/Berlin')):%H:%M} CET "
        f"(alarm {alarm.id}); QA must decide (a signed resolution of the alarm).")


def test_a_late_or_minor_alarm_lets_the_next_step_go_on(flow):
    flow.until("collect")
    hold_on(flow, "custody", "late", "major")
    hold_on(flow, "temperature", "excursion_single", "minor")
    assert attempt(flow, "pack").verdict.accepted


def test_the_receiver_of_a_handoff_given_before_the_hold_still_takes_the_material(flow):
    flow.until("pickup.give")
    hold_on(flow)
    received = flow.scan("courier", flow.bag, step="pickup")
    assert received.verdict.accepted and received.event.kind == "handoff_receive"
    given = flow.scan("courier", flow.bag, step="deliver_manufacturing")  # a delivery: not held
    assert given.verdict.accepted


# ---------------------------------------------------------------- QA's decisions

def test_accepting_under_a_deviation_needs_its_reference_and_signs_it(flow, session):
    flow.until("collect")
    alarm = hold_on(flow)
    qa = flow.world.actor("qa")
    alarms.acknowledge(session=session, now=flow.clock.now(), actor=qa, alarm_id=alarm.id,
                       comment="Looking")
    for missing in (None, "  "):
        with pytest.raises(InvalidInput, match="deviation's reference"):
            alarms.resolve(session=session, now=flow.clock.now(), actor=qa, alarm_id=alarm.id,
                           outcome="accepted_with_deviation", comment="ok", password=PASSWORD,
                           deviation=missing)
    alarms.resolve(session=session, now=flow.clock.now(), actor=qa, alarm_id=alarm.id,
                   outcome="accepted_with_deviation", comment="Within stability data",
                   password=PASSWORD, deviation=" DEV-2026-0142 ")
    session.commit()
    stored = session.exec(select(AlarmDeviation)).one()
    assert (stored.alarm_id, stored.reference) == (alarm.id, "DEV-2026-0142")
    signature = session.exec(select(Signature).where(Signature.subject_type == "alarm")).one()
    resolved = session.get(Alarm, alarm.id)
    content = alarms.resolution_content(resolved, "accepted_with_deviation", "Within stability data",
                                        signature.signed_at, deviation="DEV-2026-0142")
    assert signature.content_sha256 == content_hash(content)
    assert signature.content_sha256 != content_hash({**content, "deviation": "DEV-OTHER"})
    report = integrity.verify(session=session)
    assert report.findings == [] and report.signatures >= 1
    assert attempt(flow, "pack").verdict.accepted


def test_a_quarantined_product_stays_held_until_a_second_signed_decision(flow, session):
    flow.until("collect")
    alarm = hold_on(flow)
    decide(flow, alarm, True, "quarantined", None)
    assert not attempt(flow, "pack").verdict.accepted
    qa = flow.world.actor("qa")
    with pytest.raises(InvalidInput, match="Decide what becomes"):
        alarms.decide(session=session, now=flow.clock.now(), actor=qa, alarm_id=alarm.id,
                      outcome="quarantined", comment="again", password=PASSWORD)
    with pytest.raises(InvalidInput, match="deviation's reference"):
        alarms.decide(session=session, now=flow.clock.now(), actor=qa, alarm_id=alarm.id,
                      outcome="accepted_with_deviation", comment="ok", password=PASSWORD)
    alarms.decide(session=session, now=flow.clock.now(), actor=qa, alarm_id=alarm.id,
                  outcome="accepted_with_deviation", comment="Investigation closed",
                  password=PASSWORD, deviation="DEV-2026-0150")
    session.commit()
    assert session.get(Alarm, alarm.id).outcome == "accepted_with_deviation"
    with pytest.raises(Conflict, match="second decision"):
        alarms.decide(session=session, now=flow.clock.now(), actor=qa, alarm_id=alarm.id,
                      outcome="destroyed", comment="changed my mind", password=PASSWORD)
    session.rollback()
    session.expire_all()
    meanings = [s.meaning for s in session.exec(select(Signature).where(
        Signature.subject_type == "alarm").order_by(Signature.id))]
    assert meanings == ["resolved", "decided"]
    report = integrity.verify(session=session)
    assert report.findings == [] and report.signatures >= 2
    assert attempt(flow, "pack").verdict.accepted


def test_only_a_quarantined_product_waits_for_a_second_decision(flow, session):
    flow.until("collect")
    alarm = hold_on(flow)
    decide(flow, alarm, True, "accepted", None)
    with pytest.raises(Conflict, match="Only a product quarantined"):
        alarms.decide(session=session, now=flow.clock.now(), actor=flow.world.actor("qa"),
                      alarm_id=alarm.id, outcome="destroyed", comment="no", password=PASSWORD)


def test_a_destroyed_unit_is_refused_for_good_and_its_labels_verify_as_revoked(app, client, flow,
                                                                              session):
    flow.until("deliver_manufacturing")
    bag = session.exec(select(Unit).where(Unit.case_id == flow.case.id)).one()
    job = labels.print_set(session=session, now=flow.clock.now(), actor=flow.world.actor("staff"),
                           signer=app.extensions["coi.signer"], coi_text=flow.coi.text,
                           output="png", size="4x2", include_wristband=True, reason=None)
    session.commit()
    alarm = hold_on(flow, "deadline", "expired", "critical", unit_id=bag.id)
    assert holds.holds_of(session=session, case=flow.case)[0].subject.startswith("unit ")
    decide(flow, alarm, True, "destroyed", None)
    session.refresh(bag)
    assert bag.state == "destroyed"
    refused = attempt(flow, "manufacture")
    assert [r.code for r in refused.verdict.refusals] == ["destroyed"]
    assert "destroyed by QA decision" in refused.verdict.refusals[0].message
    assert json.loads(refused.event.body)["refusals"][0]["code"] == "destroyed"
    revoked = session.exec(select(LabelRevocation)).all()
    unit_labels = [row for row in job.rows if row.unit_id == bag.id]
    assert {r.label_id for r in revoked} == {row.id for row in unit_labels}
    assert {r.category for r in revoked} == {"destroyed"}
    index = next(i for i, row in enumerate(job.rows) if row.unit_id == bag.id)
    token = payload.token_from_text(job.labels[index].qr)
    page = client.get(f"/V/{token}").get_data(as_text=True)
    assert "REVOKED" in page and "label destroyed" in page and "GENUINE" not in page
    wristband = next(i for i, row in enumerate(job.rows) if row.unit_id is None)
    assert "GENUINE" in client.get(f"/V/{payload.token_from_text(job.labels[wristband].qr)}") \
        .get_data(as_text=True)


# ---------------------------------------------------------------- what people see

def test_the_scan_page_is_told_the_holds_at_the_first_scan_and_the_held_scan_is_recorded(
        client, flow, session):
    flow.until("collect")
    alarm = hold_on(flow)
    login(client, "staff")
    page = client.get(f"/scan?case={flow.coi.text}").get_data(as_text=True)
    assert 'id="holds-card"' in page and "On hold: temperature excursion" in page
    csrf = re.search(r'data-csrf="([^"]+)"', page)
    assert csrf
    first = client.post("/scan/judge", json={"scans": [{"text": flow.bag}], "partial": True,
                                             "idempotency_key": "holds-00000001",
                                             "device_at": "2026-11-22T04:00:00-05:00"},
                        headers={"X-CSRFToken": csrf.group(1), "Accept": "application/json"}
                        ).get_json()
    assert "holds" in first, first
    assert [h["alarm"] for h in first["holds"]] == [alarm.id]
    hold = first["holds"][0]
    assert hold["what"] == "temperature excursion" and hold["steps"] == list(HELD_STEPS)
    assert hold["message"].startswith("On hold: temperature excursion")
    assert "QA must decide" in hold["message"]
    assert hold["since_local"].endswith("EST")  # the staff's own zone
    assert not first["accepted"] and first["recorded"]
    assert [r["code"] for r in first["refusals"]] == ["on_hold"]
    event = flow.events()[-1]
    assert event.kind == "scan_refused" and json.loads(event.body)["refusals"][0]["code"] == "on_hold"
    # A retry of the same request (same key) is answered from its event, holds included.
    again = client.post("/scan/judge", json={"scans": [{"text": flow.bag}], "partial": True,
                                             "idempotency_key": "holds-00000001",
                                             "device_at": "2026-11-22T04:00:00-05:00"},
                        headers={"X-CSRFToken": csrf.group(1), "Accept": "application/json"}
                        ).get_json()
    assert [h["alarm"] for h in again["holds"]] == [alarm.id] and flow.events()[-1].id == event.id


def test_holds_are_shown_on_the_case_page_the_dashboard_and_the_inbox(client, flow, session):
    flow.until("collect")
    alarm = hold_on(flow)
    login(client, "staff")
    case_page = client.get(f"/cases/{flow.coi.text}").get_data(as_text=True)
    assert "On hold:</b> temperature excursion" in case_page and f"alarm {alarm.id}" in case_page
    dashboard = client.get("/dashboard?part=body").get_data(as_text=True)
    assert f'data-held-case="{flow.coi.text}"' in dashboard
    inbox = client.get("/alarms").get_data(as_text=True)
    assert "ON HOLD" in inbox


def test_the_case_page_shows_qa_decisions_with_their_deviation(client, flow, session):
    flow.until("collect")
    alarm = hold_on(flow)
    decide(flow, alarm, True, "quarantined", "accepted_with_deviation")
    login(client, "staff")
    page = client.get(f"/cases/{flow.coi.text}").get_data(as_text=True)
    assert "Nothing holds this case" in page
    assert "Product quarantined pending investigation" in page
    assert "Second decision: Product accepted under a deviation" in page
    assert "DEV-2026-0143" in page


def test_the_alarm_page_offers_the_second_decision_and_records_it(client, flow, session):
    flow.until("collect")
    alarm = hold_on(flow)
    decide(flow, alarm, True, "quarantined", None)
    login(client, "qa")
    url = f"/alarms/{alarm.id}"
    assert "Decide on the quarantined product" in client.get(url).get_data(as_text=True)
    refused = post_form(client, url, f"/alarms/{alarm.id}/decide",
                        {"outcome": "accepted_with_deviation", "comment": "closed",
                         "password": PASSWORD})
    assert refused.status_code in (200, 302, 303)
    assert "deviation" in client.get(url).get_data(as_text=True)
    session.rollback()
    session.expire_all()
    assert session.get(Alarm, alarm.id).outcome == "quarantined"  # no reference: not decided
    decided = post_form(client, url, f"/alarms/{alarm.id}/decide",
                        {"outcome": "accepted_with_deviation", "comment": "closed",
                         "password": PASSWORD, "deviation": "DEV-2026-0999"})
    assert decided.status_code in (302, 303), decided.get_data(as_text=True)[-2000:]
    session.rollback()
    session.expire_all()
    assert session.get(Alarm, alarm.id).outcome == "accepted_with_deviation"
    page = client.get(url).get_data(as_text=True)
    assert "DEV-2026-0999" in page and "Decide on the quarantined product" not in page


def test_the_inbox_lists_quarantined_products_waiting_for_a_second_decision(client, flow):
    flow.until("collect")
    waiting, decided = hold_on(flow), hold_on(flow, "deadline", "expired", "critical")
    decide(flow, waiting, True, "quarantined", None)
    decide(flow, decided, True, "quarantined", "accepted")
    login(client, "qa")
    page = client.get("/alarms?state=quarantined").get_data(as_text=True)
    assert f'href="/alarms/{waiting.id}"' in page and f'href="/alarms/{decided.id}"' not in page
    assert "ON HOLD" in page and "Resolved (product quarantined)" in page
    assert f'href="/alarms/{waiting.id}"' not in client.get("/alarms").get_data(as_text=True)


# ---------------------------------------------------------------- an alarm racing a scan

@pytest.mark.skipif(ENGINE != "postgresql", reason="real concurrent transactions: PostgreSQL")
def test_an_alarm_raised_while_a_scan_waits_lands_before_it_and_the_scan_is_refused(
        flow, engine, world, clock):
    flow.until("collect")
    case_id = flow.case.id
    answers: list[Any] = []
    with Session(engine, expire_on_commit=False) as raising:
        alarms.raise_alarm(session=raising, now=clock.now(), kind="temperature",
                           code="excursion_single", severity="critical", summary="warm",
                           rule={"rule": "test"}, case_id=case_id)  # holds the case row

        def scan() -> None:
            with Session(engine, expire_on_commit=False) as own:
                answers.append(custody.scan(session=own, now=clock.now(), actor=world.actor("staff"),
                                            entries=[Entry(flow.bag)], step_name="pack"))
                own.commit()

        thread = threading.Thread(target=scan)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the scan did not wait for the alarm's transaction"
        raising.commit()
        thread.join(timeout=30)
    assert [r.code for r in answers[0].verdict.refusals] == ["on_hold"]
    assert answers[0].event.kind == "scan_refused"


@pytest.mark.skipif(ENGINE != "postgresql", reason="real concurrent transactions: PostgreSQL")
def test_an_alarm_raised_while_a_scan_is_in_flight_lands_after_it(flow, engine, world, clock):
    flow.until("collect")
    case_id = flow.case.id
    raised: list[Any] = []
    with Session(engine, expire_on_commit=False) as scanning:
        # The scan's transaction has the case row (as custody.scan takes it) ...
        scanning.exec(select(Case).where(Case.id == case_id).with_for_update()).one()

        def raise_it() -> None:
            with Session(engine, expire_on_commit=False) as own:
                raised.append(alarms.raise_alarm(
                    session=own, now=clock.now(), kind="temperature", code="excursion_single",
                    severity="critical", summary="warm", rule={"rule": "test"}, case_id=case_id))
                own.commit()

        thread = threading.Thread(target=raise_it)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the alarm did not wait for the scan's transaction"
        outcome = custody.scan(session=scanning, now=clock.now(), actor=world.actor("staff"),
                               entries=[Entry(flow.bag)], step_name="pack")
        scanning.commit()
        thread.join(timeout=30)
    # ... so the step was recorded before the hold, and the hold stops the next one.
    assert outcome.verdict.accepted and raised[0] is not None
    flow.session.expire_all()
    assert [r.code for r in attempt(flow, "pickup").verdict.refusals] == ["on_hold"]


@pytest.mark.skipif(ENGINE != "postgresql", reason="real concurrent transactions: PostgreSQL")
@pytest.mark.parametrize("round_", range(5))
def test_a_scan_and_an_alarm_at_once_never_record_the_step_after_the_hold(flow, engine, world,
                                                                          clock, round_):
    flow.until("collect")
    case_id = flow.case.id
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def scan() -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            results["scan"] = custody.scan(session=own, now=clock.now(), actor=world.actor("staff"),
                                           entries=[Entry(flow.bag)], step_name="pack")
            own.commit()

    def raise_it() -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            alarms.raise_alarm(session=own, now=clock.now(), kind="deadline", code="expired",
                               severity="critical", summary="expired", rule={"rule": "test"},
                               case_id=case_id)
            own.commit()

    threads = [threading.Thread(target=scan), threading.Thread(target=raise_it)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Either order is right; what may never happen is a step recorded after the hold. The
    # identity chain's seals are in commit order: the pack's unit change and the alarm.
    seals = flow.session.exec(select(RecordSeal).order_by(col(RecordSeal.seq))).all()
    alarm_seal = next(s.seq for s in seals if s.table_name == "alarm" and s.action == "insert")
    if results["scan"].verdict.accepted:
        unit_seal = max(s.seq for s in seals if s.table_name == "unit" and s.action == "update")
        assert unit_seal < alarm_seal
    else:
        assert [r.code for r in results["scan"].verdict.refusals] == ["on_hold"]
