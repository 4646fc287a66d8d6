"""The record of password attempts (table login_attempt): every login and every password
given to sign, kept even when the transaction that carried it is rolled back.

A failed signature usually travels inside a larger change that is then refused (a scan sent
again with its idempotency key, an alarm resolution whose password was wrong) and rolled
back with the attempt in it. The attempt is written with the caller's transaction, as any
row, and remembered on the session; if that transaction ends without a commit, the attempts
it carried are written again in a transaction of their own, on the same database, once it
has ended (on SQLite, a second writer could not begin while the first holds the lock)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, event
from sqlmodel import Session

from coi.db import for_writing
from coi.models import LoginAttempt

KINDS = ("login", "signing")
_UNSAVED = "coi.unsaved_attempts"

log = logging.getLogger(__name__)


def record(*, session: Session, now: datetime, username: str, succeeded: bool,
           remote_addr: str | None, kind: str) -> None:
    """Record one attempt in `session`'s transaction; written anyway if it is not committed."""
    assert kind in KINDS
    values: dict[str, Any] = {"username": username[:64], "at": now, "succeeded": succeeded,
                              "remote_addr": remote_addr[:64] if remote_addr else None,
                              "kind": kind}
    session.add(LoginAttempt(**values))
    session.flush()
    unsaved: list[dict[str, Any]] | None = session.info.get(_UNSAVED)
    if unsaved is None:
        unsaved = session.info[_UNSAVED] = []
        event.listen(session, "after_commit", _committed)
        event.listen(session, "after_transaction_end", _ended)
    unsaved.append(values)


def _committed(session: Session) -> None:
    session.info[_UNSAVED] = []


def _ended(session: Session, transaction: Any) -> None:
    """The outermost transaction ended: what it carried and did not commit is written now."""
    if transaction.parent is not None or not session.info.get(_UNSAVED):
        return
    unsaved, session.info[_UNSAVED] = session.info[_UNSAVED], []
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    try:
        with Session(for_writing(engine)) as own:
            own.add_all([LoginAttempt(**values) for values in unsaved])
            own.commit()
    except Exception:  # noqa: BLE001 - the caller's own error, if any, must not be hidden
        log.exception("%d password attempt(s) could not be recorded", len(unsaved))
