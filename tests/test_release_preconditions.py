"""QA release and infusion preconditions (coi.services.holds.preconditions): each one on its
own makes the step refuse with its reason, recorded as a refused scan; all satisfied, the
step is accepted and its signed manifest lists every check with its result."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from coi.models import Alarm, Shipment, Signature
from coi.services import alarms, custody, integrity, masterdata
from coi.services.signatures import content_hash
from tests.helpers import PASSWORD, ROUTE, Flow, csv_file, open_for, store

COLD = [5.0] * 12  # an hour at 5 C, within 2-8 C
FROZEN = [-170.0] * 12  # an hour in vapour-phase nitrogen


@pytest.fixture
def flow(app, session, world, clock) -> Flow:
    return Flow(app, session, world, clock)


def outbound(flow: Flow, data: list[float] | None = COLD) -> Shipment:
    """The outbound leg in a shipment, delivered to manufacturing, with its logger data
    (unless `data` is None), and the product made."""
    flow.until("pack")
    shipment = open_for(flow.session, flow.world, flow.clock, flow.case)
    flow.clock.advance(hours=3)
    flow.until("manufacture")
    if data is not None:
        store(flow.session, flow.world, flow.clock, shipment, csv_file(data, start=shipment.opened_at))
    return shipment


def returned(flow: Flow, data: list[float] | None = FROZEN, accept: bool = False) -> Shipment:
    """Released, the return leg in a shipment delivered to the treatment site with its
    logger data (unless `data` is None), and thawed."""
    outbound(flow)
    flow.until("release")
    shipment = open_for(flow.session, flow.world, flow.clock, flow.case, leg="return",
                        serials=("LOG-2",), persona="coordinator")
    flow.clock.advance(hours=3)
    flow.until("deliver_treatment")
    if data is not None:
        store(flow.session, flow.world, flow.clock, shipment, csv_file(data, start=shipment.opened_at),
              name="return.csv")
    if accept:  # QA accepted what the return leg's data raised, so that it may thaw
        accept_all(flow)
    flow.until("thaw")
    return shipment


def release(flow: Flow) -> Any:
    flow.step = "release"
    return flow.scan("qa", flow.product, signer="qa")


def infuse(flow: Flow, minutes: float = 10) -> Any:
    flow.step = "infuse"
    return flow.scan("staff", flow.coi.text, flow.product, signer="staff", verifier="staff2",
                     minutes=minutes)


def refused(outcome: Any) -> list[str]:
    assert outcome.event is not None and outcome.event.kind == "scan_refused"
    assert json.loads(outcome.event.body)["refusals"]
    return [r.code for r in outcome.verdict.refusals]


def checks(outcome: Any) -> list[dict[str, Any]]:
    return json.loads(outcome.event.body)["checks"]


def accept_all(flow: Flow) -> None:
    """QA accepts every alarm of the case (the holds lift)."""
    for alarm in flow.session.exec(select(Alarm).where(Alarm.case_id == flow.case.id,
                                                       Alarm.state != "resolved")).all():
        if alarm.state == "open":
            alarms.acknowledge(session=flow.session, now=flow.clock.now(),
                               actor=flow.world.actor("qa"), alarm_id=alarm.id, comment="On it")
        alarms.resolve(session=flow.session, now=flow.clock.now(), actor=flow.world.actor("qa"),
                       alarm_id=alarm.id, outcome="accepted", comment="Reviewed", password=PASSWORD)
    flow.session.commit()


def raise_on(flow: Flow, kind: str, code: str, severity: str = "critical") -> Alarm:
    alarm = alarms.raise_alarm(session=flow.session, now=flow.clock.now(), kind=kind, code=code,
                               severity=severity, summary=f"{code} for the test",
                               rule={"rule": f"test.{code}"}, case_id=flow.case.id)
    flow.session.commit()
    assert alarm is not None
    return alarm


# ---------------------------------------------------------------- QA release


def test_release_with_every_precondition_met_signs_what_was_checked(flow):
    shipment = outbound(flow)
    outcome = flow.ok(release(flow))
    assert checks(outcome) == [
        {"check": "no_holds", "ok": True},
        {"check": "outbound_received", "ok": True, "shipment": shipment.id},
        {"check": "outbound_logger_data", "ok": True, "shipment": shipment.id},
        {"check": "stability_budget", "ok": True, "left_minutes": 120},
    ]
    body = json.loads(outcome.event.body)
    assert body["signatures"][0]["meaning"] == "released" and body["signed_sha256"]
    # The list of checks is part of what QA signs: another list is another content.
    event = outcome.event
    signature = flow.session.get(Signature, body["signatures"][0]["id"])
    content = custody.signed_content(flow.coi.text, body, event.site_id, event.actor_id, event.at)
    assert signature.content_sha256 == content_hash(content)
    assert content_hash({**content, "checks": []}) != signature.content_sha256
    assert integrity.verify(session=flow.session).findings == []


def test_release_on_hold_is_refused(flow):
    outbound(flow)
    alarm = raise_on(flow, "temperature", "excursion_single")
    outcome = release(flow)
    assert refused(outcome) == ["on_hold"]
    assert f"alarm {alarm.id}" in outcome.verdict.refusals[0].message
    accept_all(flow)
    flow.ok(release(flow))


def test_release_without_logger_data_is_refused_as_a_hold_of_its_own(flow):
    shipment = outbound(flow, data=None)
    outcome = release(flow)
    assert refused(outcome) == ["no_temperature_data"]
    assert outcome.verdict.refusals[0].message.startswith(
        "No temperature data for the outbound leg: upload the logger file before release")
    store(flow.session, flow.world, flow.clock, shipment, csv_file(COLD, start=shipment.opened_at))
    flow.ok(release(flow))


def test_release_before_the_outbound_shipment_is_received_is_refused(flow):
    flow.until("manufacture")
    shipment = open_for(flow.session, flow.world, flow.clock, flow.case)  # still on its way
    flow.clock.advance(hours=2)
    store(flow.session, flow.world, flow.clock, shipment, csv_file(COLD, start=shipment.opened_at))
    outcome = release(flow)
    assert refused(outcome) == ["not_received"]
    message = outcome.verdict.refusals[0].message
    assert f"Shipment {shipment.id} of the outbound leg is not received" in message


def test_a_leg_delivered_without_a_shipment_holds_the_product_until_qa_decides(flow):
    flow.shipping = False  # the bag travels to manufacturing with no shipment, no logger
    flow.until("deliver_manufacturing")
    (alarm,) = flow.session.exec(select(Alarm).where(Alarm.case_id == flow.case.id,
                                                     Alarm.code == "no_temperature_data")).all()
    assert (alarm.kind, alarm.severity, json.loads(alarm.rule)["leg"]) == (
        "temperature", "major", "outbound")
    assert alarm.summary.startswith("No temperature data for the outbound leg: it was delivered "
                                    "without a shipment")

    def manufacture() -> Any:
        flow.step = "manufacture"
        return flow.scan("coordinator", flow.bag, flow.product or flow.register_product())

    held = manufacture()
    assert refused(held) == ["on_hold"]
    assert held.verdict.refusals[0].message.startswith(
        "On hold: no temperature data on the outbound leg, since")
    # QA quarantines: still held. Accepted under a deviation by a second decision: the
    # product is made and released, and the release lists the decision it rests on.
    alarms.acknowledge(session=flow.session, now=flow.clock.now(), actor=flow.world.actor("qa"),
                       alarm_id=alarm.id, comment="Looking into the shipper's validation")
    alarms.resolve(session=flow.session, now=flow.clock.now(), actor=flow.world.actor("qa"),
                   alarm_id=alarm.id, outcome="quarantined", comment="Pending", password=PASSWORD)
    flow.session.commit()
    assert refused(manufacture()) == ["on_hold"]
    alarms.decide(session=flow.session, now=flow.clock.now(), actor=flow.world.actor("qa"),
                  alarm_id=alarm.id, outcome="accepted_with_deviation", comment="Validated box",
                  password=PASSWORD, deviation="DEV-2026-0042")
    flow.session.commit()
    flow.ok(manufacture())
    outcome = flow.ok(release(flow))
    assert checks(outcome)[1] == {"check": "outbound_logger_data", "ok": True, "shipment": None,
                                  "alarm": alarm.id, "outcome": "accepted_with_deviation"}


def test_a_leg_without_a_shipment_is_refused_even_where_the_route_holds_nothing_for_it(
        app, session, world, clock):
    # A route version whose holds leave `no_temperature_data` out (nothing holds): the
    # precondition still refuses the release, naming the alarm QA must decide on.
    masterdata.add_route_version(session=session, now=clock.now(), actor=None, reason="test",
                                 definition=ROUTE.replace("version = 1", "version = 2\nhold = []"))
    session.commit()
    flow = Flow(app, session, world, clock)
    flow.shipping = False
    flow.until("manufacture")
    alarm = session.exec(select(Alarm).where(Alarm.code == "no_temperature_data")).one()
    outcome = release(flow)
    assert refused(outcome) == ["no_temperature_data"]
    assert outcome.verdict.refusals[0].message == (
        "No temperature data for the outbound leg: it travelled without a shipment and its "
        f"loggers; QA must decide on alarm {alarm.id} before release.")
    accept_all(flow)
    flow.ok(release(flow))


def test_a_leg_with_its_shipment_raises_no_alarm_for_missing_data(flow):
    flow.until("release")  # the Flow ships each leg with its logger file
    assert flow.session.exec(select(Alarm).where(Alarm.case_id == flow.case.id)).all() == []


def test_release_with_the_stability_budget_used_up_is_refused(flow):
    outbound(flow, data=[5.0] * 2 + [9.0] * 26 + [5.0] * 2)  # 130 min above 8 C; 120 allowed
    accept_all(flow)  # QA accepted the excursion alarms: no hold left, the budget still gone
    outcome = release(flow)
    assert refused(outcome) == ["budget_used_up"]
    assert "Stability budget used up" in outcome.verdict.refusals[0].message


# ---------------------------------------------------------------- infusion


def test_infusion_with_every_precondition_met_signs_what_was_checked(flow):
    back = returned(flow)
    out = flow.session.exec(select(Shipment).where(Shipment.leg == "outbound")).one()
    outcome = flow.ok(infuse(flow))
    listed = checks(outcome)
    assert listed[:5] == [
        {"check": "no_holds", "ok": True},
        {"check": "outbound_received", "ok": True, "shipment": out.id},
        {"check": "outbound_logger_data", "ok": True, "shipment": out.id},
        {"check": "return_received", "ok": True, "shipment": back.id},
        {"check": "return_logger_data", "ok": True, "shipment": back.id},
    ]
    assert listed[5]["check"] == "stability_budget" and listed[5]["ok"]
    assert listed[6]["check"] == "thaw_window" and listed[6]["ok"] and listed[6]["due"]
    assert listed[7] == {"check": "no_critical_custody_alarm", "ok": True}
    assert json.loads(outcome.event.body)["signed_sha256"]


def test_infusion_on_hold_is_refused(flow):
    returned(flow)
    raise_on(flow, "deadline", "expired")
    assert refused(infuse(flow)) == ["on_hold"]


def test_infusion_without_the_return_legs_logger_data_is_refused(flow):
    returned(flow, data=None)
    outcome = infuse(flow)
    assert refused(outcome) == ["no_temperature_data"]
    assert outcome.verdict.refusals[0].message.startswith(
        "No temperature data for the return leg: upload the logger file before infusion")


def test_infusion_with_the_stability_budget_used_up_is_refused(flow):
    returned(flow, data=[-170.0] * 2 + [-140.0] * 7 + [-170.0] * 2, accept=True)  # 40 min > 30
    assert refused(infuse(flow)) == ["budget_used_up"]


def test_infusion_past_the_thaw_window_is_refused(flow):
    returned(flow)
    outcome = infuse(flow, minutes=91)  # 1.5 h after thaw, and a minute
    assert refused(outcome) == ["thaw_window_passed"]
    assert "Thaw window passed" in outcome.verdict.refusals[0].message


def test_infusion_with_an_open_critical_custody_alarm_is_refused(flow):
    returned(flow)
    # A critical custody alarm of a code the route does not hold on: the infusion still waits.
    alarm = raise_on(flow, "custody", "seal_broken")
    outcome = infuse(flow)
    assert refused(outcome) == ["critical_alarm_open"]
    assert f"alarm {alarm.id}" in outcome.verdict.refusals[0].message
    accept_all(flow)
    assert checks(flow.ok(infuse(flow)))[-1] == {"check": "no_critical_custody_alarm", "ok": True}


def test_a_critical_custody_alarm_that_holds_the_infusion_is_refused_once(flow):
    returned(flow)
    raise_on(flow, "custody", "not_in_custody")
    outcome = infuse(flow)
    assert refused(outcome) == ["on_hold"]
    assert checks(outcome)[-1]["ok"] is False
