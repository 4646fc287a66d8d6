from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from coi import kept
from coi.auth import mark_ended
from coi.core.access import AUTHENTICATED, PUBLIC, permission
from coi.core.errors import AuthenticationFailed, Throttled
from coi.services import sessions, users
from coi.signed_out import safe_next
from coi.web import now, request_session

blueprint = Blueprint("auth", __name__)


@blueprint.route("/login", methods=["GET", "POST"])
@permission(PUBLIC)
def login() -> Any:
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target)
    db = request_session()
    username = request.form.get("username", "")
    try:
        user = users.authenticate(
            session=db, now=now(), username=username, password=request.form.get("password", ""),
            remote_addr=request.remote_addr)
    except (AuthenticationFailed, Throttled) as error:
        db.commit()  # the failed attempt is evidence
        flash(error.message, "error")
        headers = ({"Retry-After": str(error.retry_after)}
                   if isinstance(error, Throttled) and error.retry_after else {})
        return render_template("login.html", next=target, username=username), error.status, headers
    key, _row = sessions.start(session=db, now=now(), user=user, remote_addr=request.remote_addr,
                               user_agent=request.user_agent.string)
    db.commit()
    entries = session.get(kept.COOKIE_KEY)  # typed before the session ended (coi.kept)
    session.clear()  # a fresh cookie on login: no fixation
    session["sid"] = key
    session.permanent = True
    kept.carry_over(entries, user_id=user.id)  # type: ignore[arg-type]
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
    # Another tab of this browser still open on a page is then told why it must log in.
    mark_ended("logout", row.user_id if row is not None else None)
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


