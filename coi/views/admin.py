"""Administration: accounts, role grants, API tokens, and the audit trail."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from coi.core.access import permission, sites_for
from coi.core.errors import DomainError, InvalidInput
from coi.models import ROLES, User
from coi.services import audit, masterdata, tokens, users
from coi.web import actor, carry_out, now, request_session, whole_number

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

NOTHING_CHANGED = "Nothing was changed"
AUDIT_ENTITIES = ("user", "role_grant", "site", "product", "patient", "unit", "api_token")


@blueprint.route("/users", methods=["GET", "POST"])
@permission("user.manage")
def user_list() -> Any:
    db, me, form = request_session(), actor(), request.form
    values: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            users.create_user(session=db, now=now(), actor=me, username=form.get("username", ""),
                              full_name=form.get("full_name", ""),
                              password=form.get("password", ""), email=form.get("email") or None,
                              reason=form.get("reason", ""))
        except DomainError as error:
            # Shown again with what was typed (never the password), so nothing is lost.
            db.rollback()
            flash(error.message, "error")
            values = {name: form.get(name, "") for name in ("username", "full_name", "email",
                                                            "reason")}
            status = error.status
        else:
            db.commit()
            flash(f"Account {form.get('username', '').strip().lower()} created.", "success")
            return redirect(url_for("admin.user_list"))
    return render_template("admin/users.html", people=users.list_users(session=db), roles=ROLES,
                           values=values, sites=[s for s in masterdata.active_sites(session=db)
                                                 if s.id in sites_for(me, "user.manage")]), status


@blueprint.route("/users/<int:user_id>/grants", methods=["POST"])
@permission("user.manage")
def grant(user_id: int) -> Any:
    form = request.form

    def grant_role() -> None:
        users.grant_role(session=request_session(), now=now(), actor=actor(), user_id=user_id,
                         site_id=_int(form.get("site"), "site"), role=form.get("role", ""),
                         reason=form.get("reason", ""))

    return carry_out(grant_role, back=url_for("admin.user_list"), refused=NOTHING_CHANGED,
                     done="Role granted.")


@blueprint.route("/grants/<int:grant_id>/revoke", methods=["POST"])
@permission("user.manage")
def revoke(grant_id: int) -> Any:
    def revoke_role() -> None:
        users.revoke_role(session=request_session(), now=now(), actor=actor(), grant_id=grant_id,
                          reason=request.form.get("reason", ""))

    return carry_out(revoke_role, back=url_for("admin.user_list"), refused=NOTHING_CHANGED,
                     done="Role revoked.")


@blueprint.route("/users/<int:user_id>/active", methods=["POST"])
@permission("user.manage")
def set_active(user_id: int) -> Any:
    form = request.form

    def change() -> User:
        return users.set_active(session=request_session(), now=now(), actor=actor(), user_id=user_id,
                                active=form.get("active") == "1", reason=form.get("reason", ""))

    return carry_out(change, back=url_for("admin.user_list"), refused=NOTHING_CHANGED,
                     done=lambda user: f"{user.username} is now {_state(user)}.")


@blueprint.route("/tokens", methods=["GET", "POST"])
@permission("token.manage")
def token_list() -> Any:
    db, form = request_session(), request.form
    issued = None
    if request.method == "POST":
        try:
            issued, _token = tokens.issue_token(
                session=db, now=now(), actor=actor(), user_id=_int(form.get("user"), "user"),
                name=form.get("name", ""),
                days=whole_number(form.get("days"), field="days", message="A token lives 1 to 730 days."),
                reason=form.get("reason", ""))
        except DomainError as error:
            db.rollback()
            flash(f"{NOTHING_CHANGED}: {error.message}", "error")
            return redirect(url_for("admin.token_list"))
        db.commit()
        flash("Token issued. Copy it now: it is shown only once.", "success")
    return render_template("admin/tokens.html", issued=issued,
                           tokens=tokens.list_tokens(session=db), now=now(),
                           people=[u for u, _g in users.list_users(session=db) if u.active])


@blueprint.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@permission("token.manage")
def revoke_token(token_id: int) -> Any:
    def revoke_it() -> None:
        tokens.revoke_token(session=request_session(), now=now(), actor=actor(), token_id=token_id,
                            reason=request.form.get("reason", ""))

    return carry_out(revoke_it, back=url_for("admin.token_list"), refused=NOTHING_CHANGED,
                     done="Token revoked.")


@blueprint.route("/audit")
@permission("audit.view")
def audit_trail() -> Any:
    entity = request.args.get("entity") or None
    if entity and entity not in AUDIT_ENTITIES:
        raise InvalidInput(f"'{entity}' is not a kind of record in the audit trail.")
    entries = audit.recent(session=request_session(), entity=entity)
    return render_template("admin/audit.html", entries=entries, entity=entity,
                           entities=AUDIT_ENTITIES)


def _state(user: User) -> str:
    return "active" if user.active else "deactivated"


def _int(value: str | None, field: str) -> int:
    return whole_number(value, field=field, message=f"Choose a {field} from the list.")
