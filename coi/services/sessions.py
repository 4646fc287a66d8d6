"""Browser sessions kept on the server. The cookie carries only a random key; its SHA-256 is
the row's key here, so a session ends for good when its row says so: at logout, at a
password change, when an administrator ends it, after `idle` without a request, or `lifetime`
after login. A cookie replayed after any of these finds an ended row and gets the login page."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from coi.core.access import Actor, Operator
from coi.models import User, WebSession
from coi.services import audit

# A session's last request is written at most this often: one write a minute, not one per
# request (the idle timeout is then exact to within this).
TOUCH_EVERY = timedelta(seconds=60)

END_REASONS = {
    # "logout" in the cookie of another tab (or a session row ended at logout): this browser
    # logged out somewhere else while this page stayed open.
    "logout": "signed out because you signed out elsewhere",
    "idle": "signed out after {idle} without activity",
    "lifetime": "signed out after {lifetime}, the longest a session lasts",
    "password_changed": "signed out because the password was changed",
    "ended_by_admin": "signed out by an administrator",
    "deactivated": "signed out: the account was deactivated",
}


@dataclass(frozen=True)
class Limits:
    idle: timedelta
    lifetime: timedelta


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start(
    *, session: Session, now: datetime, user: User, remote_addr: str | None,
    user_agent: str | None,
) -> tuple[str, WebSession]:
    """A new session for `user`; returns the key for the cookie (kept nowhere else)."""
    key = secrets.token_urlsafe(32)
    row = WebSession(key_hash=key_hash(key), user_id=user.id, created_at=now,  # type: ignore[arg-type]
                     last_seen_at=now, remote_addr=(remote_addr or "")[:64] or None,
                     user_agent=(user_agent or "")[:200] or None)
    session.add(row)
    session.flush()
    return key, row


def lookup(*, session: Session, key: str) -> WebSession | None:
    """The session row of a cookie's key (live or ended), or None for a key never issued."""
    return session.exec(select(WebSession).where(WebSession.key_hash == key_hash(key))).first()


def judge(row: WebSession, now: datetime, limits: Limits) -> str | None:
    """Why the session is over at `now` (its end reason), or None while it lives."""
    if row.ended_at is not None:
        return row.end_reason or "logout"
    if now - row.created_at >= limits.lifetime:
        return "lifetime"
    if now - row.last_seen_at >= limits.idle:
        return "idle"
    return None


def needs_touch(row: WebSession, now: datetime) -> bool:
    return row.ended_at is None and now - row.last_seen_at >= TOUCH_EVERY


def touch(*, session: Session, now: datetime, row: WebSession) -> None:
    row.last_seen_at = now
    session.add(row)
    session.flush()


def end(*, session: Session, now: datetime, row: WebSession, reason: str) -> None:
    if row.ended_at is None:
        _end(session, row, now, reason)


def end_all(
    *, session: Session, now: datetime, user_id: int, reason: str,
    actor: Actor | Operator | None = None, audit_reason: str | None = None,
) -> int:
    """End every live session of `user_id`; with `audit_reason`, the act is audited."""
    ended = session.execute(
        update(WebSession).where(col(WebSession.user_id) == user_id, col(WebSession.ended_at).is_(None))
        .values(ended_at=now, end_reason=reason)).rowcount  # type: ignore[attr-defined]
    if audit_reason is not None:
        audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user_id,
                     action="update", reason=audit_reason,
                     changes={"sessions_ended": (None, ended)})
    return int(ended or 0)


def live(*, session: Session, now: datetime, limits: Limits,
         user_id: int | None = None) -> list[tuple[WebSession, User]]:
    """The sessions living at `now` (what `judge` lets through: not ended, not idle, not past
    their lifetime), of everyone or of `user_id`, oldest first, each with its person."""
    query = (select(WebSession, User).join(User, col(User.id) == WebSession.user_id)
             .where(col(WebSession.ended_at).is_(None),
                    col(WebSession.created_at) > now - limits.lifetime,
                    col(WebSession.last_seen_at) > now - limits.idle))
    if user_id is not None:
        query = query.where(WebSession.user_id == user_id)
    return list(session.exec(query.order_by(col(WebSession.id))).all())


def explain(reason: str, limits: Limits) -> str:
    text = END_REASONS.get(reason, "signed out")
    return text.format(idle=_words(limits.idle), lifetime=_words(limits.lifetime))


def _words(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _end(session: Session, row: WebSession, now: datetime, reason: str) -> None:
    row.ended_at, row.end_reason = now, reason
    session.add(row)
    session.flush()
