"""The development outbox: alarm e-mails kept instead of sent, for a machine with no mail
server (COI_MAIL_OUTBOX)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class OutboxMessage(SQLModel, table=True):
    """An e-mail that would have been sent: to whom, what it said, when. Written by the
    delivery job in the transaction that records its notification as sent, so a kept message
    and its "sent" state never part. A copy of what was not sent, not evidence: the delivery
    log (`notification_attempt`) is the record."""

    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    alarm_id: int = Field(foreign_key="alarm.id", index=True)
    recipient: str = Field(max_length=300)  # the e-mail address
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    subject: str = Field(max_length=300)
    body: str = Field(sa_type=Text)
    at: datetime = Field(sa_type=UTCDateTime, index=True)  # when it would have been sent
