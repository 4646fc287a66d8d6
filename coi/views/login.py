from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from coi.core.access import AUTHENTICATED, PUBLIC, permission
from coi.core.errors import AuthenticationFailed, Throttled
from coi.services import sessions, users
from coi.web import now, request_session

blueprint = Blueprint("auth", __name__)


@blueprint.route("/login", methods=["GET", "POST"])
@permission(PUBLIC)
def login() -> Any:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target)
    db = request_session()
    username = request.form.get("username", "")
    try:
        user = users.authenticate(
            session=db, now=now(), username=username, password=request.form.get("password", ""),
            remote_addr=request.remote_addr,
            max_failures=current_app.config["LOGIN_MAX_FAILURES"],
            lock_minutes=current_app.config["LOGIN_LOCK_MINUTES"])
    except (AuthenticationFailed, Throttled) as error:
        db.commit()  # the failed attempt is evidence, and it counts towards the lock
        flash(error.message, "error")
        return render_template("login.html", next=target, username=username), error.status
    key, _row = sessions.start(session=db, now=now(), user=user, remote_addr=request.remote_addr,
                               user_agent=request.user_agent.string)
    db.commit()
    session.clear()  # a fresh cookie on login: no fixation
    session["sid"] = key
    session.permanent = True
    if user.must_change_password:
        flash("An administrator reset your password: choose a new one.", "info")
        return redirect(url_for("account.password", next=target))
    return redirect(target or url_for("home.index"))


@blueprint.route("/logout", methods=["POST"])
@permission(AUTHENTICATED)
def logout() -> Any:
    row = g.get("web_session")
    if row is not None:
        sessions.end(session=request_session(), now=now(), row=row, reason="logout")
        request_session().commit()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str | None:
    # Only local paths: an absolute or protocol-relative URL would be an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None
