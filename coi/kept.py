"""What was typed into a form whose session had ended, given back after the next login.

A form posted after its session ended (idle, lifetime, signed out elsewhere) is not carried
out: the person logs in again and sees the form filled in as they left it, with a note to
check it and submit again. Nothing is saved until they do.

Where the entries wait: in the browser's own session cookie, encrypted with the PHI key
(Fernet, as patient data at rest), tied to the user whose session ended, for at most
`KEEP_FOR`. The enrolment form carries a patient's name, birth date and MRN, so nothing of it
is written to the database, a log or a file, and the cookie (signed, HttpOnly) holds only
ciphertext the browser cannot read. Passwords and the CSRF token are never kept. The entries
survive one login of the same person (`carry_over`) and are taken once (`take`); another
person logging in on the same browser drops them.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from flask import session

from coi.core.phi import PhiKeyError
from coi.web import cipher, now

log = logging.getLogger(__name__)

COOKIE_KEY = "kept"
KEEP_FOR = timedelta(minutes=30)
MAX_BYTES = 2500  # a cookie holds about 4 KB; entries that do not fit are not kept
NOTE = "Your entries were kept; check them and submit again."


def keep(*, form: str, user_id: int, fields: dict[str, str]) -> bool:
    """Keep `fields` of `form` for `user_id` until their next login; False when they do not
    fit (then nothing is kept)."""
    entries = {name: value for name, value in fields.items()
               if "password" not in name and name != "csrf_token" and value}
    plain = json.dumps({"form": form, "user": user_id, "at": now().isoformat(),
                        "fields": entries}, separators=(",", ":"))
    if len(plain.encode()) > MAX_BYTES:
        return False
    session[COOKIE_KEY] = cipher().encrypt_text(plain)
    return True


def carry_over(sealed: Any, *, user_id: int) -> None:
    """At login, after the session is started afresh: the entries kept for this person come
    along; anyone else's are dropped."""
    opened = _open(sealed)
    if opened is not None and opened["user"] == user_id:
        session[COOKIE_KEY] = sealed


def take(*, form: str, user_id: int) -> dict[str, str] | None:
    """The entries kept for `form` and this person, once; None when there are none."""
    if COOKIE_KEY not in session:
        return None
    opened = _open(session.get(COOKIE_KEY))
    if opened is None:
        session.pop(COOKIE_KEY, None)  # expired or unreadable: gone
        return None
    if opened["form"] != form or opened["user"] != user_id:
        return None
    session.pop(COOKIE_KEY, None)
    return {str(name): str(value) for name, value in opened["fields"].items()}


def _open(sealed: Any) -> dict[str, Any] | None:
    if not isinstance(sealed, str):
        return None
    try:
        opened = json.loads(cipher().decrypt_text(sealed))
    except (PhiKeyError, ValueError):
        log.info("kept form entries could not be read; dropped")
        return None
    at = datetime.fromisoformat(opened["at"])
    return opened if now() - at < KEEP_FOR else None
