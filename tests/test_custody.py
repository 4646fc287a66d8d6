"""The scan service: judging against the ledger's state, recording every verdict, handoffs,
signatures, transformation, idempotency, alarms and the race for one handoff."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from coi.core.errors import Conflict, InvalidInput
from coi.core.workflow import Entry
from coi.models import Alarm, Case, CustodyEvent, LoginAttempt, Signature, Unit, coi_of
from coi.services import custody, ledger, users
from coi.services.custody import Credential
from tests.databases import ENGINE
from tests.helpers import PASSWORD, Flow, make_case


@pytest.fixture
def flow(app, session, world, clock) -> Flow:
    return Flow(app, session, world, clock)


def test_a_case_goes_needle_to_needle_and_its_ledger_verifies(flow, session):
    flow.until("infuse")
    kinds = [e.kind for e in flow.events()]
    assert kinds[:2] == ["enrol", "register_unit"]
    assert kinds.count("handoff_give") == kinds.count("handoff_receive") == 4
    assert kinds.count("transform") == 1 and "scan_refused" not in kinds
    session.refresh(flow.case)
    assert (flow.case.state, flow.case.last_step, flow.case.next_step) == ("complete", "infuse", None)
    assert ledger.verify(session=session) == []


def test_custody_passes_only_when_the_receiver_has_scanned(flow, session, world):
    flow.until("pickup.give")
    bag = session.exec(select(Unit).where(Unit.kind == "apheresis_bag")).one()
    assert bag.custodian_site_id == world.sites["BOS"].id  # given, not yet received
    flow.until("pickup")
    session.refresh(bag)
    assert bag.custodian_site_id == world.sites["DEP"].id


def test_the_giver_cannot_receive_and_that_raises_a_custody_alarm(flow, session):
    flow.until("pickup.give")
    outcome = flow.scan("staff", flow.bag)
    assert [r.code for r in outcome.verdict.refusals] == ["wrong_role", "wrong_site", "wrong_person"]
    assert outcome.event.kind == "scan_refused"
    alarm = session.exec(select(Alarm)).one()
    assert (alarm.code, alarm.kind, alarm.state, alarm.event_id) == ("wrong_person", "custody", "open",
                                                                     outcome.event.id)
    assert json.loads(alarm.rule)["step"]["to_roles"] == ["courier"]


def test_every_refused_scan_is_recorded_with_what_was_scanned_and_why(flow, session):
    wrong = flow.bag[:-1] + ("0" if flow.bag[-1] != "0" else "1")
    outcome = flow.scan("staff", flow.coi.text, wrong, signer="staff", verifier="staff2")
    assert [r.code for r in outcome.verdict.refusals] == ["bad_check", "missing_scan"]
    event = flow.events()[-1]
    body = json.loads(event.body)
    assert event.kind == "scan_refused" and body["scans"][1]["text"] == wrong
    assert body["refusals"][0]["code"] == "bad_check" and body["step"] == "collect"
    assert session.exec(select(func.count()).select_from(Signature)).one() == 0  # nothing signed


def test_collection_needs_a_second_person_who_signs(flow, session):
    refused = flow.scan("staff", flow.coi.text, flow.bag, signer="staff")
    assert [r.code for r in refused.verdict.refusals] == ["missing_verifier"]
    done = flow.scan("staff", flow.coi.text, flow.bag, signer="staff", verifier="staff2")
    signed = custody.signatures_of(session, done.event)
    assert [(s.signer_name, s.meaning) for s in signed] == [("Staff Person (staff)", "collected"),
                                                            ("Staff2 Person (staff2)", "verified")]
    assert json.loads(done.event.body)["signed_sha256"] == signed[0].content_sha256


def test_a_wrong_verifier_password_signs_nothing_and_counts_as_a_failed_login(flow, session):
    outcome = custody.scan(session=session, now=flow.clock.now(), actor=flow.world.actor("staff"),
                           entries=[Entry(flow.coi.text), Entry(flow.bag)], own_password=PASSWORD,
                           step_name="collect",
                           verifiers=[Credential("staff2", "wrong password")])
    session.commit()
    assert "signature_failed" in [r.code for r in outcome.verdict.refusals]
    assert session.exec(select(func.count()).select_from(Signature)).one() == 0
    failed = session.exec(select(LoginAttempt).where(LoginAttempt.username == "staff2")).one()
    assert failed.succeeded is False


def test_a_verifier_from_another_site_is_refused(flow):
    outcome = flow.scan("staff", flow.coi.text, flow.bag, signer="staff", verifier="outsider")
    assert [r.code for r in outcome.verdict.refusals] == ["verifier_role"]


def test_manufacturing_records_one_event_linking_parents_and_children(flow, session):
    flow.until("manufacture")
    event = [e for e in flow.events() if e.kind == "transform"][0]
    body = json.loads(event.body)
    assert body["parents"] == [flow.bag[:16]] and body["children"] == [flow.product[:16]]
    states = dict(session.exec(select(Unit.kind, Unit.state)).all())
    assert states == {"apheresis_bag": "consumed", "drug_product_bag": "manufacture"}


def test_the_consumed_apheresis_bag_cannot_stand_in_for_the_product(flow):
    flow.until("manufacture")
    outcome = flow.scan("qa", flow.bag, signer="qa", step="release")
    assert "wrong_kind" in [r.code for r in outcome.verdict.refusals]


def test_infusion_needs_the_patients_own_wristband(app, flow, session, world, clock):
    other = make_case(app, session, world, clock, mrn="M-2", name="Bo Other")
    flow.until("thaw")
    outcome = flow.scan("staff", coi_of(other).text, flow.product, signer="staff", verifier="staff2",
                        step="infuse")
    assert "other_case" in [r.code for r in outcome.verdict.refusals]
    alarm = session.exec(select(Alarm)).one()
    assert (alarm.code, alarm.severity) == ("other_case", "critical")


def test_a_late_step_is_recorded_with_a_late_alarm(flow, session):
    flow.until("collect")
    outcome = flow.scan("staff", flow.bag, minutes=241, step="pack")
    assert outcome.verdict.accepted and [a.code for a in outcome.alarms] == ["late"]
    assert "1 min past its limit of 4 h" in outcome.alarms[0].summary


def test_an_infusion_past_the_thaw_window_is_refused(flow, session):
    # The thaw window is a precondition of infusion (coi.services.holds.preconditions).
    flow.until("thaw")
    outcome = flow.scan("staff", flow.coi.text, flow.product, signer="staff", verifier="staff2",
                        minutes=91, step="infuse")
    assert [r.code for r in outcome.verdict.refusals] == ["thaw_window_passed"]
    assert outcome.event.kind == "scan_refused"


def test_the_case_records_the_due_time_of_its_next_step(flow, session):
    flow.until("thaw")
    session.refresh(flow.case)
    assert flow.case.next_step == "infuse"
    assert flow.case.next_due_at == flow.case.last_step_at + timedelta(hours=1.5)


def test_a_retried_request_is_recorded_once_and_answers_the_same(flow, session, clock):
    device_at = clock.now() - timedelta(minutes=3)
    first = flow.scan("staff", flow.bag, step="pack", idempotency_key="k-0001-abcdef",
                      device="scanner-7", device_at=device_at)
    assert first.verdict.accepted is False  # collection is not done yet: refused, recorded
    again = flow.scan("staff", flow.bag, step="pack", idempotency_key="k-0001-abcdef")
    assert again.replayed and again.event.id == first.event.id
    assert [r.code for r in again.verdict.refusals] == [r.code for r in first.verdict.refusals]
    assert sum(e.kind == "scan_refused" for e in flow.events()) == 1
    assert (first.event.device, first.event.device_at) == ("scanner-7", device_at)


def test_an_idempotency_key_reused_for_another_scan_is_a_conflict(flow):
    flow.scan("staff", flow.bag, step="pack", idempotency_key="k-0002-abcdef")
    with pytest.raises(Conflict, match="already used for a different scan"):
        flow.scan("staff", flow.coi.text, step="pack", idempotency_key="k-0002-abcdef")


def test_a_scan_sent_again_without_a_key_is_a_replay_and_refused(flow):
    flow.until("pack")
    outcome = flow.scan("staff", flow.bag, step="pack")
    assert [r.code for r in outcome.verdict.refusals] == ["already_done"]


def test_a_partial_scan_lists_what_is_missing_and_records_nothing(flow, session):
    before = len(flow.events())
    outcome = flow.scan("staff", flow.bag, partial=True)
    assert outcome.verdict.accepted and outcome.event is None
    assert outcome.verdict.missing == ("wristband",) and len(flow.events()) == before


def test_a_partial_scan_that_completes_a_named_unsigned_step_only_proposes_it(flow):
    """Every step waits for its Record (issue 17): one label or two, complete or not."""
    flow.until("collect")
    before = len(flow.events())
    outcome = flow.scan("staff", flow.bag, partial=True, step="pack")
    assert outcome.verdict.accepted and outcome.verdict.missing == ()
    assert outcome.event is None and len(flow.events()) == before
    recorded = flow.scan("staff", flow.bag, step="pack")
    assert recorded.event is not None and recorded.event.kind == "step"


def test_a_step_found_from_the_scan_itself_is_proposed_not_recorded(flow):
    """A scanner that fires twice at a handoff must not hand the bag on to the next step."""
    flow.until("pickup")
    outcome = flow.scan("courier", flow.bag, partial=True)
    assert outcome.step.name == "deliver_manufacturing" and outcome.verdict.accepted
    assert outcome.event is None and outcome.verdict.missing == ()


def test_input_that_names_no_case_is_refused_before_anything_is_written(flow, session):
    before = session.exec(select(func.count()).select_from(CustodyEvent)).one()
    with pytest.raises(InvalidInput, match="names a case"):
        flow.scan("staff", "hello world")
    with pytest.raises(InvalidInput, match="Nothing was scanned"):
        flow.scan("staff")
    assert session.exec(select(func.count()).select_from(CustodyEvent)).one() == before


@pytest.mark.skipif(ENGINE != "postgresql", reason="real concurrent transactions: PostgreSQL")
def test_two_couriers_receiving_the_same_handoff_at_once_exactly_one_wins(flow, session, engine,
                                                                          world, clock):
    second = users.create_user(session=session, now=clock.now(), actor=None, username="courier2",
                               full_name="Second Courier", password=PASSWORD, reason="test")
    users.grant_role(session=session, now=clock.now(), actor=None, user_id=second.id,
                     site_id=world.sites["DEP"].id, role="courier", reason="test")
    session.commit()
    actors = [world.actor("courier"), users.actor_for(session=session, user=second)]
    flow.until("pickup.give")
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def receive(index: int) -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            outcome = custody.scan(session=own, now=clock.now(), actor=actors[index],
                                   entries=[Entry(flow.bag)], step_name="pickup")
            own.commit()
            results[index] = outcome

    threads = [threading.Thread(target=receive, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    verdicts = sorted((r.verdict.accepted, [x.code for x in r.verdict.refusals]) for r in results)
    assert [accepted for accepted, _codes in verdicts] == [False, True]
    assert verdicts[0][1][0] == "already_done"  # the loser is told the handoff is done
    kinds = [e.kind for e in flow.events()]
    assert kinds.count("handoff_receive") == 1 and kinds[-1] == "scan_refused"
    assert ledger.verify(session=session) == []


def test_a_final_scan_must_name_its_step(flow):
    with pytest.raises(InvalidInput, match="which step"):
        custody.scan(session=flow.session, now=flow.clock.now(), actor=flow.world.actor("staff"),
                     entries=[Entry(flow.bag)])


def test_after_the_last_step_a_scan_is_told_the_route_is_complete(flow, session):
    flow.until("infuse")
    outcome = flow.scan("staff", flow.product, partial=True)
    assert [r.code for r in outcome.verdict.refusals] == ["route_complete"]
    assert session.exec(select(Case.state)).first() == "complete"


def test_a_refusal_at_the_bedside_goes_on_the_case_of_the_bag_in_hand(app, flow, session, world,
                                                                     clock):
    other = make_case(app, session, world, clock, mrn="M-3", name="Cy Other")
    flow.until("thaw")
    outcome = custody.scan(session=session, now=clock.now(), actor=world.actor("staff"),
                           entries=[Entry(coi_of(other).text), Entry(flow.product)],
                           step_name="infuse", partial=True)
    session.commit()
    assert outcome.case.id == flow.case.id and outcome.event.case_id == flow.case.id
    assert "other_case" in [r.code for r in outcome.verdict.refusals]


@pytest.mark.skipif(ENGINE != "postgresql", reason="real concurrent transactions: PostgreSQL")
def test_one_request_sent_twice_at_once_is_recorded_once_and_both_get_its_answer(flow, engine,
                                                                                  world, clock):
    flow.until("pack")
    barrier = threading.Barrier(2)
    answers: list = [None, None]

    def send(index: int) -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            outcome = custody.scan(session=own, now=clock.now(), actor=world.actor("staff"),
                                   entries=[Entry(flow.bag)], step_name="pickup",
                                   idempotency_key="same-request-0001")
            own.commit()
            answers[index] = (outcome.event.id, outcome.verdict.accepted, outcome.replayed)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers[0][:2] == answers[1][:2] and answers[0][1] is True
    assert sorted(replayed for _id, _ok, replayed in answers) == [False, True]
    assert [e.kind for e in flow.events()].count("handoff_give") == 1
