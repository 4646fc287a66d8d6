"""Who is asking: a web session (username + password) or an API token. Then the one check
of every request against the view's declared permission (see coi.core.access)."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from coi import signed_out
from coi.core import access
from coi.core.errors import AuthenticationFailed, Forbidden
from coi.db import reading_first, request_session
from coi.models import User
from coi.services import sessions, tokens, users
from coi.web import now

log = logging.getLogger(__name__)

API_BLUEPRINT = "api"
# What a person whose password must change may still do.
PASSWORD_CHANGE_ENDPOINTS = frozenset({"account.password", "auth.logout"})
ENDED = "ended"  # the cookie's note of why the session ended, until the next login


def install(app: Flask) -> None:
    app.before_request(_load_actor)
    app.before_request(_enforce_permission)


def is_api_request() -> bool:
    return request.blueprint == API_BLUEPRINT or request.path.startswith("/api/")


def _load_actor() -> None:
    g.actor = None
    g.auth_error = None
    db = request_session()
    if is_api_request():
        header = request.headers.get("Authorization", "")
        if header:
            try:
                with reading_first(db):
                    g.actor = _token_actor(header)
            except AuthenticationFailed as error:
                g.auth_error = error  # raised by the permission check, unless the page is public
        return
    key = session.get("sid")
    if not isinstance(key, str):
        if "uid" in session:  # a cookie from before server-side sessions: log in again
            session.clear()
        ended = session.get(ENDED)
        if isinstance(ended, dict):  # ended by an earlier request: still say why
            g.session_ended = sessions.explain(str(ended.get("reason")), session_limits())
            g.ended_user = ended.get("user")
        return
    at, limits = now(), session_limits()
    with reading_first(db):
        row = sessions.lookup(session=db, key=key)
        ended = "unknown" if row is None else sessions.judge(row, at, limits)
        if row is not None and ended is None:
            g.actor = users.load_actor(session=db, user_id=row.user_id, via=f"session {row.id}")
            if g.actor is None:
                ended = "deactivated"
    if row is None or ended is not None:
        if row is not None and row.ended_at is None:  # found over, or deactivated: end it now
            sessions.end(session=db, now=at, row=row, reason=ended or "unknown")
            db.commit()
        g.actor = None
        mark_ended(ended or "unknown", row.user_id if row is not None else None)
        return
    if sessions.needs_touch(row, at):
        sessions.touch(session=db, now=at, row=row)
        db.commit()
    g.web_session = row
    user = db.get(User, row.user_id)
    g.must_change_password = user is not None and (user.must_change_password or (
        users.password_expired(user, at, current_app.config["PASSWORD_MAX_AGE_DAYS"])))


def mark_ended(reason: str, user_id: int | None) -> None:
    """This browser's session is over: the cookie forgets it (a fresh cookie, so nothing of
    it lingers) but remembers why and whose it was, so that every later request of this
    browser, the scan page's JSON calls included, can say why it must log in again, and a
    form posted now can be given back to the same person after the login (coi.kept)."""
    session.clear()
    session[ENDED] = {"reason": reason, "user": user_id}
    g.session_ended = sessions.explain(reason, session_limits())
    g.ended_user = user_id


def session_limits() -> sessions.Limits:
    config = current_app.config
    return sessions.Limits(idle=timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
                           lifetime=timedelta(hours=config["SESSION_LIFETIME_HOURS"]))


def _token_actor(header: str) -> access.Actor:
    scheme, _, text = header.partition(" ")
    if scheme.lower() != "bearer" or not text.strip():
        raise AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
    db = request_session()
    user, token = tokens.user_for_token(session=db, now=now(), text=text.strip())
    return users.actor_for(session=db, user=user, token_id=token.id,
                           via=f"token {token.id} ({token.name})",
                           scopes=frozenset(token.scopes.split()))


def _enforce_permission() -> Response | None:
    if request.endpoint is None or request.endpoint == "static":
        return None  # a 404 or 405 follows, or a static file
    view = current_app.view_functions.get(request.endpoint)
    name = access.declared_permission(view)
    if name is None:
        log.error("endpoint %s declares no permission; refused", request.endpoint)
        raise Forbidden("This page is not available.")
    if name == access.PUBLIC:
        _check_csrf()
        return None
    if g.auth_error is not None:
        raise g.auth_error
    if g.actor is None:
        if is_api_request():
            raise AuthenticationFailed("This API needs a token: 'Authorization: Bearer <token>'.")
        return signed_out.answer()
    # After the login check, not before it: a form or scan sent after its session ended is
    # answered "you were signed out (and why)", not "the form expired" (its CSRF token went
    # with the session). Nothing is carried out for a request without a person anyway.
    _check_csrf()
    if g.get("must_change_password") and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        return redirect(url_for("account.password", next=request.full_path.rstrip("?")))
    if not access.within_scopes(g.actor, name):
        raise Forbidden("This token's scopes do not allow this: issue a token with the scope "
                        "it needs.")
    if not access.allowed(g.actor, name):
        raise Forbidden("Your roles do not allow this.")
    return None


def _check_csrf() -> None:
    if not is_api_request() and current_app.config["WTF_CSRF_ENABLED"]:
        current_app.extensions["csrf"].protect(apply_exemptions=True)
