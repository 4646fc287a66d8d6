"""People: accounts, role grants per site, login with throttling, and the Actor a request acts as."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from coi import throttle
from coi.core.access import GLOBAL_ADMIN_PERMISSIONS, Actor, Operator, allowed, require
from coi.core.emails import email_problems
from coi.core.errors import AuthenticationFailed, Conflict, Forbidden, InvalidInput, NotFound, Throttled
from coi.db import keep
from coi.models import ROLES, RoleGrant, Site, User, WebSession
from coi.passwords import hash_password, password_matches, password_problem
from coi.services import attempts, audit, sessions

USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def normalise_username(username: str) -> str:
    return username.strip().lower()


def create_user(
    *,
    session: Session,
    now: datetime,
    actor: Actor | Operator | None,
    username: str,
    full_name: str,
    password: str,
    email: str | None = None,
    reason: str,
) -> User:
    """Create an account. `actor` None is the system (the demo loader, first admin); an
    Operator, the installation's operator on the command line."""
    if actor is not None:
        require(actor, "user.manage", doing="create user accounts")
    username = normalise_username(username)
    errors = []
    if not username or not set(username) <= USERNAME_CHARS or len(username) > 64:
        errors.append({"field": "username", "message":
                       "Use 1-64 characters: lowercase letters, digits, '.', '_' or '-'."})
    if not full_name.strip() or len(full_name) > 200:
        errors.append({"field": "full_name", "message": "Give the person's full name."})
    problem = password_problem(password, username=username, full_name=full_name)
    if problem:
        errors.append({"field": "password", "message": problem})
    errors.extend(email_problems(email))
    if errors:
        raise InvalidInput("The account was not created: " + errors[0]["message"], errors)
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"The username '{username}' is taken.")
    user = User(username=username, full_name=full_name.strip(), email=email or None,
                password_hash=hash_password(password), created_at=now, password_changed_at=now)
    session.add(user)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user.id,
                 action="create", reason=reason,
                 changes={"username": (None, username), "full_name": (None, user.full_name),
                          "email": (None, user.email), "active": (None, True)})
    return user


def grant_role(
    *, session: Session, now: datetime, actor: Actor | Operator | None, user_id: int, site_id: int,
    role: str, reason: str,
) -> RoleGrant:
    if actor is not None:
        require(actor, "user.manage", site_id, doing="grant roles at this site")
        require_manager_of(session, actor, "user.manage", user_id,
                           doing="grant roles to this person")
    if role not in ROLES:
        raise InvalidInput(f"'{role}' is not a role; use one of: {', '.join(ROLES)}.",
                           [{"field": "role", "message": "Choose a role from the list."}])
    user, site = session.get(User, user_id), session.get(Site, site_id)
    if user is None or site is None:
        raise NotFound("No such user or site.")
    existing = session.exec(select(RoleGrant).where(
        RoleGrant.user_id == user_id, RoleGrant.site_id == site_id, RoleGrant.role == role)).first()
    if existing:
        raise Conflict(f"{user.username} already has the role {role} at {site.name}.")
    grant = RoleGrant(user_id=user_id, site_id=site_id, role=role, created_at=now)
    session.add(grant)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="role_grant",
                 entity_id=f"{user.username}@{site.code}", action="create", reason=reason,
                 changes={"role": (None, role)})
    return grant


def revoke_role(
    *, session: Session, now: datetime, actor: Actor | Operator, grant_id: int, reason: str,
) -> None:
    grant = session.get(RoleGrant, grant_id)
    if grant is None:
        raise NotFound("No such role grant.")
    require(actor, "user.manage", grant.site_id, doing="revoke roles at this site")
    require_manager_of(session, actor, "user.manage", grant.user_id,
                       doing="revoke this person's roles")
    user, site = session.get(User, grant.user_id), session.get(Site, grant.site_id)
    assert user is not None and site is not None
    audit.record(session=session, now=now, actor=actor, entity="role_grant",
                 entity_id=f"{user.username}@{site.code}", action="delete", reason=reason,
                 changes={"role": (grant.role, None)})
    session.delete(grant)
    session.flush()


def require_manager_of(session: Session, actor: Actor | Operator, permission: str, user_id: int,
                       *, doing: str) -> None:
    """An administrator manages the people of their own sites only: an account whose every
    role grant is at a site the administrator administers, or a new account with no grant
    yet. Never an account that also works elsewhere (that site's administrators decide for
    it), and never a global administrator. A global administrator manages everyone."""
    require(actor, permission, doing=doing)
    if actor.global_admin and permission in GLOBAL_ADMIN_PERMISSIONS:
        return
    user = session.get(User, user_id)
    if user is not None and user.global_admin:
        raise Forbidden(f"You are not allowed to {doing}: this is a global administrator.")
    sites = {grant.site_id for grant in session.exec(
        select(RoleGrant).where(RoleGrant.user_id == user_id))}
    elsewhere = {site for site in sites if not allowed(actor, permission, site)}
    if elsewhere:
        raise Forbidden(f"You are not allowed to {doing}: this person also works at sites you "
                        "do not administer; their administrators decide.")


def set_active(
    *, session: Session, now: datetime, actor: Actor | Operator, user_id: int, active: bool, reason: str,
) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    require_manager_of(session, actor, "user.manage", user_id,
                       doing="activate or deactivate this account")
    if user.id == actor.user_id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user.id,
                 action="update", reason=reason, changes={"active": (user.active, active)})
    user.active = active
    session.add(user)
    session.flush()
    if not active:
        sessions.end_all(session=session, now=now, user_id=user_id, reason="deactivated")
    return user


def change_password(
    *, session: Session, now: datetime, actor: Actor, current: str, new: str, repeated: str,
    remote_addr: str | None = None,
) -> User:
    """A person changes their own password: the current one first, checked through the
    password throttle like a login. Every session of theirs ends (the caller starts a new one
    for the browser that asked)."""
    user = session.get(User, actor.user_id)
    if user is None or not user.active:
        raise NotFound("No such active user.")
    try:
        authenticate(session=session, now=now, username=user.username, password=current,
                     remote_addr=remote_addr)
    except AuthenticationFailed:
        raise AuthenticationFailed("Your current password is wrong: nothing was changed.") from None
    if new != repeated:
        raise InvalidInput("The new password and its repetition differ.",
                           [{"field": "repeated", "message": "Type the same password twice."}])
    if password_matches(user.password_hash, new):
        raise InvalidInput("Choose a password other than your current one.",
                           [{"field": "new", "message": "Same as the current password."}])
    problem = password_problem(new, username=user.username, full_name=user.full_name)
    if problem:
        raise InvalidInput(problem, [{"field": "new", "message": problem}])
    audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user.id,
                 action="update", reason="changed own password",
                 changes={"password": ("(set)", "(changed)"),
                          "must_change_password": (user.must_change_password, False)})
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.password_changed_at = now
    session.add(user)
    session.flush()
    sessions.end_all(session=session, now=now, user_id=user.id, reason="password_changed")  # type: ignore[arg-type]
    return user


def reset_password(
    *, session: Session, now: datetime, actor: Actor | Operator, user_id: int, reason: str,
) -> tuple[User, str]:
    """An administrator resets a password: a one-time password is made (shown once to the
    administrator), the person must choose their own at the next login, and their sessions
    end. Returns the user and the one-time password."""
    require_manager_of(session, actor, "user.manage", user_id, doing="reset this password")
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound("No such active user.")
    if user.id == actor.user_id:
        raise InvalidInput("Change your own password on your account page, not by a reset.")
    temporary = "-".join(secrets.token_hex(3) for _ in range(4))  # 12 hex digits in 4 groups
    audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user.id,
                 action="update", reason=reason,
                 changes={"password": ("(set)", "(reset)"),
                          "must_change_password": (user.must_change_password, True)})
    user.password_hash = hash_password(temporary)
    user.must_change_password = True
    user.password_changed_at = now
    session.add(user)
    session.flush()
    sessions.end_all(session=session, now=now, user_id=user_id, reason="password_changed")
    return user, temporary


def end_sessions(*, session: Session, now: datetime, actor: Actor | Operator, user_id: int,
                 reason: str) -> int:
    """An administrator ends every session of a person they manage; audited."""
    require_manager_of(session, actor, "user.manage", user_id, doing="end this person's sessions")
    if session.get(User, user_id) is None:
        raise NotFound("No such user.")
    return sessions.end_all(session=session, now=now, user_id=user_id, reason="ended_by_admin",
                            actor=actor, audit_reason=reason)


def end_session(*, session: Session, now: datetime, actor: Actor | Operator, session_id: int,
                limits: sessions.Limits, reason: str) -> WebSession:
    """An administrator ends one live session of a person they manage (the laptop left
    behind, while their other browser goes on); audited. A session over already (ended,
    idle or past its lifetime under `limits`) is refused: there is nothing to end."""
    row = session.get(WebSession, session_id)
    if row is None:
        raise NotFound(f"No session {session_id}.")
    require_manager_of(session, actor, "user.manage", row.user_id,
                       doing="end this person's sessions")
    over = sessions.judge(row, now, limits)
    if over is not None:
        raise Conflict(f"Session {session_id} is over already ({over}): nothing to end.")
    audit.record(session=session, now=now, actor=actor, entity="web_session", entity_id=row.id,
                 action="update", reason=reason, changes={"ended_at": (None, now)})
    sessions.end(session=session, now=now, row=row, reason="ended_by_admin")
    return row


def password_expired(user: User, now: datetime, max_age_days: int) -> bool:
    """Password aging (optional: 0 days is off)."""
    if max_age_days <= 0:
        return False
    changed = user.password_changed_at or user.created_at
    return now - changed >= timedelta(days=max_age_days)


def authenticate(
    *, session: Session, now: datetime, username: str, password: str, remote_addr: str | None,
    kind: str = "login", guard: throttle.Throttle | None = None,
) -> User:
    """Check a password: a login, or a password given to sign (`kind` "signing"). While the
    account or the address must wait after repeated failures (coi.throttle; `guard`, default
    the one attached to the session), the attempt is refused with Throttled without checking
    the password. An unknown username costs one hash check like a real one. Every attempt is
    recorded, even if the caller's transaction is then rolled back (coi.services.attempts)."""
    username = normalise_username(username)[:64]
    guard = guard or throttle.of(session)
    wait = guard.wait(now=now, username=username, address=remote_addr)
    if wait:
        attempts.record(session=session, now=now, username=username, succeeded=False,
                        remote_addr=remote_addr, kind=kind)
        raise Throttled(f"Too many attempts: wait {throttle.seconds(wait)}.", retry_after=wait)
    user = session.exec(select(User).where(User.username == username)).first()
    matched = password_matches(user.password_hash if user is not None else None, password)
    good = matched and user is not None and user.active
    attempts.record(session=session, now=now, username=username, succeeded=good,
                    remote_addr=remote_addr, kind=kind)
    if not good or user is None:
        guard.failed(now=now, username=username, address=remote_addr)
        raise AuthenticationFailed("Unknown username or wrong password.")
    guard.succeeded(username=username)
    return user


def set_global_admin(
    *, session: Session, now: datetime, actor: Actor | Operator | None, user_id: int, value: bool,
    reason: str,
) -> User:
    """Make or unmake a global administrator: only a global administrator may (or the
    system: the command line of the installation's operator)."""
    if actor is not None and not actor.global_admin:
        raise Forbidden("Only a global administrator can change who is one.")
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound("No such active user.")
    if actor is not None and user.id == actor.user_id and not value:
        raise InvalidInput("You cannot give up your own global administration: ask another "
                           "global administrator.")
    audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user.id,
                 action="update", reason=reason,
                 changes={"global_admin": (user.global_admin, value)})
    user.global_admin = value
    session.add(user)
    session.flush()
    return user


def actor_for(
    *, session: Session, user: User, token_id: int | None = None, via: str | None = None,
    scopes: frozenset[str] | None = None,
) -> Actor:
    rows = session.exec(
        select(RoleGrant, Site).join(Site, col(Site.id) == RoleGrant.site_id)
        .where(RoleGrant.user_id == user.id, col(Site.active).is_(True))
        .order_by(col(RoleGrant.id))
    ).all()
    keep(session, *(site for _grant, site in rows))  # where the actor scans (custody)
    grants = frozenset((site.id, grant.role) for grant, site in rows)
    timezone = rows[0][1].timezone if rows else "UTC"
    return Actor(user_id=user.id, username=user.username,  # type: ignore[arg-type]
                 full_name=user.full_name, grants=grants, timezone=timezone,  # type: ignore[arg-type]
                 token_id=token_id, via=via, scopes=scopes, global_admin=user.global_admin,
                 site_names={site.id: site.name for _g, site in rows},  # type: ignore[misc]
                 site_codes={site.id: site.code for _g, site in rows})  # type: ignore[misc]


def load_actor(*, session: Session, user_id: int, via: str | None = None) -> Actor | None:
    user = session.get(User, user_id)
    if user is None or not user.active:
        return None
    return actor_for(session=session, user=user, via=via)


def list_users(*, session: Session) -> list[tuple[User, list[tuple[RoleGrant, Site]]]]:
    users = session.exec(select(User).order_by(col(User.username))).all()
    grants = session.exec(select(RoleGrant, Site).join(Site, col(Site.id) == RoleGrant.site_id)
                          .order_by(col(Site.name), col(RoleGrant.role))).all()
    by_user: dict[int, list[tuple[RoleGrant, Site]]] = {}
    for grant, site in grants:
        by_user.setdefault(grant.user_id, []).append((grant, site))
    return [(user, by_user.get(user.id, [])) for user in users]  # type: ignore[arg-type]


def manages(session: Session, actor: Actor | Operator, permission: str, user_id: int) -> bool:
    """Does `actor` administer this person (`require_manager_of` without the refusal)?"""
    try:
        require_manager_of(session, actor, permission, user_id, doing="manage this account")
    except Forbidden:
        return False
    return True


def managed_users(*, session: Session, actor: Actor) -> list[tuple[User, list[tuple[RoleGrant, Site]]]]:
    """The people `actor` administers (with their grants): see `require_manager_of`."""
    return [(user, grants) for user, grants in list_users(session=session)
            if manages(session, actor, "user.manage", user.id)]  # type: ignore[arg-type]
