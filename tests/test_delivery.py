"""Sending notifications: e-mails to a real SMTP server and signed webhook calls to a real HTTP
server, both on 127.0.0.1; retries, giving up, and claims that keep two schedulers from sending
the same message."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session

from coi.core import alerting
from coi.core.alerting import Alerting, Mail, Webhook
from coi.models import Alarm, AlarmEvent, Notification, Shipment, Unit, coi_of, serial_of
from coi.services.delivery import Transport, claim, deliver, delivery_log, verify_signature
from tests.helpers import make_case

SECRET = "webhook-secret-for-tests-only"
BASE_URL = "https://coi.example.org"
RULE = {"rule": "step_deadline", "step": "apheresis", "within_hours": 48}


# ---------------------------------------------------------------- servers

def free_port() -> int:
    # aiosmtpd's Controller cannot listen on port 0 (it connects to its own port to check it).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MailHandler:
    """Collects messages; `refuse` maps "RCPT" or "DATA" to the answer given there instead."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        if "RCPT" in self.refuse:
            return self.refuse["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if "DATA" in self.refuse:
            return self.refuse["DATA"]
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 2.0.0 Ok: queued as Q123"


@pytest.fixture
def smtp() -> Iterator[tuple[MailHandler, int]]:
    handler, port = MailHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@dataclass
class Call:
    path: str
    headers: Mapping[str, str]
    body: bytes


class Receiver(ThreadingHTTPServer):
    """A webhook receiver: records each call and answers with the next of `answers` (then 200)."""

    calls: list[Call]
    answers: list[int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/coi"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.calls.append(Call(self.path, self.headers, body))  # names compare case-blind
        status = self.server.answers.pop(0) if self.server.answers else 200
        answer = b'{"received": true}' if status == 200 else b"nope"
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), ReceiverHandler)
    server.calls, server.answers = [], []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def settings(smtp: tuple[MailHandler, int], receiver: Receiver) -> Alerting:
    return Alerting(levels=alerting.DEFAULT.levels, webhooks=(Webhook("lims", receiver.url, SECRET),),
                    mail=Mail("127.0.0.1", smtp[1], sender="coi-alarms@coi.example.org", timeout_s=5),
                    base_url=BASE_URL, max_attempts=3)


# ---------------------------------------------------------------- rows

def make_alarm(session: Session, now: datetime, **overrides: Any) -> Alarm:
    alarm = Alarm(**{"kind": "deadline", "code": "step_overdue", "severity": "critical", "raised_at": now,
                     "summary": "Apheresis was due by 09:00 and has not been recorded.",
                     "rule": json.dumps(RULE)} | overrides)
    session.add(alarm)
    session.commit()
    return alarm


def make_notification(session: Session, alarm: Alarm, now: datetime, channel: str = "webhook",
                      target: str = "lims", **overrides: Any) -> Notification:
    notification = Notification(**{"alarm_id": alarm.id, "channel": channel, "target": target,
                                   "next_attempt_at": now, "created_at": now} | overrides)
    session.add(notification)
    session.commit()
    return notification


def reload(session: Session, notification: Notification) -> Notification:
    return session.get_one(Notification, notification.id, populate_existing=True)


def attempts_of(session: Session, alarm: Alarm, notification: Notification) -> list[tuple[bool, str]]:
    return [(a.ok, a.detail) for n, attempts in delivery_log(session, alarm.id) if n.id == notification.id
            for a in attempts]


def assert_given_up(session: Session, notification: Notification, error: str) -> None:
    row = reload(session, notification)
    assert (row.state, row.next_attempt_at, row.attempts) == ("failed", None, 1)
    assert row.last_error is not None and error in row.last_error


# ---------------------------------------------------------------- what arrives

def test_email_names_the_case_by_its_coi_only_and_links_to_the_alarm(app, session, world, clock, smtp,
                                                                     settings):
    now = clock.now()
    case = make_case(app, session, world, clock, name="Zelda Quincey-Marsh", mrn="MRN-77431")
    unit = Unit(serial=case.coi + "A01", case_id=case.id, kind="apheresis_bag", sequence=1,
                state="registered", custodian_site_id=world.sites["BOS"].id, created_at=now,
                created_by_id=world.actor("staff").user_id)
    shipment = Shipment(case_id=case.id, leg="outbound", origin_site_id=world.sites["BOS"].id,
                        destination_site_id=world.sites["MFG"].id, profile="cryo", profile_rule="{}",
                        opened_at=now, opened_by_id=world.actor("staff").user_id)
    session.add_all([unit, shipment])
    session.commit()
    alarm = make_alarm(session, now, case_id=case.id, unit_id=unit.id, shipment_id=shipment.id)
    qa = world.actor("qa")
    notification = make_notification(session, alarm, now, "email", "qa@example.org", user_id=qa.user_id,
                                      reason="escalated", level=1)

    assert deliver(session, now, settings=settings) == 1

    coi = coi_of(case).text
    [message] = smtp[0].messages
    assert message["To"] == "qa@example.org"
    assert message["From"] == "coi-alarms@coi.example.org"
    assert message["Subject"] == f"[COI critical] Step overdue: {coi}"
    body = message.get_content()
    for expected in (coi, alarm.summary, f"{BASE_URL}/alarms/{alarm.id}", serial_of(unit).text,
                     f"{shipment.id} (outbound leg)", "step_deadline", "critical", "escalated to your group",
                     "2026-11-22T09:00:00+00:00"):
        assert expected in body
    raw = message.as_string()
    for patient_data in ("Zelda", "Quincey", "MRN-77431", "1970"):
        assert patient_data not in raw
    row = reload(session, notification)
    assert (row.state, row.sent_at, row.next_attempt_at, row.last_error) == ("sent", now, None, None)
    assert attempts_of(session, alarm, notification) == [(True, "250 2.0.0 Ok: queued as Q123")]


def test_webhook_call_is_signed_and_says_what_changed(app, session, world, clock, receiver, settings):
    now = clock.now()
    case = make_case(app, session, world, clock, name="Zelda Quincey-Marsh")
    alarm = make_alarm(session, now - timedelta(minutes=20), case_id=case.id, state="acknowledged")
    qa = world.actor("qa")
    session.add_all([AlarmEvent(alarm_id=alarm.id, at=alarm.raised_at, action="raised"),
                     AlarmEvent(alarm_id=alarm.id, at=now, action="acknowledged", actor_id=qa.user_id,
                                comment="Courier called, on its way")])
    session.commit()
    notification = make_notification(session, alarm, now, reason="acknowledged")

    assert deliver(session, now, settings=settings) == 1

    [call] = receiver.calls
    timestamp, signature = call.headers["X-COI-Timestamp"], call.headers["X-COI-Signature"]
    assert call.path == "/hooks/coi"
    assert call.headers["Content-Type"].startswith("application/json")
    assert call.headers["X-COI-Delivery"] == str(notification.id)
    assert timestamp == str(int(now.timestamp()))
    assert verify_signature(SECRET, timestamp, call.body, signature)
    independent = hmac.new(SECRET.encode(), timestamp.encode() + b"." + call.body, hashlib.sha256)
    assert signature == "sha256=" + independent.hexdigest()
    assert not verify_signature("another-secret-of-16+", timestamp, call.body, signature)
    assert not verify_signature(SECRET, timestamp, call.body.replace(b"critical", b"minor"), signature)
    assert not verify_signature(SECRET, str(int(now.timestamp()) + 1), call.body, signature)

    body = json.loads(call.body.decode("utf-8"))
    assert body["id"] == notification.id
    assert body["event"] == "alarm.acknowledged"
    assert body["sent_at"] == "2026-11-22T09:00:00+00:00"
    assert body["alarm"] == {
        "id": alarm.id, "kind": "deadline", "code": "step_overdue", "severity": "critical",
        "state": "acknowledged", "level": 0, "summary": alarm.summary,
        "raised_at": "2026-11-22T08:40:00+00:00", "case": coi_of(case).text, "shipment": None,
        "unit": None, "rule": RULE, "url": f"{BASE_URL}/alarms/{alarm.id}"}
    assert body["change"] == {"action": "acknowledged", "at": "2026-11-22T09:00:00+00:00", "level": 0,
                              "actor": "Qa Person", "comment": "Courier called, on its way", "outcome": None}
    assert b"Zelda" not in call.body
    assert reload(session, notification).state == "sent"


# ---------------------------------------------------------------- retries and giving up

def test_failed_call_is_retried_a_minute_later_and_not_before(session, clock, receiver, settings):
    now = clock.now()
    alarm = make_alarm(session, now)
    notification = make_notification(session, alarm, now)
    receiver.answers = [500]

    assert deliver(session, now, settings=settings) == 1
    row = reload(session, notification)
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, now + timedelta(minutes=1))
    assert row.last_error is not None and "500" in row.last_error

    assert deliver(session, now + timedelta(seconds=59), settings=settings) == 0
    assert len(receiver.calls) == 1
    assert deliver(session, now + timedelta(seconds=60), settings=settings) == 1

    row = reload(session, notification)
    assert (row.state, row.sent_at, row.last_error) == ("sent", now + timedelta(seconds=60), None)
    assert [ok for ok, _detail in attempts_of(session, alarm, notification)] == [False, True]
    # The same delivery id both times: the receiver can tell a retry from a new message.
    assert {c.headers["X-COI-Delivery"] for c in receiver.calls} == {str(notification.id)}


def test_unreachable_receiver_is_retried(session, clock, settings):
    now = clock.now()
    hook = Webhook("lims", f"http://127.0.0.1:{free_port()}/", SECRET)  # nobody listens there
    closed = dataclasses.replace(settings, webhooks=(hook,))
    notification = make_notification(session, make_alarm(session, now), now)

    assert deliver(session, now, settings=closed) == 1

    row = reload(session, notification)
    assert (row.state, row.next_attempt_at) == ("pending", now + timedelta(minutes=1))


def test_webhook_answering_404_is_given_up_at_once(session, clock, receiver, settings):
    now = clock.now()
    notification = make_notification(session, make_alarm(session, now), now)
    receiver.answers = [404]

    deliver(session, now, settings=settings)

    assert_given_up(session, notification, "404")
    assert deliver(session, now + timedelta(days=1), settings=settings) == 0
    assert len(receiver.calls) == 1


@pytest.mark.parametrize("phase", ["RCPT", "DATA"])
def test_mail_refused_with_550_is_given_up_at_once(session, clock, smtp, settings, phase):
    now = clock.now()
    notification = make_notification(session, make_alarm(session, now), now, "email", "gone@example.org")
    smtp[0].refuse[phase] = "550 5.1.1 No such user"

    deliver(session, now, settings=settings)

    assert_given_up(session, notification, "550 5.1.1 No such user")
    assert deliver(session, now + timedelta(days=1), settings=settings) == 0


def test_webhook_no_longer_configured_is_given_up(session, clock, receiver, settings):
    now = clock.now()
    notification = make_notification(session, make_alarm(session, now), now, target="retired-lims")

    deliver(session, now, settings=settings)

    assert_given_up(session, notification, "retired-lims")
    assert receiver.calls == []


def test_email_without_a_mail_server_is_given_up(session, clock, settings):
    now = clock.now()
    notification = make_notification(session, make_alarm(session, now), now, "email", "qa@example.org")

    deliver(session, now, settings=dataclasses.replace(settings, mail=None))

    assert_given_up(session, notification, "no mail server")


@pytest.mark.parametrize("phase", ["RCPT", "DATA"])
def test_temporary_refusals_are_given_up_after_max_attempts(session, clock, smtp, settings, phase):
    now = clock.now()
    alarm = make_alarm(session, now)
    notification = make_notification(session, alarm, now, "email", "qa@example.org")
    smtp[0].refuse[phase] = "451 4.3.0 Try again later"

    at = now
    for _ in range(settings.max_attempts - 1):
        assert deliver(session, at, settings=settings) == 1
        row = reload(session, notification)
        assert row.state == "pending" and row.next_attempt_at is not None
        at = row.next_attempt_at
    assert at == now + timedelta(minutes=1 + 2)  # the pauses grow: 1, then 2 minutes
    assert deliver(session, at, settings=settings) == 1

    row = reload(session, notification)
    assert (row.state, row.attempts, row.next_attempt_at) == ("failed", settings.max_attempts, None)
    assert row.last_error is not None and "451" in row.last_error
    assert [ok for ok, _ in attempts_of(session, alarm, notification)] == [False] * settings.max_attempts
    assert smtp[0].messages == []


# ---------------------------------------------------------------- the batch

class BrokenFor(Transport):
    """The real transport, except that calls to one URL hit a bug."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str:
        if url == self.url:
            raise RuntimeError("bug in the transport")
        return super().post(url, body, headers)


def test_a_notification_that_crashes_does_not_stop_the_others(session, clock, smtp, receiver, settings,
                                                               caplog):
    now = clock.now()
    hooks = settings.webhooks + (Webhook("broken", "http://127.0.0.1:9/never", SECRET),)
    alarm = make_alarm(session, now)
    broken = make_notification(session, alarm, now - timedelta(minutes=1), target="broken",
                               next_attempt_at=now - timedelta(minutes=1))  # first in the batch
    webhook = make_notification(session, alarm, now)
    mail = make_notification(session, alarm, now, "email", "qa@example.org")

    with caplog.at_level(logging.ERROR, logger="coi.services.delivery"):
        sent = deliver(session, now, settings=dataclasses.replace(settings, webhooks=hooks),
                       transport=BrokenFor("http://127.0.0.1:9/never"))

    assert sent == 3
    assert len(receiver.calls) == 1 and len(smtp[0].messages) == 1
    assert (reload(session, webhook).state, reload(session, mail).state) == ("sent", "sent")
    row = reload(session, broken)
    assert (row.state, row.next_attempt_at) == ("pending", now + timedelta(minutes=1))
    assert row.last_error is not None and "bug in the transport" in row.last_error
    assert "bug in the transport" in caplog.text


def test_batch_sends_the_longest_waiting_first(session, clock, receiver, settings):
    now = clock.now()
    alarm = make_alarm(session, now)
    late = make_notification(session, alarm, now, reason="raised")
    early = make_notification(session, alarm, now, reason="escalated", level=1,
                              next_attempt_at=now - timedelta(minutes=3))
    not_yet = make_notification(session, alarm, now, reason="resolved",
                                next_attempt_at=now + timedelta(seconds=1))

    assert deliver(session, now, settings=settings, batch=1) == 1

    assert [c.headers["X-COI-Delivery"] for c in receiver.calls] == [str(early.id)]
    assert deliver(session, now, settings=settings) == 1
    assert reload(session, late).state == "sent" and reload(session, not_yet).state == "pending"


# ---------------------------------------------------------------- two schedulers

def test_a_notification_claimed_by_another_scheduler_is_not_sent_twice(session, clock, receiver, settings):
    now = clock.now()
    notification = make_notification(session, make_alarm(session, now), now)
    seen = notification.next_attempt_at
    assert seen is not None

    assert claim(session, notification.id, seen=seen, now=now)  # the other scheduler got it first
    session.commit()
    assert not claim(session, notification.id, seen=seen, now=now)  # this one read it before that
    session.commit()
    assert reload(session, notification).attempts == 1

    assert deliver(session, now, settings=settings) == 0
    assert deliver(session, now + timedelta(minutes=4, seconds=59), settings=settings) == 0
    assert receiver.calls == []
    # The other scheduler died mid-send: once its claim lapses the message goes out after all.
    assert deliver(session, now + timedelta(minutes=5), settings=settings) == 1
    assert len(receiver.calls) == 1
    assert reload(session, notification).attempts == 2
