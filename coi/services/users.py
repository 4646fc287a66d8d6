"""People: accounts, role grants per site, login with throttling, and the Actor a request acts as."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from coi.core.access import Actor, allowed, require
from coi.core.emails import email_problems
from coi.core.errors import AuthenticationFailed, Conflict, Forbidden, InvalidInput, NotFound, Throttled
from coi.db import keep
from coi.models import ROLES, LoginAttempt, RoleGrant, Site, User
from coi.passwords import hash_password, password_matches, password_problem
from coi.services import audit

USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def normalise_username(username: str) -> str:
    return username.strip().lower()


def create_user(
    *,
    session: Session,
    now: datetime,
    actor: Actor | None,
    username: str,
    full_name: str,
    password: str,
    email: str | None = None,
    reason: str,
) -> User:
    """Create an account. `actor` None is the system (the demo loader, first admin)."""
    if actor is not None:
        require(actor, "user.manage", doing="create user accounts")
    username = normalise_username(username)
    errors = []
    if not username or not set(username) <= USERNAME_CHARS or len(username) > 64:
        errors.append({"field": "username", "message":
                       "Use 1-64 characters: lowercase letters, digits, '.', '_' or '-'."})
    if not full_name.strip() or len(full_name) > 200:
        errors.append({"field": "full_name", "message": "Give the person's full name."})
    problem = password_problem(password)
    if problem:
        errors.append({"field": "password", "message": problem})
    errors.extend(email_problems(email))
    if errors:
        raise InvalidInput("The account was not created: " + errors[0]["message"], errors)
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"The username '{username}' is taken.")
    user = User(username=username, full_name=full_name.strip(), email=email or None,
                password_hash=hash_password(password), created_at=now)
    session.add(user)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="user", entity_id=user.id,
                 action="create", reason=reason,
                 changes={"username": (None, username), "full_name": (None, user.full_name),
                          "email": (None, user.email), "active": (None, True)})
    return user


def grant_role(
    *, session: Session, now: datetime, actor: Actor | None, user_id: int, site_id: int,
    role: str, reason: str,
) -> RoleGrant:
    if actor is not None:
        require(actor, "user.manage", site_id, doing="grant roles at this site")
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
    *, session: Session, now: datetime, actor: Actor, grant_id: int, reason: str,
) -> None:
    grant = session.get(RoleGrant, grant_id)
    if grant is None:
        raise NotFound("No such role grant.")
    require(actor, "user.manage", grant.site_id, doing="revoke roles at this site")
    user, site = session.get(User, grant.user_id), session.get(Site, grant.site_id)
    assert user is not None and site is not None
    audit.record(session=session, now=now, actor=actor, entity="role_grant",
                 entity_id=f"{user.username}@{site.code}", action="delete", reason=reason,
                 changes={"role": (grant.role, None)})
    session.delete(grant)
    session.flush()


def require_manager_of(session: Session, actor: Actor, permission: str, user_id: int,
                       *, doing: str) -> None:
    """An administrator manages the people of their own sites: a user who holds a role at one
    of them, or no role anywhere yet (a new account). Anyone else is another site's business."""
    require(actor, permission, doing=doing)
    sites = {grant.site_id for grant in session.exec(
        select(RoleGrant).where(RoleGrant.user_id == user_id))}
    if sites and not any(allowed(actor, permission, site) for site in sites):
        raise Forbidden(f"You are not allowed to {doing}: this person works at other sites.")


def set_active(
    *, session: Session, now: datetime, actor: Actor, user_id: int, active: bool, reason: str,
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
    return user


def authenticate(
    *, session: Session, now: datetime, username: str, password: str, remote_addr: str | None,
    max_failures: int, lock_minutes: int,
) -> User:
    """Check a login. After `max_failures` failures within `lock_minutes`, refuse even a right
    password until the window has passed. Every attempt is recorded."""
    username = normalise_username(username)[:64]
    since = now - timedelta(minutes=lock_minutes)
    failures = session.exec(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username, col(LoginAttempt.succeeded).is_(False),
            LoginAttempt.at > since)
    ).one()
    user = session.exec(select(User).where(User.username == username)).first()
    good = (user is not None and user.active and failures < max_failures
            and password_matches(user.password_hash, password))
    session.add(LoginAttempt(username=username, at=now, succeeded=good, remote_addr=remote_addr))
    session.flush()
    if failures >= max_failures:
        raise Throttled(f"Too many failed logins for this account. Try again in "
                        f"{lock_minutes} minutes, or ask an administrator.")
    if not good or user is None:
        raise AuthenticationFailed("Unknown username or wrong password.")
    return user


def actor_for(*, session: Session, user: User, token_id: int | None = None) -> Actor:
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
                 token_id=token_id, site_names={site.id: site.name for _g, site in rows})  # type: ignore[misc]


def load_actor(*, session: Session, user_id: int) -> Actor | None:
    user = session.get(User, user_id)
    if user is None or not user.active:
        return None
    return actor_for(session=session, user=user)


def list_users(*, session: Session) -> list[tuple[User, list[tuple[RoleGrant, Site]]]]:
    users = session.exec(select(User).order_by(col(User.username))).all()
    grants = session.exec(select(RoleGrant, Site).join(Site, col(Site.id) == RoleGrant.site_id)
                          .order_by(col(Site.name), col(RoleGrant.role))).all()
    by_user: dict[int, list[tuple[RoleGrant, Site]]] = {}
    for grant, site in grants:
        by_user.setdefault(grant.user_id, []).append((grant, site))
    return [(user, by_user.get(user.id, [])) for user in users]  # type: ignore[arg-type]
