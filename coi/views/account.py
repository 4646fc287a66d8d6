"""One's own account: change the password, issue and revoke one's own API tokens."""

from __future__ import annotations

import json
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

from coi.core.access import AUTHENTICATED, DEFAULT_SCOPES, SCOPES, permission
from coi.core.errors import DomainError
from coi.core.phi import PhiKeyError
from coi.services import sessions, tokens, users
from coi.signed_out import safe_next  # one rule for where a login may lead
from coi.web import actor, carry_out, cipher, now, request_session, whole_number

blueprint = Blueprint("account", __name__, url_prefix="/account")

SCOPE_WORDS = {
    "read": "read cases, shipments and alarms",
    "scan": "record scans",
    "upload": "upload logger files",
    "enrol": "enrol patients and register units",
}


@blueprint.route("/password", methods=["GET", "POST"])
@permission(AUTHENTICATED)
def password() -> Any:
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("account/password.html", next=target,
                               forced=g.get("must_change_password", False))
    db, form = request_session(), request.form
    try:
        user = users.change_password(session=db, now=now(), actor=actor(),
                                     current=form.get("current", ""), new=form.get("new", ""),
                                     repeated=form.get("repeated", ""),
                                     remote_addr=request.remote_addr)
    except DomainError as error:
        db.rollback()
        flash(f"Nothing was changed: {error.message}", "error")
        return render_template("account/password.html", next=target,
                               forced=g.get("must_change_password", False)), error.status
    # Every session of this person ended; this browser goes on in a new one.
    key, _row = sessions.start(session=db, now=now(), user=user, remote_addr=request.remote_addr,
                               user_agent=request.user_agent.string)
    db.commit()
    session.clear()
    session["sid"] = key
    session.permanent = True
    flash("Password changed. Every other session of yours has ended.", "success")
    return redirect(target or url_for("home.index"))


@blueprint.route("/tokens", methods=["GET", "POST"])
@permission(AUTHENTICATED)
def token_list() -> Any:
    db, form, me = request_session(), request.form, actor()
    if request.method == "POST":
        try:
            text, token = tokens.issue_token(
                session=db, now=now(), actor=me, user_id=me.user_id,
                name=form.get("name", ""), days=_days(form.get("days")),
                scopes=form.getlist("scopes"), reason=form.get("reason", ""))
        except DomainError as error:
            db.rollback()
            flash(f"No token was issued: {error.message}", "error")
            return redirect(url_for("account.token_list"))
        db.commit()
        # Shown once, on the page the redirect leads to; a reload shows it no more and
        # issues nothing. Until then it waits in the cookie encrypted (the cookie is signed,
        # not secret), as typed entries do (coi.kept).
        session["issued_token"] = cipher().encrypt_text(json.dumps({"id": token.id, "text": text}))
        flash("Token issued. Copy it now: it is shown only once.", "success")
        return redirect(url_for("account.token_list"))
    issued = _issued(session.pop("issued_token", None))
    return render_template("account/tokens.html", issued=issued,
                           tokens=tokens.list_tokens(session=db, actor=me, own=True), now=now(),
                           scopes=SCOPES, scope_words=SCOPE_WORDS, default_scopes=DEFAULT_SCOPES,
                           days=_default_days())


@blueprint.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@permission(AUTHENTICATED)
def revoke_token(token_id: int) -> Any:
    def revoke_it() -> None:
        tokens.revoke_token(session=request_session(), now=now(), actor=actor(), token_id=token_id,
                            reason=request.form.get("reason", ""))

    return carry_out(revoke_it, back=url_for("account.token_list"), refused="Nothing was changed",
                     done="Token revoked.")


def _issued(sealed: object) -> dict[str, object] | None:
    """The token issued by the POST before this page, to be shown this once."""
    if not isinstance(sealed, str):
        return None
    try:
        return json.loads(cipher().decrypt_text(sealed))  # type: ignore[no-any-return]
    except (PhiKeyError, ValueError):
        return None


def _default_days() -> int:
    return int(current_app.config["API_TOKEN_DAYS"])


def _days(value: str | None) -> int:
    return whole_number(value, field="days", message="A token lives 1 to 730 days.")
