"""The development outbox: with no mail server, a development machine keeps alarm e-mails in a
table that global administrators read at /admin/outbox, and the alarm's delivery log says so.
With a mail server, or in production, nothing changes."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage
from typing import Any

import pytest
from sqlmodel import Session, select

from coi import config
from coi.config import ConfigError
from coi.core import alerting
from coi.core.alerting import Alerting, Mail
from coi.models import Alarm, Case, Notification, OutboxMessage, coi_of
from coi.services import outbox
from coi.services.delivery import Transport, deliver, delivery_log
from tests.helpers import login, make_case

BASE_URL = "https://coi.example.org"
DEVELOPMENT = Alerting(levels=alerting.DEFAULT.levels, outbox=True, base_url=BASE_URL)


class NoNetwork(Transport):
    """A transport that fails the test if anything tries to leave the machine."""

    def send_mail(self, mail: Mail, message: EmailMessage) -> str:
        raise AssertionError(f"an e-mail to {message['To']} was sent")


def email_to_qa(app: Any, session: Session, world: Any, clock: Any) -> tuple[Alarm, Notification]:
    """An open alarm about a Boston case (its patient named Zelda Quincey-Marsh), and the
    e-mail due to QA about it."""
    now = clock.now()
    case = make_case(app, session, world, clock, name="Zelda Quincey-Marsh", mrn="MRN-77431")
    alarm = Alarm(kind="deadline", code="step_overdue", severity="critical", raised_at=now,
                  summary="Apheresis was due by 09:00 and has not been recorded.",
                  rule='{"rule": "deadline.step_overdue"}', case_id=case.id)
    session.add(alarm)
    session.commit()
    notification = Notification(alarm_id=alarm.id, channel="email", target="qa@example.org",
                                user_id=world.actor("qa").user_id, reason="raised",
                                next_attempt_at=now, created_at=now)
    session.add(notification)
    session.commit()
    return alarm, notification


def kept(session: Session) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))  # type: ignore[arg-type]


# ---------------------------------------------------------------- the delivery job

def test_without_a_mail_server_the_delivery_job_keeps_the_email_and_marks_it_sent(
        app, session, world, clock):
    alarm, notification = email_to_qa(app, session, world, clock)
    now = clock.now()

    assert deliver(session, now, settings=DEVELOPMENT, transport=NoNetwork()) == 1

    [message] = kept(session)
    coi = coi_of(session.get_one(Case, alarm.case_id))
    assert (message.notification_id, message.alarm_id, message.recipient, message.user_id, message.at) == (
        notification.id, alarm.id, "qa@example.org", world.actor("qa").user_id, now)
    assert message.subject == f"[COI critical] Step overdue: {coi.text}"
    for expected in (alarm.summary, coi.text, f"{BASE_URL}/alarms/{alarm.id}", "deadline.step_overdue"):
        assert expected in message.body
    for patient_data in ("Zelda", "Quincey", "MRN-77431"):
        assert patient_data not in message.body
    row = session.get_one(Notification, notification.id, populate_existing=True)
    assert (row.state, row.sent_at, row.next_attempt_at, row.last_error) == ("sent", now, None, None)
    [(_n, [attempt])] = delivery_log(session, alarm.id)
    assert (attempt.ok, attempt.detail) == (True, outbox.KEPT_DETAIL)
    assert "development outbox" in attempt.detail


def test_a_kept_email_is_not_kept_again_at_the_next_run(app, session, world, clock):
    email_to_qa(app, session, world, clock)
    deliver(session, clock.now(), settings=DEVELOPMENT, transport=NoNetwork())

    assert deliver(session, clock.now(), settings=DEVELOPMENT, transport=NoNetwork()) == 0
    assert len(kept(session)) == 1


def test_with_the_outbox_off_and_no_mail_server_the_email_is_given_up_as_before(
        app, session, world, clock):
    _alarm, notification = email_to_qa(app, session, world, clock)
    production = dataclasses.replace(DEVELOPMENT, outbox=False)

    deliver(session, clock.now(), settings=production, transport=NoNetwork())

    row = session.get_one(Notification, notification.id, populate_existing=True)
    assert row.state == "failed" and "no mail server is configured" in (row.last_error or "")
    assert kept(session) == []


# ---------------------------------------------------------------- the setting

@pytest.fixture
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COI_MODE", "COI_MAIL_SERVER", "COI_MAIL_OUTBOX"):
        monkeypatch.delenv(name, raising=False)


def loaded(run_config: dict[str, Any], tmp_path: Any, **overrides: Any) -> dict[str, Any]:
    return config.load(str(tmp_path), run_config | overrides)


@pytest.mark.parametrize(("mode", "server", "outbox_on"), [
    ("development", "", True),  # a laptop: kept, readable in the UI
    ("development", "127.0.0.1:8025", False),  # a mail server configured: sent as before
    ("testing", "", False),
    ("production", "", False),  # production without a mail server behaves as before
])
def test_the_outbox_is_on_by_default_only_in_development_without_a_mail_server(
        quiet_environment, run_config, tmp_path, mode, server, outbox_on):
    settings = loaded(run_config, tmp_path, MODE=mode, MAIL_SERVER=server)

    assert settings["MAIL_OUTBOX"] is outbox_on
    assert config.alerting_settings(settings).outbox is outbox_on


def test_the_outbox_is_read_from_the_environment(quiet_environment, monkeypatch, run_config, tmp_path):
    monkeypatch.setenv("COI_MAIL_OUTBOX", "off")
    assert loaded(run_config, tmp_path, MODE="development")["MAIL_OUTBOX"] is False
    monkeypatch.setenv("COI_MAIL_OUTBOX", "on")
    assert loaded(run_config, tmp_path, MODE="testing")["MAIL_OUTBOX"] is True


@pytest.mark.parametrize(("overrides", "says"), [
    ({"MODE": "production", "MAIL_OUTBOX": "on"}, "never reach anyone"),
    ({"MODE": "development", "MAIL_OUTBOX": "on", "MAIL_SERVER": "127.0.0.1:25"}, "one or the other"),
    ({"MODE": "development", "MAIL_OUTBOX": "maybe"}, "use on or off"),
])
def test_an_outbox_that_would_hide_alarms_or_cannot_be_read_is_refused_at_start(
        quiet_environment, run_config, tmp_path, overrides, says):
    with pytest.raises(ConfigError, match=says):
        loaded(run_config, tmp_path, **overrides)


# ---------------------------------------------------------------- the page

def test_a_global_administrator_reads_each_kept_email_newest_first(app, client, session, world, clock):
    alarm, _notification = email_to_qa(app, session, world, clock)
    deliver(session, clock.now(), settings=DEVELOPMENT, transport=NoNetwork())
    [message] = kept(session)

    login(client, "root")
    page = client.get("/admin/outbox")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "qa@example.org" in text and message.subject in text
    assert f'<pre class="mail">{message.body.splitlines()[0]}' in text  # the whole text, its lines kept
    assert f"{BASE_URL}/alarms/{alarm.id}" in text
    assert f'href="/alarms/{alarm.id}"' in text
    assert "2026-11-22 09:00 UTC" in text  # the reader's zone, named
    assert "1 message." in text


def test_the_alarms_delivery_log_says_the_email_was_kept_not_sent(app, client, session, world, clock):
    alarm, _notification = email_to_qa(app, session, world, clock)
    deliver(session, clock.now(), settings=DEVELOPMENT, transport=NoNetwork())

    login(client, "qa")
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)

    assert "qa@example.org" in page and "kept in the development outbox (no mail server configured)" in page


def test_the_page_says_when_it_shows_only_the_newest(app, client, session, world, clock, monkeypatch):
    alarm, notification = email_to_qa(app, session, world, clock)
    for second in range(3):
        outbox.keep(session=session, now=clock.now().replace(second=second),
                    notification_id=notification.id, alarm_id=alarm.id, recipient=f"n{second}@example.org",
                    user_id=None, subject=f"Message {second}", body="text")
    session.commit()
    monkeypatch.setattr(outbox, "SHOWN", 2)

    login(client, "root")
    text = client.get("/admin/outbox").get_data(as_text=True)

    assert "The newest 2 of 3 messages are shown." in text
    assert text.index("Message 2") < text.index("Message 1")
    assert "Message 0" not in text


@pytest.mark.parametrize("persona", ["admin", "qa", "staff"])
def test_nobody_but_a_global_administrator_reads_the_outbox(client, world, persona):
    login(client, persona)
    assert client.get("/admin/outbox").status_code == 403


def test_the_users_page_links_to_the_outbox_only_while_it_is_in_use(app, client, world):
    login(client, "root")
    assert "/admin/outbox" not in client.get("/admin/users").get_data(as_text=True)

    app.extensions["coi.alerting"] = dataclasses.replace(app.extensions["coi.alerting"], outbox=True)
    assert 'href="/admin/outbox"' in client.get("/admin/users").get_data(as_text=True)
