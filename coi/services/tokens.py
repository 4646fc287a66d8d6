"""API tokens for couriers' devices and other machines. The token is shown once; only its
SHA-256 is stored (a token has 256 bits of entropy, so a fast hash is enough)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from coi.core.access import DEFAULT_SCOPES, SCOPES, Actor, Operator
from coi.core.errors import AuthenticationFailed, Forbidden, InvalidInput, NotFound
from coi.models import ApiToken, User
from coi.services import audit
from coi.services.users import manages, require_manager_of

PREFIX = "coi_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    *, session: Session, now: datetime, actor: Actor | Operator | None, user_id: int,
    name: str, days: int, reason: str, scopes: Iterable[str] = DEFAULT_SCOPES,
) -> tuple[str, ApiToken]:
    """A new token for `user_id`, who must be the person asking (`actor`): a token acts as
    the person who created it, never as someone else. `actor` None is the system (tests,
    benchmarks); an Operator, the installation's operator on the command line, who issues
    one for anyone (audited as such). Returns the token text (shown once) and its record."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound("No such active user.")
    if isinstance(actor, Actor) and actor.user_id != user_id:
        raise Forbidden("A token acts as the person who creates it: that person issues their "
                        "own tokens, logged in as themselves.")
    if isinstance(actor, Actor) and actor.scopes is not None:
        raise Forbidden("A token cannot issue tokens: log in to issue one.")
    chosen = sorted(set(scopes))
    if not chosen or not set(chosen) <= set(SCOPES):
        raise InvalidInput(f"Choose what the token may do: one or more of {', '.join(SCOPES)}.",
                           [{"field": "scopes", "message": "Choose at least one scope."}])
    if not name.strip() or len(name) > 100:
        raise InvalidInput("Give the token a name (what device or system uses it).",
                           [{"field": "name", "message": "1-100 characters."}])
    if not 1 <= days <= 730:
        raise InvalidInput("A token lives 1 to 730 days.",
                           [{"field": "days", "message": "1 to 730."}])
    text = PREFIX + secrets.token_urlsafe(32)
    # The system and the operator have no account to name here: the audit entry names them.
    token = ApiToken(user_id=user_id, name=name.strip(), token_hash=token_hash(text),
                     prefix=text[:12], created_at=now,
                     created_by_id=actor.user_id if isinstance(actor, Actor) else user_id,
                     expires_at=now + timedelta(days=days), scopes=" ".join(chosen))
    session.add(token)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="api_token", entity_id=token.id,
                 action="create", reason=reason,
                 changes={"user": (None, user.username), "name": (None, token.name),
                          "scopes": (None, token.scopes),
                          "expires_at": (None, token.expires_at)})
    return text, token


def user_for_token(*, session: Session, now: datetime, text: str) -> tuple[User, ApiToken]:
    # Every API request asks this: the token and its account in one statement.
    found = session.exec(select(ApiToken, User).join(User, col(User.id) == ApiToken.user_id)
                         .where(ApiToken.token_hash == token_hash(text))).first()
    if found is None:
        raise AuthenticationFailed("The API token is not valid.")
    token, user = found
    if token.revoked_at is not None:
        raise AuthenticationFailed("The API token was revoked.")
    if token.expires_at <= now:
        raise AuthenticationFailed("The API token has expired.")
    if not user.active:
        raise AuthenticationFailed("The API token's account is deactivated.")
    return user, token


def revoke_token(
    *, session: Session, now: datetime, actor: Actor | Operator, token_id: int, reason: str,
) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("No such token.")
    if token.user_id != actor.user_id:  # one's own tokens: always; others': their administrator
        require_manager_of(session, actor, "token.manage", token.user_id,
                           doing="revoke this person's API tokens")
    if token.revoked_at is None:
        audit.record(session=session, now=now, actor=actor, entity="api_token",
                     entity_id=token.id, action="update", reason=reason,
                     changes={"revoked_at": (None, now)})
        token.revoked_at = now
        session.add(token)
        session.flush()
    return token


def list_tokens(*, session: Session, actor: Actor | Operator,
                own: bool = False) -> list[tuple[ApiToken, User]]:
    """The actor's own tokens (`own`), or those of the people the actor administers."""
    query = select(ApiToken, User).join(User, col(User.id) == ApiToken.user_id)
    if own:
        query = query.where(ApiToken.user_id == actor.user_id)
    rows = list(session.exec(query.order_by(col(ApiToken.id).desc())).all())
    if own:
        return rows
    managed = {user_id: manages(session, actor, "token.manage", user_id)
               for user_id in {token.user_id for token, _user in rows}}
    return [(token, user) for token, user in rows if managed[token.user_id]]
