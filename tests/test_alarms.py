"""Alarms as a workflow: the inbox per user, acknowledge with a comment, resolve by QA with
an e-signature and an outcome (never while the excursion goes on), escalation to the next
group, and the notifications written for each change."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlmodel import col, select

from coi.core import alerting
from coi.core.alerting import Alerting, Webhook
from coi.core.errors import AuthenticationFailed, Conflict, Forbidden, InvalidInput, NotFound
from coi.models import Alarm, AlarmEvent, AuditEntry, Notification, Signature, User
from coi.services import alarms, signatures
from tests.helpers import PASSWORD, csv_file, login, make_case, open_for, post_form, store


def raise_one(session, clock, *, severity="major", code="late", case=None, shipment=None, kind="custody",
              fingerprint=None):
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind=kind, code=code, severity=severity,
                               summary=f"{code} happened", rule={"rule": f"custody.{code}", "max_hours": 4},
                               case_id=case.id if case else None,
                               shipment_id=shipment.id if shipment else None, fingerprint=fingerprint)
    session.commit()
    return alarm


@pytest.fixture
def case(app, session, world, clock):
    return make_case(app, session, world, clock)


def set_email(session, persona: str) -> None:
    user = session.exec(select(User).where(User.username == persona)).one()
    user.email = f"{persona}@example.org"
    session.add(user)
    session.commit()


# ------------------------------------------------------------------ raising and the inbox

def test_a_fingerprinted_alarm_is_raised_once_with_its_history(session, clock, case):
    first = raise_one(session, clock, case=case, fingerprint="case:1:x")
    assert raise_one(session, clock, case=case, fingerprint="case:1:x") is None
    events = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == first.id)).all()
    assert [(e.action, e.level) for e in events] == [("raised", 0)]
    assert session.exec(select(AuditEntry).where(AuditEntry.entity == "alarm")).first() is not None


def test_the_inbox_shows_the_most_severe_then_the_newest_first(session, world, clock, case):
    minor = raise_one(session, clock, case=case, severity="minor")
    clock.advance(minutes=1)
    old_critical = raise_one(session, clock, case=case, severity="critical")
    clock.advance(minutes=1)
    major = raise_one(session, clock, case=case, severity="major")
    clock.advance(minutes=1)
    new_critical = raise_one(session, clock, case=case, severity="critical")
    rows = alarms.inbox(session=session, actor=world.actor("staff"))
    assert [r.alarm.id for r in rows] == [new_critical.id, old_critical.id, major.id, minor.id]
    assert all(r.coi and r.told_to_me for r in rows)  # staff of the case's site: the first group
    only = alarms.inbox(session=session, actor=world.actor("staff"), severity="critical")
    assert [r.alarm.id for r in only] == [new_critical.id, old_critical.id]


def test_the_inbox_is_limited_to_the_users_sites_and_roles(app, session, world, clock, case):
    other = make_case(app, session, world, clock, site_code="BER", actor=world.actor("outsider"),
                      mrn="B-1", name="Bernd Other")
    bos = raise_one(session, clock, case=case)
    ber = raise_one(session, clock, case=other)
    shipment = open_for(session, world, clock, case)
    on_the_road = raise_one(session, clock, case=case, shipment=shipment, kind="temperature", code="x")

    def seen(persona):
        return {r.alarm.id for r in alarms.inbox(session=session, actor=world.actor(persona))}

    assert seen("staff") == {bos.id, on_the_road.id}
    assert seen("outsider") == {ber.id}
    assert seen("qa") == {bos.id, ber.id, on_the_road.id}  # QA of the manufacturing site
    assert seen("courier") == {on_the_road.id}  # couriers: shipment alarms only
    assert seen("admin") == set()
    with pytest.raises(NotFound):
        alarms.visible_alarm(session=session, actor=world.actor("outsider"), alarm_id=bos.id)


# ------------------------------------------------------------------ acknowledge and resolve

def test_acknowledging_needs_a_comment_and_stops_escalation(session, world, clock, case):
    alarm = raise_one(session, clock, case=case)
    alarms.notify(session, clock.now())
    session.commit()
    session.refresh(alarm)
    assert alarm.escalate_at == alarm.raised_at + timedelta(minutes=60)  # major: an hour
    with pytest.raises(InvalidInput, match="comment is required"):
        alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("staff"),
                           alarm_id=alarm.id, comment="  ")
    session.rollback()
    clock.advance(minutes=5)
    alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("staff"), alarm_id=alarm.id,
                       comment="Bag found in the fridge, repacking")
    session.commit()
    session.refresh(alarm)
    assert (alarm.state, alarm.acknowledged_at, alarm.escalate_at) == ("acknowledged", clock.now(), None)
    assert alarms.escalate(session, clock.now() + timedelta(hours=5)) == 0
    with pytest.raises(Conflict, match="acknowledged by Staff Person"):
        alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("staff2"),
                           alarm_id=alarm.id, comment="me too")


def test_qa_resolves_with_an_e_signature_bound_to_the_decision(session, world, clock, case):
    alarm = raise_one(session, clock, case=case)
    with pytest.raises(Conflict, match="Acknowledge the alarm first"):
        alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                       outcome="accepted", comment="fine", password=PASSWORD)
    session.rollback()
    alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("staff"), alarm_id=alarm.id,
                       comment="looking")
    session.commit()
    with pytest.raises(Forbidden):
        alarms.resolve(session=session, now=clock.now(), actor=world.actor("staff"), alarm_id=alarm.id,
                       outcome="accepted", comment="fine", password=PASSWORD)
    with pytest.raises(InvalidInput, match="Choose what became of the product"):
        alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                       outcome="shrug", comment="fine", password=PASSWORD)
    with pytest.raises(AuthenticationFailed):
        alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                       outcome="accepted", comment="fine", password="wrong")
    session.rollback()
    session.refresh(alarm)
    assert alarm.state == "acknowledged"  # nothing changed by the refusals
    clock.advance(minutes=30)
    alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                   outcome="quarantined", comment="Held pending investigation DEV-12", password=PASSWORD)
    session.commit()
    session.refresh(alarm)
    assert (alarm.state, alarm.outcome, alarm.resolved_at) == ("resolved", "quarantined", clock.now())
    event = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id,
                                                  AlarmEvent.action == "resolved")).one()
    signature = session.get(Signature, event.signature_id)
    assert (signature.meaning, signature.signer_name) == ("resolved", "Qa Person (qa)")
    signed = {"alarm": alarm.id, "kind": "custody", "code": "late", "summary": "late happened",
              "rule": {"rule": "custody.late", "max_hours": 4}, "outcome": "quarantined",
              "comment": "Held pending investigation DEV-12", "at": clock.now().isoformat()}
    assert signatures.matches(signature, signed)
    assert not signatures.matches(signature, signed | {"outcome": "accepted"})


def test_a_temperature_alarm_cannot_be_resolved_while_the_excursion_goes_on(app, session, world, clock):
    from coi.services.loggers import evaluation

    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    clock.advance(hours=4)
    start = shipment.opened_at
    warm = [5.0] * 6 + [9.5] * 8  # 40 min above 8 C and still warm at the last reading
    stored = store(session, world, clock, shipment, csv_file(warm, start=start))
    alarm = next(a for a in stored.alarms if a.code == "excursion_single")
    alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("coordinator"), alarm_id=alarm.id,
                       comment="Courier asked to add dry ice")
    session.commit()
    assert evaluation.still_going_on(session=session, now=clock.now(), alarm=alarm)
    with pytest.raises(Conflict, match="still going on"):
        alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                       outcome="accepted", comment="ok", password=PASSWORD)
    session.rollback()
    store(session, world, clock, shipment, csv_file(warm + [5.0] * 4, start=start), name="later.csv")
    assert not evaluation.still_going_on(session=session, now=clock.now(), alarm=alarm)
    alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                   outcome="accepted_with_deviation", comment="50 min at 9.5 C within stability data",
                   password=PASSWORD, deviation="DEV-2026-0142")
    session.commit()
    assert session.get(Alarm, alarm.id).state == "resolved"


# ------------------------------------------------------------------ escalation and telling

@pytest.mark.parametrize(("offset", "escalated"), [(-1, False), (0, True), (1, True)])
def test_an_unacknowledged_alarm_escalates_to_the_next_group(session, world, clock, case, offset, escalated):
    for persona in ("staff", "qa", "admin"):
        set_email(session, persona)
    alarm = raise_one(session, clock, case=case, severity="critical")
    assert alarms.notify(session, clock.now()) == 1  # staff, who has an e-mail address
    session.commit()
    session.refresh(alarm)
    due = alarm.raised_at + timedelta(minutes=15)  # critical: a quarter of an hour
    assert alarm.escalate_at == due
    assert alarms.escalate(session, due + timedelta(seconds=offset)) == int(escalated)
    session.commit()
    session.refresh(alarm)
    assert alarm.level == int(escalated)
    if escalated:
        assert alarm.escalate_at == due + timedelta(seconds=offset) + timedelta(minutes=30)
        assert alarms.notify(session, due + timedelta(seconds=offset)) == 1
        session.commit()
        mails = session.exec(select(Notification.target, Notification.level, Notification.reason)
                             .order_by(col(Notification.id))).all()
        assert mails == [("staff@example.org", 0, "raised"), ("qa@example.org", 1, "escalated")]
        event = session.exec(select(AlarmEvent).where(AlarmEvent.action == "escalated")).one()
        assert "now told to qa" in event.comment


def test_the_last_group_is_told_once_and_escalation_ends(app, session, world, clock, case):
    from coi.services import users

    other_qa = users.create_user(session=session, now=clock.now(), actor=None, username="qa.ber",
                                 full_name="Berlin QA", password=PASSWORD, reason="test",
                                 email="qa.ber@example.org")
    users.grant_role(session=session, now=clock.now(), actor=None, user_id=other_qa.id,
                     site_id=world.sites["BER"].id, role="qa", reason="test")
    set_email(session, "qa")
    alarm = raise_one(session, clock, case=case, severity="critical")
    alarms.notify(session, clock.now())
    at = clock.now()
    for _ in range(5):
        at += timedelta(hours=1)
        alarms.escalate(session, at)
        alarms.notify(session, at)
        session.commit()
    session.refresh(alarm)
    assert (alarm.level, alarm.escalate_at) == (2, None)
    told = session.exec(select(Notification.target, Notification.level).order_by(col(Notification.id))).all()
    # QA of the case's sites at level 1, then QA everywhere (Berlin too) at level 2.
    assert told == [("qa@example.org", 1), ("qa@example.org", 2), ("qa.ber@example.org", 2)]


def test_every_change_goes_to_every_webhook_once(session, world, clock, case):
    settings = Alerting(levels=alerting.DEFAULT.levels,
                        webhooks=(Webhook("lims", "http://127.0.0.1:9/hook", "s" * 16),))
    alarm = raise_one(session, clock, case=case)
    assert alarms.notify(session, clock.now(), settings=settings) == 1
    assert alarms.notify(session, clock.now(), settings=settings) == 0  # told already
    alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("staff"), alarm_id=alarm.id,
                       comment="on it")
    alarms.resolve(session=session, now=clock.now(), actor=world.actor("qa"), alarm_id=alarm.id,
                   outcome="no_product_impact", comment="scan mistake", password=PASSWORD)
    assert alarms.notify(session, clock.now(), settings=settings) == 2
    session.commit()
    reasons = session.exec(select(Notification.reason).where(Notification.channel == "webhook")
                           .order_by(col(Notification.id))).all()
    assert reasons == ["raised", "acknowledged", "resolved"]


def test_a_stale_notify_claim_writes_nothing(session, world, clock, case):
    alarm = raise_one(session, clock, case=case)
    set_email(session, "staff")
    first = alarms._notify_one(session, clock.now(), alarm.id, clock.now(), alerting.DEFAULT)
    second = alarms._notify_one(session, clock.now(), alarm.id, clock.now(), alerting.DEFAULT)
    assert (first, second) == (1, 0)


# ------------------------------------------------------------------ the pages

def test_the_inbox_and_alarm_pages_acknowledge_and_resolve(app, client, session, world, clock, case):
    alarm = raise_one(session, clock, case=case, severity="critical")
    login(client, "staff")
    inbox = client.get("/alarms").get_data(as_text=True)
    assert "late happened" in inbox and f"/alarms/{alarm.id}" in inbox
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    assert "Custody: Step late" in page and "raised" in page and "Acknowledge" in page
    response = post_form(client, f"/alarms/{alarm.id}", f"/alarms/{alarm.id}/acknowledge",
                         {"comment": "Bag secured"})
    assert response.status_code == 302
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    assert "Alarm acknowledged" in page and "Bag secured" in page and "QA resolves it" in page
    client = app.test_client()  # QA, on another computer
    login(client, "qa")
    post_form(client, f"/alarms/{alarm.id}", f"/alarms/{alarm.id}/resolve",
                         {"outcome": "accepted", "comment": "Verified identity", "password": "wrong"})
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    session.expire_all()
    assert "Not resolved" in page and session.get(Alarm, alarm.id).state == "acknowledged"
    post_form(client, f"/alarms/{alarm.id}", f"/alarms/{alarm.id}/resolve",
              {"outcome": "accepted", "comment": "Verified identity", "password": PASSWORD})
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    assert "Alarm resolved and signed" in page
    assert re.search(r"Signed by Qa Person \(qa\), meaning “resolved”", page)
    session.rollback()  # end the snapshot read above
    session.expire_all()
    assert session.get(Alarm, alarm.id).outcome == "accepted"


def test_an_unknown_inbox_filter_is_a_clear_error(client, world):
    login(client, "staff")
    response = client.get("/alarms?state=bogus")
    assert response.status_code == 422 and "Unknown filter" in response.get_data(as_text=True)


def test_the_rule_is_shown_as_it_was_when_the_alarm_fired(client, session, world, clock, case):
    alarm = raise_one(session, clock, case=case)
    login(client, "staff")
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    assert "<th scope=\"row\">Time allowed</th><td>4 h</td>" in page
    assert "max_hours" not in page and "&#34;" not in page  # no raw JSON on the page
    assert json.loads(alarm.rule) == {"rule": "custody.late", "max_hours": 4}


def test_the_rule_that_fired_downloads_as_the_json_stored_with_the_alarm(client, session, world,
                                                                          clock, case):
    alarm = raise_one(session, clock, case=case)
    login(client, "staff")
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    assert f'href="/alarms/{alarm.id}/rule.json" download' in page
    response = client.get(f"/alarms/{alarm.id}/rule.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="alarm-{alarm.id}-rule.json"'
    assert response.get_json() == {"rule": "custody.late", "max_hours": 4}
