"""Who is asking: a web session (username + password) or an API token. Then the one check
of every request against the view's declared permission (see coi.core.access)."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

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
        return
    at, limits = now(), session_limits()
    with reading_first(db):
        row = sessions.lookup(session=db, key=key)
        ended = "logout" if row is None else sessions.judge(row, at, limits)
        if row is not None and ended is None:
            g.actor = users.load_actor(session=db, user_id=row.user_id, via=f"session {row.id}")
            if g.actor is None:
                ended = "deactivated"
    if row is None or ended is not None:
        if row is not None and row.ended_at is None:  # found over, or deactivated: end it now
            sessions.end(session=db, now=at, row=row, reason=ended or "logout")
            db.commit()
        g.actor = None
        session.clear()
        g.session_ended = sessions.explain(ended or "logout", limits)
        return
    if sessions.needs_touch(row, at):
        sessions.touch(session=db, now=at, row=row)
        db.commit()
    g.web_session = row
    user = db.get(User, row.user_id)
    g.must_change_password = user is not None and (user.must_change_password or (
        users.password_expired(user, at, current_app.config["PASSWORD_MAX_AGE_DAYS"])))


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
        return None
    if g.auth_error is not None:
        raise g.auth_error
    if g.actor is None:
        if is_api_request():
            raise AuthenticationFailed("This API needs a token: 'Authorization: Bearer <token>'.")
        if g.get("session_ended"):
            flash(f"You were {g.session_ended}. Log in again to go on.", "info")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if g.get("must_change_password") and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        return redirect(url_for("account.password", next=request.full_path.rstrip("?")))
    if not access.within_scopes(g.actor, name):
        raise Forbidden("This token's scopes do not allow this: issue a token with the scope "
                        "it needs.")
    if not access.allowed(g.actor, name):
        raise Forbidden("Your roles do not allow this.")
    return None
