from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime

ALARM_STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("critical", "major", "minor")
# What QA records when resolving an alarm: what became of the product.
OUTCOMES = {
    "accepted": "Product accepted: no impact on quality",
    "accepted_with_deviation": "Product accepted under a deviation",
    "quarantined": "Product quarantined pending investigation",
    "destroyed": "Product destroyed",
    "no_product_impact": "No product involved (e.g. a scan mistake caught in time)",
}
# The outcomes that keep a hold on the material (coi.services.holds) until a second signed QA
# decision, and the outcomes that decision may have.
HOLDING_OUTCOMES = ("quarantined",)
SECOND_DECISIONS = ("accepted", "accepted_with_deviation", "destroyed")
DEVIATION_MAX = 60


class Alarm(SQLModel, table=True):
    """A breach that people must follow up: raised where it is seen (a scan, a logger file, a
    sweep). `rule` is a copy of the rule that fired, as it was then, so a later change of
    the route or profile does not rewrite why the alarm was raised. `state`, `level` and the
    times are a projection of its `alarm_event` rows, changed only by conditional updates."""

    __tablename__ = "alarm"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # custody, temperature, deadline
    code: str = Field(max_length=40)  # e.g. late, other_case, excursion_single, step_overdue
    severity: str = Field(max_length=10)
    state: str = Field(default="open", max_length=20, index=True)
    raised_at: datetime = Field(sa_type=UTCDateTime, index=True)
    case_id: int | None = Field(default=None, foreign_key="therapy_case.id", index=True)
    site_id: int | None = Field(default=None, foreign_key="site.id", index=True)
    event_id: int | None = Field(default=None, foreign_key="custody_event.id")
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    summary: str = Field(sa_type=Text)
    rule: str = Field(sa_type=Text)  # canonical JSON
    shipment_id: int | None = Field(default=None, foreign_key="shipment.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    # What the alarm is about, for breaches found again each time data is evaluated (a logger
    # excursion, a deadline): unique, so each is raised once however often it is seen.
    fingerprint: str | None = Field(default=None, max_length=200, unique=True, index=True)
    # Escalation: the group told so far (0: the first), and when the next is told if nobody
    # has acknowledged by then (None: acknowledged, or no group left).
    level: int = Field(default=0)
    escalate_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str | None = Field(default=None, max_length=40)
    # Telling people: set when the alarm changes; the scheduler's notify job then writes the
    # notifications for every event after `notified_event_id` and clears it.
    notify_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    notified_event_id: int | None = Field(default=None)


class AlarmEvent(SQLModel, table=True):
    """One change of an alarm: raised, escalated, acknowledged, resolved. Who, when, their
    comment, and for a resolution the outcome and the e-signature. Append-only."""

    __tablename__ = "alarm_event"
    __table_args__ = (UniqueConstraint("alarm_id", "action", "level"),)

    id: int | None = Field(default=None, primary_key=True)
    alarm_id: int = Field(foreign_key="alarm.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    action: str = Field(max_length=20)  # raised, escalated, acknowledged, resolved, decided
    level: int = Field(default=0)  # the escalation level after this change
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    comment: str = Field(default="", sa_type=Text)
    outcome: str | None = Field(default=None, max_length=40)
    signature_id: int | None = Field(default=None, foreign_key="signature.id")


class AlarmDeviation(SQLModel, table=True):
    """The deviation a product was accepted under: the reference of the deviation report,
    given with the signed resolution or decision (`event_id`) and part of what was signed."""

    __tablename__ = "alarm_deviation"

    id: int | None = Field(default=None, primary_key=True)
    alarm_id: int = Field(foreign_key="alarm.id", index=True)
    event_id: int = Field(foreign_key="alarm_event.id", unique=True)
    reference: str = Field(max_length=DEVIATION_MAX)


class Notification(SQLModel, table=True):
    """One message to send about an alarm: an e-mail to one person or a signed webhook call.
    Written with the alarm change that causes it (an outbox), sent by the scheduler process,
    retried with growing pauses; `next_attempt_at` is None once it is sent or given up."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("alarm_id", "channel", "target", "reason", "level"),
        Index("ix_notification_due", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    alarm_id: int = Field(foreign_key="alarm.id", index=True)
    channel: str = Field(max_length=10)  # email, webhook
    target: str = Field(max_length=300)  # an e-mail address, or a webhook's name
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    level: int = Field(default=0)
    reason: str = Field(default="raised", max_length=20)  # raised, escalated, acknowledged, resolved
    state: str = Field(default="pending", max_length=10)  # pending, sent, failed
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)


class NotificationAttempt(SQLModel, table=True):
    """The delivery log: every attempt to send a notification, with what the mail server
    or the receiving system answered. Append-only."""

    __tablename__ = "notification_attempt"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    ok: bool
    detail: str = Field(sa_type=Text)
    duration_ms: int
