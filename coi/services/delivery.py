"""Sending notifications: the scheduler's delivery job, run every minute or so.

The alarm service writes `notification` rows (an outbox) in the transaction that changes the
alarm; this job sends the ones that are due, by e-mail or as a signed webhook call, and logs
every attempt in `notification_attempt`. Delivery is at least once: a process that dies after
sending but before recording sends again after its claim lapses, so webhook receivers drop
duplicates by `X-COI-Delivery`. On a development machine with no mail server (COI_MAIL_OUTBOX)
an e-mail is not sent but kept in the outbox table (coi.services.outbox), in the transaction
that records it as sent.

Unlike the other services this job owns its transactions: it commits its claim before sending
(so another scheduler does not send the same message) and each outcome at once (a message
that went out must be recorded as sent even if the next one crashes the process).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import partial
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from coi import metrics
from coi.core import alerting
from coi.core.alerting import Alerting, Mail
from coi.models import (
    Alarm,
    AlarmEvent,
    Case,
    Notification,
    NotificationAttempt,
    Shipment,
    Unit,
    User,
    coi_of,
    serial_of,
)
from coi.services import outbox

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # a claim lapses after this, so a dead sender's messages go out later
WEBHOOK_TIMEOUT_S = 10.0
ANSWER_CHARS = 500  # of a server's answer kept in the delivery log
WHY_TOLD = {
    "raised": "the alarm was raised and your role is in the group told first",
    "escalated": "nobody acknowledged the alarm in time, so it was escalated to your group",
    "acknowledged": "an alarm you were told about has been acknowledged",
    "resolved": "an alarm you were told about has been resolved",
}


class DeliveryFailed(Exception):
    """A message did not go through. `permanent`: trying again cannot help (the address or
    the URL is refused, or the channel is not configured), so it is given up at once."""

    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.permanent = permanent


class Transport:
    """How messages leave: SMTP and HTTP. Each method returns what the server answered and
    raises DeliveryFailed when it refused the message or could not be reached; anything else
    it raises is a bug, logged and retried like a temporary failure."""

    def send_mail(self, mail: Mail, message: EmailMessage) -> str:
        try:
            with _SMTP(mail.host, mail.port, timeout=mail.timeout_s) as smtp:
                if mail.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if mail.username:
                    smtp.login(mail.username, mail.password or "")
                smtp.send_message(message)
                return smtp.answer
        except smtplib.SMTPRecipientsRefused as error:
            answers = error.recipients.values()
            detail = "; ".join(f"{code} {_text(text)}" for code, text in answers)
            raise DeliveryFailed(f"recipient refused: {detail}",
                                 permanent=all(code >= 500 for code, _ in answers)) from None
        except smtplib.SMTPResponseException as error:
            # Only a refusal of the message itself is final. A 5xx to our sender address or
            # login is our configuration: once it is fixed, the retries get through.
            permanent = isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500
            raise DeliveryFailed(f"{error.smtp_code} {_text(error.smtp_error)}",
                                 permanent=permanent) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"mail server {mail.host}:{mail.port}: {error}", permanent=False) from None

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str:
        if not url.startswith(("http://", "https://")):
            raise DeliveryFailed(f"{url!r} is not an http(s) URL", permanent=True)
        # S310 warns of file:// and custom schemes; only http(s) gets here.
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
        opener = urllib.request.build_opener(_NoRedirect())
        try:
            with opener.open(request, timeout=WEBHOOK_TIMEOUT_S) as response:
                return f"{response.status} {_text(response.read(ANSWER_CHARS))}"
        except urllib.error.HTTPError as error:
            permanent = 400 <= error.code < 500 and error.code not in (408, 429)
            raise DeliveryFailed(f"{error.code} {error.reason}: {_text(error.read(ANSWER_CHARS))}",
                                 permanent=permanent) from None
        except (urllib.error.URLError, OSError) as error:  # refused, unreachable, timed out
            raise DeliveryFailed(f"{url}: {getattr(error, 'reason', error)}", permanent=False) from None


class _SMTP(smtplib.SMTP):
    """Keeps the server's answer to the message (often its queue id) for the delivery log."""

    answer = ""

    def data(self, msg: Any) -> tuple[int, bytes]:
        code, text = super().data(msg)
        self.answer = f"{code} {_text(text)}"
        return code, text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib follows a 301/302/303 answer to a POST with a GET without the body: the call would
    # count as delivered while the receiver never saw the alarm. A redirect is a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def deliver(session: Session, now: datetime, *, settings: Alerting = alerting.DEFAULT,
            transport: Transport | None = None, batch: int = 100) -> int:
    """Send the notifications that are due; returns how many were attempted.

    Commits (see the module docstring). A notification that fails in any way is logged and
    retried or given up; it never stops the others."""
    transport = transport or Transport()
    due = session.exec(
        select(Notification.id, Notification.next_attempt_at)
        .where(col(Notification.state) == "pending", col(Notification.next_attempt_at) <= now)
        .order_by(col(Notification.next_attempt_at), col(Notification.id))
        .limit(batch)).all()
    attempted = 0
    for notification_id, seen in due:
        try:
            attempted += _deliver_one(session, cast(int, notification_id), cast(datetime, seen), now,
                                      settings, transport)
        except Exception:
            log.exception("notification %s: delivery could not be recorded", notification_id)
            session.rollback()
    return attempted


def claim(session: Session, notification_id: int, *, seen: datetime, now: datetime) -> bool:
    """Take a due notification for sending: count the attempt and push its due time out by the
    lease. A conditional update: False when another scheduler changed it since it was `seen`.
    The caller commits."""
    result = session.execute(
        update(Notification)
        .where(col(Notification.id) == notification_id, col(Notification.state) == "pending",
               col(Notification.next_attempt_at) == seen)
        .values(attempts=col(Notification.attempts) + 1, next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount == 1


def _deliver_one(session: Session, notification_id: int, seen: datetime, now: datetime,
                 settings: Alerting, transport: Transport) -> bool:
    if not claim(session, notification_id, seen=seen, now=now):
        return False
    session.commit()
    started = time.monotonic()
    try:
        notification = session.get_one(Notification, notification_id, populate_existing=True)
        send = _prepare(session, notification, now, settings, transport)
        session.commit()  # hold no transaction open while waiting on the network
        detail, ok, permanent = send(), True, False
    except DeliveryFailed as failure:
        detail, ok, permanent = failure.detail, False, failure.permanent
    except Exception as error:  # a bug or a bad row: count it as an attempt, retry, go on
        log.exception("notification %s: sending failed unexpectedly", notification_id)
        session.rollback()
        detail, ok, permanent = f"unexpected error: {error!r}", False, False
    duration_ms = round((time.monotonic() - started) * 1000)
    _record(session, notification_id, now=now, ok=ok, detail=detail, permanent=permanent,
            duration_ms=duration_ms, settings=settings)
    session.commit()
    if not ok:
        log.warning("notification %s not delivered: %s", notification_id, detail)
        notification = session.get_one(Notification, notification_id)
        # permanent: no attempt follows (refused for good, or out of attempts)
        metrics.count_notification_failure(notification.channel, notification.state == "failed")
    return True


def _record(session: Session, notification_id: int, *, now: datetime, ok: bool, detail: str,
            permanent: bool, duration_ms: int, settings: Alerting) -> None:
    notification = session.get_one(Notification, notification_id, populate_existing=True)
    session.add(NotificationAttempt(notification_id=notification_id, at=now, ok=ok, detail=detail,
                                    duration_ms=duration_ms))
    if ok:
        notification.state, notification.sent_at, notification.last_error = "sent", now, None
        notification.next_attempt_at = None
    elif permanent or notification.attempts >= settings.max_attempts:
        notification.state, notification.last_error, notification.next_attempt_at = "failed", detail, None
    else:
        notification.last_error = detail
        notification.next_attempt_at = now + settings.retry_after(notification.attempts)
    session.add(notification)


def _prepare(session: Session, notification: Notification, now: datetime, settings: Alerting,
             transport: Transport) -> Callable[[], str]:
    """The send, ready to call: everything is read from the database before it goes out."""
    alarm = session.get_one(Alarm, notification.alarm_id)
    about = _about(session, alarm, settings)
    if notification.channel == "email":
        subject, text = _email_text(notification, alarm, about)
        if settings.outbox:  # a development machine: kept where admins read it, in this transaction
            return partial(outbox.keep, session=session, now=now,
                           notification_id=cast(int, notification.id), alarm_id=cast(int, alarm.id),
                           recipient=notification.target, user_id=notification.user_id,
                           subject=subject, body=text)
        if settings.mail is None:
            raise DeliveryFailed("no mail server is configured (COI_MAIL_SERVER)", permanent=True)
        return partial(transport.send_mail, settings.mail,
                       _email(settings.mail, notification.target, subject, text))
    if notification.channel == "webhook":
        hook = next((h for h in settings.webhooks if h.name == notification.target), None)
        if hook is None:
            raise DeliveryFailed(f"no webhook named {notification.target!r} is configured", permanent=True)
        body = json.dumps(_webhook_body(session, notification, alarm, about, now),
                          ensure_ascii=False).encode("utf-8")
        timestamp = str(int(now.timestamp()))
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "coi-platform",
                   "X-COI-Delivery": str(notification.id), "X-COI-Timestamp": timestamp,
                   "X-COI-Signature": _signature(hook.secret, timestamp, body)}
        return partial(transport.post, hook.url, body, headers)
    raise DeliveryFailed(f"unknown channel {notification.channel!r}", permanent=True)


@dataclass(frozen=True)
class _About:
    """What an alarm is about, by identifiers only: never a patient's name or other data."""

    case: str | None  # the COI identifier
    unit: str | None  # the unit serial
    shipment: Shipment | None
    rule: Any  # the rule that fired, as stored with the alarm
    url: str  # the alarm's page

    @property
    def rule_name(self) -> str | None:
        return self.rule.get("rule") if isinstance(self.rule, dict) else None

    def name(self, alarm: Alarm) -> str:
        if self.case:
            return self.case
        if self.unit:
            return f"unit {self.unit}"
        return f"shipment {self.shipment.id}" if self.shipment else f"alarm {alarm.id}"


def _about(session: Session, alarm: Alarm, settings: Alerting) -> _About:
    case = session.get(Case, alarm.case_id) if alarm.case_id else None
    unit = session.get(Unit, alarm.unit_id) if alarm.unit_id else None
    return _About(case=coi_of(case).text if case else None, unit=serial_of(unit).text if unit else None,
                  shipment=session.get(Shipment, alarm.shipment_id) if alarm.shipment_id else None,
                  rule=json.loads(alarm.rule), url=f"{settings.base_url.rstrip('/')}/alarms/{alarm.id}")


def _email_text(notification: Notification, alarm: Alarm, about: _About) -> tuple[str, str]:
    """The subject and the text of an alarm e-mail: identifiers and a link, never patient data."""
    lines = [alarm.summary, "", f"Case (COI):       {about.case or '-'}"]
    if about.unit:
        lines.append(f"Unit:             {about.unit}")
    if about.shipment:
        lines.append(f"Shipment:         {about.shipment.id} ({about.shipment.leg} leg)")
    why = WHY_TOLD.get(notification.reason, notification.reason)
    lines += [f"Rule:             {about.rule_name or '-'}",
              f"Severity:         {alarm.severity}",
              f"Escalation level: {notification.level}",
              f"Raised:           {alarm.raised_at.astimezone(UTC).isoformat()}",
              "", f"You are told because {why}.", "",
              f"Open the alarm: {about.url}", "",
              "Patient details are never sent by e-mail: open the alarm to see the case."]
    title = alarm.code.replace("_", " ").capitalize()
    return f"[COI {alarm.severity}] {title}: {about.name(alarm)}", "\n".join(lines) + "\n"


def _email(mail: Mail, recipient: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(body)
    return message


def _webhook_body(session: Session, notification: Notification, alarm: Alarm, about: _About,
                  now: datetime) -> dict[str, Any]:
    events = session.exec(select(AlarmEvent)
                          .where(col(AlarmEvent.alarm_id) == alarm.id,
                                 col(AlarmEvent.action) == notification.reason)
                          .order_by(col(AlarmEvent.at).desc(), col(AlarmEvent.id).desc())).all()
    # An alarm escalates more than once: the change this notification is about is at its level.
    event = next((e for e in events if e.level == notification.level), events[0] if events else None)
    change = None
    if event is not None:
        actor = session.get(User, event.actor_id) if event.actor_id else None
        change = {"action": event.action, "at": event.at.astimezone(UTC).isoformat(), "level": event.level,
                  "actor": actor.full_name if actor else None, "comment": event.comment,
                  "outcome": event.outcome}
    return {"id": notification.id, "event": f"alarm.{notification.reason}",
            "sent_at": now.astimezone(UTC).isoformat(),
            "alarm": {"id": alarm.id, "kind": alarm.kind, "code": alarm.code, "severity": alarm.severity,
                      "state": alarm.state, "level": alarm.level, "summary": alarm.summary,
                      "raised_at": alarm.raised_at.astimezone(UTC).isoformat(), "case": about.case,
                      "shipment": about.shipment.id if about.shipment else None, "unit": about.unit,
                      "rule": about.rule, "url": about.url},
            "change": change}


def _signature(secret: str, timestamp: str, body: bytes) -> str:
    # The timestamp is signed with the body so a receiver can refuse an old call replayed.
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """True when `header` (X-COI-Signature) is our signature of `body` sent at `timestamp`
    (X-COI-Timestamp) with `secret`. For receivers; compared in constant time."""
    expected = _signature(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, header.encode("utf-8"))


def delivery_log(session: Session, alarm_id: int) -> list[tuple[Notification, list[NotificationAttempt]]]:
    """The alarm's notifications, oldest first, each with its attempts in order: who was told,
    how, and what each mail server or receiving system answered."""
    notifications = session.exec(select(Notification).where(col(Notification.alarm_id) == alarm_id)
                                 .order_by(col(Notification.created_at), col(Notification.id))).all()
    attempts: dict[int, list[NotificationAttempt]] = {n.id: [] for n in notifications if n.id is not None}
    for attempt in session.exec(select(NotificationAttempt)
                                .where(col(NotificationAttempt.notification_id).in_(list(attempts)))
                                .order_by(col(NotificationAttempt.at), col(NotificationAttempt.id))):
        attempts[attempt.notification_id].append(attempt)
    return [(n, attempts[cast(int, n.id)]) for n in notifications]


def _text(value: bytes | str) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else value)[:ANSWER_CHARS]
