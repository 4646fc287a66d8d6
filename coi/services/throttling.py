"""What administrators see of the password throttle (coi.throttle) and what they may do to
it: clear the failures counted against an account, so its owner can log in at once."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from coi.core.access import Actor
from coi.core.errors import NotFound
from coi.models import RoleGrant, User
from coi.services import audit, users
from coi.throttle import Penalty, Throttle


def delays(*, guard: Throttle, now: datetime, people: list[User]) -> dict[str, Penalty]:
    """The accounts among `people` with failures counted against them, by username."""
    return guard.accounts([person.username for person in people], now=now)


def unlock(*, session: Session, now: datetime, actor: Actor, guard: Throttle, user_id: int,
           reason: str) -> User:
    """Clear the failures counted against an account and the delay they impose; audited.
    The counters of the addresses that failed are left: they are not the account's."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    users.require_manager_of(session, actor, "user.manage", user_id, doing="unlock this account")
    before = guard.accounts([user.username], now=now).get(user.username, Penalty())
    sites = session.exec(select(RoleGrant.site_id).where(RoleGrant.user_id == user_id)).all()
    audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user.id,
                 action="unlock", reason=reason, sites=sites,
                 changes={"failed_attempts": (before.failures, 0),
                          "wait_seconds": (before.wait(now.timestamp()), 0)})
    # After the audit row (which refuses a missing reason): the counters are not part of the
    # transaction, so they are cleared only once the change is on record.
    guard.clear_account(user.username)
    return user
