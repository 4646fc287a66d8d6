from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from coi.core.access import AUTHENTICATED, PUBLIC, permission
from coi.core.errors import AuthenticationFailed, Throttled
from coi.services import users
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
            remote_addr=request.remote_addr)
    except (AuthenticationFailed, Throttled) as error:
        db.commit()  # the failed attempt is evidence
        flash(error.message, "error")
        headers = ({"Retry-After": str(error.retry_after)}
                   if isinstance(error, Throttled) and error.retry_after else {})
        return render_template("login.html", next=target, username=username), error.status, headers
    db.commit()
    session.clear()  # a fresh session on login: no fixation
    session["uid"] = user.id
    session.permanent = True
    return redirect(target or url_for("home.index"))


@blueprint.route("/logout", methods=["POST"])
@permission(AUTHENTICATED)
def logout() -> Any:
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str | None:
    # Only local paths: an absolute or protocol-relative URL would be an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None
