"""Administration: accounts, role grants, API tokens, the audit trail, and the development
outbox."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for

from coi.core.access import allowed, permission
from coi.core.errors import DomainError
from coi.db import session_scope
from coi.models import ROLES, User
from coi.ratelimits import the_throttle
from coi.services import audit, audit_export, masterdata, outbox, throttling, tokens, users
from coi.web import actor, carry_out, now, request_session, whole_number

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

NOTHING_CHANGED = "Nothing was changed"


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
    people = users.managed_users(session=db, actor=me)
    return render_template("admin/users.html", people=people, roles=ROLES, values=values,
                           sites=[s for s in masterdata.active_sites(session=db)
                                  if allowed(me, "user.manage", s.id)],
                           delays=throttling.delays(guard=the_throttle(), now=now(),
                                                    people=[user for user, _g in people]),
                           now_seconds=now().timestamp(), outbox_in_use=_outbox_in_use()), status


@blueprint.route("/users/<int:user_id>/password", methods=["POST"])
@permission("user.manage")
def reset_password(user_id: int) -> Any:
    def reset() -> tuple[User, str]:
        return users.reset_password(session=request_session(), now=now(), actor=actor(),
                                    user_id=user_id, reason=request.form.get("reason", ""))

    return carry_out(reset, back=url_for("admin.user_list"), refused=NOTHING_CHANGED,
                     done=lambda done: f"Password of {done[0].username} reset. Give them this "
                                       f"one-time password in person: {done[1]} (shown once; "
                                       "they must choose their own at login).")


@blueprint.route("/users/<int:user_id>/sessions/end", methods=["POST"])
@permission("user.manage")
def end_sessions(user_id: int) -> Any:
    def end() -> int:
        return users.end_sessions(session=request_session(), now=now(), actor=actor(),
                                  user_id=user_id, reason=request.form.get("reason", ""))

    return carry_out(end, back=url_for("admin.user_list"), refused=NOTHING_CHANGED,
                     done=lambda count: f"{count} session(s) ended.")


@blueprint.route("/users/<int:user_id>/global-admin", methods=["POST"])
@permission("user.manage")
def set_global_admin(user_id: int) -> Any:
    def change() -> User:
        return users.set_global_admin(session=request_session(), now=now(), actor=actor(),
                                      user_id=user_id, value=request.form.get("value") == "1",
                                      reason=request.form.get("reason", ""))

    return carry_out(change, back=url_for("admin.user_list"), refused=NOTHING_CHANGED,
                     done=lambda user: f"{user.username} is "
                                       f"{'now' if user.global_admin else 'no longer'} a global "
                                       "administrator.")


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


@blueprint.route("/users/<int:user_id>/unlock", methods=["POST"])
@permission("user.manage")
def unlock(user_id: int) -> Any:
    def clear() -> User:
        return throttling.unlock(session=request_session(), now=now(), actor=actor(),
                                 guard=the_throttle(), user_id=user_id,
                                 reason=request.form.get("reason", ""))

    return carry_out(clear, back=url_for("admin.user_list"), refused=NOTHING_CHANGED,
                     done=lambda user: f"{user.username}'s failed attempts are cleared: "
                                       "they can log in now.")


@blueprint.route("/tokens")
@permission("token.manage")
def token_list() -> Any:
    # Tokens are issued by the people they act as (account.token_list); administrators see
    # and revoke those of the people they administer.
    return render_template("admin/tokens.html", now=now(),
                           tokens=tokens.list_tokens(session=request_session(), actor=actor()))


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
    db, me = request_session(), actor()
    wanted = audit.read_filter(request.args, zone=me.timezone)
    before, after = audit.read_cursor(request.args)
    shown = audit.page(session=db, actor=me, wanted=wanted, before=before, after=after)
    return render_template("admin/audit.html", page=shown, query=_filter_query(), zone=me.timezone,
                           entities=audit.entities(session=db),
                           sites=audit.readable_sites(session=db, actor=me))


@blueprint.route("/audit.csv")
@permission("audit.view")
def audit_csv() -> Any:
    return _audit_export("csv")


@blueprint.route("/audit.json")
@permission("audit.view")
def audit_json() -> Any:
    return _audit_export("json")


@blueprint.route("/outbox")
@permission("outbox.view")
def outbox_messages() -> Any:
    """The alarm e-mails a development machine kept instead of sending (COI_MAIL_OUTBOX)."""
    return render_template("admin/outbox.html",
                           page=outbox.newest(session=request_session(), limit=outbox.SHOWN),
                           in_use=_outbox_in_use())


def _outbox_in_use() -> bool:
    return bool(current_app.extensions["coi.alerting"].outbox)


def _audit_export(kind: str) -> Response:
    """The whole of a filter, every page, sent as it is read. The export is recorded (and
    committed, in a writing transaction of its own) before the first row is sent."""
    me, engine = actor(), current_app.extensions["coi.engine"]
    wanted = audit.read_filter(request.args, zone=me.timezone)
    with session_scope(engine) as db:
        export = audit_export.begin_export(session=db, now=now(), actor=me, wanted=wanted, kind=kind)
    rows = audit_export.exported_rows(engine=engine, actor=me, export=export)
    name = f"audit-trail-{export.at:%Y%m%dT%H%M%SZ}.{kind}"
    return Response(audit_export.WRITERS[kind](export, rows), mimetype=audit_export.MEDIA_TYPES[kind],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _filter_query() -> dict[str, str]:
    """The filter's own parameters of this request, for the page's links (pages, exports)."""
    return {name: request.args[name] for name in audit.FILTER_PARAMETERS if request.args.get(name)}


def _state(user: User) -> str:
    return "active" if user.active else "deactivated"


def _int(value: str | None, field: str) -> int:
    return whole_number(value, field=field, message=f"Choose a {field} from the list.")
