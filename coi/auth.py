"""Who is asking: a web session (username + password) or an API token. Then the one check
of every request against the view's declared permission (see coi.core.access)."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from coi.core import access
from coi.core.errors import AuthenticationFailed, Forbidden
from coi.db import reading_first, request_session
from coi.services import tokens, users
from coi.web import now

log = logging.getLogger(__name__)

API_BLUEPRINT = "api"


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
    user_id = session.get("uid")
    if user_id is not None:
        with reading_first(db):
            g.actor = users.load_actor(session=db, user_id=int(user_id))
        if g.actor is None:  # deactivated since login
            session.clear()


def _token_actor(header: str) -> access.Actor:
    scheme, _, text = header.partition(" ")
    if scheme.lower() != "bearer" or not text.strip():
        raise AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
    db = request_session()
    user, token = tokens.user_for_token(session=db, now=now(), text=text.strip())
    return users.actor_for(session=db, user=user, token_id=token.id)


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
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not access.allowed(g.actor, name):
        raise Forbidden("Your roles do not allow this.")
    return None
