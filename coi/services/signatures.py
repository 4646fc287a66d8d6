"""Electronic signatures (21 CFR Part 11): the signer re-enters their password, says what the
signature means, and the signature is bound to a SHA-256 of exactly what was signed."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from coi.core.access import Actor
from coi.core.canonical import canonical_json
from coi.core.errors import AuthenticationFailed, InvalidInput
from coi.models import MEANINGS, Signature, User
from coi.services import users


def content_hash(content: Any) -> str:
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def sign(
    *,
    session: Session,
    now: datetime,
    signer: Actor,
    password: str,
    meaning: str,
    subject_type: str,
    subject_id: object,
    content: Any,
    remote_addr: str | None = None,
) -> Signature:
    """Sign `content` as `signer`. Raises AuthenticationFailed if the password is wrong, and
    Throttled while the account must wait after repeated failures: the password is checked
    through the login throttle and recorded as a signing attempt (coi.services.users)."""
    if meaning not in MEANINGS:
        raise InvalidInput(f"'{meaning}' is not a signature meaning; use one of: "
                           + ", ".join(MEANINGS))
    try:
        user = users.authenticate(session=session, now=now, username=signer.username,
                                  password=password, remote_addr=remote_addr, kind="signing")
    except AuthenticationFailed:
        raise AuthenticationFailed(
            "The password does not match: the signature was not applied and nothing was saved."
        ) from None
    if user.id != signer.user_id:
        raise AuthenticationFailed("The signer's account has changed: nothing was signed.")
    return sign_checked(session=session, now=now, signer=user, meaning=meaning,
                        subject_type=subject_type, subject_id=subject_id, content=content)


def sign_checked(
    *, session: Session, now: datetime, signer: User, meaning: str, subject_type: str,
    subject_id: object, content: Any,
) -> Signature:
    """Sign as `signer`, whose password the caller has just checked (through the login
    throttle, for the scan page's signature fields)."""
    if meaning not in MEANINGS:
        raise InvalidInput(f"'{meaning}' is not a signature meaning; use one of: "
                           + ", ".join(MEANINGS))
    user = signer
    signature = Signature(
        signer_id=user.id,  # type: ignore[arg-type]
        # 21 CFR 11.50: the printed name, with the username, since two people may share a name
        signer_name=f"{user.full_name[:130]} ({user.username})",
        meaning=meaning,
        signed_at=now,
        subject_type=subject_type,
        subject_id=str(subject_id),
        content_sha256=content_hash(content),
    )
    session.add(signature)
    session.flush()
    return signature


def matches(signature: Signature, content: Any) -> bool:
    """Is `content` exactly what was signed?"""
    return signature.content_sha256 == content_hash(content)


def for_subject(*, session: Session, subject_type: str, subject_id: object) -> list[Signature]:
    return list(
        session.exec(
            select(Signature)
            .where(Signature.subject_type == subject_type, Signature.subject_id == str(subject_id))
            .order_by(col(Signature.id))
        )
    )
