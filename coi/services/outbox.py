"""The development outbox: on a machine with no mail server, alarm e-mails are kept in a table
for administrators to read (/admin/outbox) instead of sent (COI_MAIL_OUTBOX, on by default in
development mode when COI_MAIL_SERVER is empty). Webhooks are called as always."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from coi.models import OutboxMessage

KEPT_DETAIL = "kept in the development outbox (no mail server configured)"
SHOWN = 100  # the newest messages a page shows; the rest stay in the table


@dataclass(frozen=True)
class OutboxPage:
    messages: list[OutboxMessage]  # newest first, at most SHOWN
    total: int


def keep(*, session: Session, now: datetime, notification_id: int, alarm_id: int, recipient: str,
         user_id: int | None, subject: str, body: str) -> str:
    """Keep an e-mail that would have been sent `now`; returns what the delivery log says of it.
    The caller commits, with the notification's outcome."""
    session.add(OutboxMessage(notification_id=notification_id, alarm_id=alarm_id, recipient=recipient,
                              user_id=user_id, subject=subject, body=body, at=now))
    return KEPT_DETAIL


def newest(*, session: Session, limit: int = SHOWN) -> OutboxPage:
    """The newest kept messages, and how many there are in all."""
    messages = session.exec(select(OutboxMessage)
                            .order_by(col(OutboxMessage.at).desc(), col(OutboxMessage.id).desc())
                            .limit(limit)).all()
    total = session.exec(select(func.count()).select_from(OutboxMessage)).one()
    return OutboxPage(messages=list(messages), total=int(total))
