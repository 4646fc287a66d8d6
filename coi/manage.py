"""`flask coi user|role|token|session ...`: managing accounts from the command line, as the
web's administration pages do (coi/views/admin.py), through the same services.

Whoever can run these commands holds the database and the keys, so they act as the
installation's operator (`coi.core.access.Operator`: a global administrator with no account
of the application's). Every change takes a `--reason` and is audited as done by the
operating-system user on this host, via "command line". A refusal (an unknown user, a weak
password, a role held already) is one line, and the transaction is rolled back: nothing is
written."""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Engine
from sqlmodel import Session, select

from coi.auth import session_limits
from coi.core.access import DEFAULT_SCOPES, SCOPES, Operator
from coi.core.errors import DomainError
from coi.db import session_scope, snapshot
from coi.models import ROLES, ApiToken, RoleGrant, Site, User
from coi.services import sessions, tokens, users

VIA = "command line"

user_cli = AppGroup("user", help="Accounts: list, create, deactivate, reset a password.")
role_cli = AppGroup("role", help="Role grants at a site.")
token_cli = AppGroup("token", help="API tokens.")
session_cli = AppGroup("session", help="Browser sessions: list and end them.")

reason_option = click.option("--reason", required=True,
                             help="Why (kept in the audit trail with the change).")


# ---------------------------------------------------------------- the operator

def operator() -> Operator:
    """The operator as the audit trail names them: the operating-system user and the host."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name, no passwd entry (a bare container)
        who = f"uid {os.getuid()}"
    name = f"os user {who} on host {socket.gethostname()} ({VIA})"
    return Operator(name=name[:200], via=VIA)  # audit_entry.actor_name holds 200


def _now() -> datetime:
    return current_app.extensions["coi.clock"].now()  # type: ignore[no-any-return]


def _engine() -> Engine:
    return current_app.extensions["coi.engine"]  # type: ignore[no-any-return]


@contextmanager
def _changing() -> Iterator[Session]:
    """One writing transaction, committed when the command succeeds. A refusal, the
    services' (DomainError) or the command's own (ClickException), rolls it back: nothing
    is written, and the refusal is the one line shown."""
    try:
        with session_scope(_engine()) as session:
            yield session
    except DomainError as error:
        raise click.ClickException(error.message) from None


def _user(session: Session, username: str) -> User:
    user = session.exec(select(User).where(
        User.username == users.normalise_username(username))).first()
    if user is None or user.id is None:
        raise click.ClickException(f"No user {username!r}.")
    return user


def _site(session: Session, code: str) -> Site:
    site = session.exec(select(Site).where(Site.code == code.strip().upper())).first()
    if site is None or site.id is None or not site.active:
        raise click.ClickException(f"No active site with the code {code!r}.")
    return site


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def _table(rows: Sequence[Sequence[str]], empty: str) -> None:
    """Rows in aligned columns, the first row the heading; `empty` said when there is none."""
    if len(rows) < 2:
        click.echo(empty)
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# ---------------------------------------------------------------- users

@user_cli.command("list")
def user_list() -> None:
    """Every account: its state and its roles (role@SITE)."""
    with snapshot(_engine()) as session:
        people = users.list_users(session=session)
    rows = [("username", "name", "state", "roles")]
    for user, grants in people:
        state = "active" if user.active else "deactivated"
        if user.must_change_password:
            state += ", must change password"
        roles = [f"{grant.role}@{site.code}" for grant, site in grants]
        rows.append((user.username, user.full_name, state,
                     ", ".join((["global admin"] if user.global_admin else []) + roles) or "-"))
    _table(rows, "No accounts.")


@user_cli.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="The person's full name (printed on "
                                                         "their e-signatures).")
@click.option("--email", default=None, help="Where alarms reach them.")
@click.option("--global-admin", is_flag=True,
              help="Make them a global administrator (every site's accounts; never PHI).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input instead of asking.")
@reason_option
def user_create(username: str, full_name: str, email: str | None, global_admin: bool,
                password_stdin: bool, reason: str) -> None:
    """Create an account (the password is asked twice, hidden; the web's strength rules)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    me = operator()
    with _changing() as session:
        user = users.create_user(session=session, now=_now(), actor=me, username=username,
                                 full_name=full_name, password=password, email=email,
                                 reason=reason)
        if global_admin:
            users.set_global_admin(session=session, now=_now(), actor=me, user_id=user.id,  # type: ignore[arg-type]
                                   value=True, reason=reason)
    click.echo(f"Account {user.username} created (id {user.id})"
               + (", a global administrator." if global_admin else "."))


def _set_active(username: str, active: bool, reason: str) -> None:
    with _changing() as session:
        user = _user(session, username)
        if user.active == active:
            raise click.ClickException(f"{user.username} is {_state(active)} already: "
                                       "nothing changed.")
        users.set_active(session=session, now=_now(), actor=operator(), user_id=user.id,  # type: ignore[arg-type]
                         active=active, reason=reason)
    click.echo(f"{user.username} is now {_state(active)}"
               + ("; their sessions have ended." if not active else "."))


def _state(active: bool) -> str:
    return "active" if active else "deactivated"


@user_cli.command("deactivate")
@click.argument("username")
@reason_option
def user_deactivate(username: str, reason: str) -> None:
    """Deactivate an account: no login, no token works, its sessions end."""
    _set_active(username, False, reason)


@user_cli.command("activate")
@click.argument("username")
@reason_option
def user_activate(username: str, reason: str) -> None:
    """Activate a deactivated account again."""
    _set_active(username, True, reason)


@user_cli.command("reset-password")
@click.argument("username")
@reason_option
def user_reset_password(username: str, reason: str) -> None:
    """Reset a password as the web's administrator does: a one-time password, shown once
    here, which must be changed at the next login; the person's sessions end."""
    with _changing() as session:
        user = _user(session, username)
        _user_row, temporary = users.reset_password(session=session, now=_now(), actor=operator(),
                                                    user_id=user.id, reason=reason)  # type: ignore[arg-type]
    click.echo(f"Password of {user.username} reset. Give them this one-time password in "
               f"person: {temporary}")
    click.echo("It is shown only this once; they must choose their own at the next login.")


@user_cli.command("end-sessions")
@click.argument("username")
@reason_option
def user_end_sessions(username: str, reason: str) -> None:
    """End every session of a person (they must log in again)."""
    with _changing() as session:
        user = _user(session, username)
        ended = users.end_sessions(session=session, now=_now(), actor=operator(),
                                   user_id=user.id, reason=reason)  # type: ignore[arg-type]
    click.echo(f"{ended} session(s) of {user.username} ended.")


# ---------------------------------------------------------------- roles

@role_cli.command("grant", help=f"Grant ROLE ({', '.join(ROLES)}) at a site.")
@click.argument("username")
@click.argument("role")
@click.option("--site", "code", required=True, help="The site's code, e.g. BOS.")
@reason_option
def role_grant(username: str, role: str, code: str, reason: str) -> None:
    with _changing() as session:
        user, site = _user(session, username), _site(session, code)
        users.grant_role(session=session, now=_now(), actor=operator(), user_id=user.id,  # type: ignore[arg-type]
                         site_id=site.id, role=role, reason=reason)  # type: ignore[arg-type]
    click.echo(f"{user.username} now has the role {role} at {site.code}.")


@role_cli.command("revoke")
@click.argument("username")
@click.argument("role")
@click.option("--site", "code", required=True, help="The site's code, e.g. BOS.")
@reason_option
def role_revoke(username: str, role: str, code: str, reason: str) -> None:
    """Revoke ROLE at a site."""
    with _changing() as session:
        user, site = _user(session, username), _site(session, code)
        grant = session.exec(select(RoleGrant).where(
            RoleGrant.user_id == user.id, RoleGrant.site_id == site.id,
            RoleGrant.role == role)).first()
        if grant is None or grant.id is None:
            raise click.ClickException(f"{user.username} has no role {role!r} at {site.code}.")
        users.revoke_role(session=session, now=_now(), actor=operator(), grant_id=grant.id,
                          reason=reason)
    click.echo(f"{user.username} no longer has the role {role} at {site.code}.")


# ---------------------------------------------------------------- tokens

@token_cli.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What device or system uses it.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(sorted(SCOPES)),
              help=f"What it may do (repeat for several); default: {' '.join(DEFAULT_SCOPES)}.")
@click.option("--days", type=int, default=None,
              help="How long it lives (1-730); default COI_API_TOKEN_DAYS.")
@reason_option
def token_create(username: str, name: str, scopes: tuple[str, ...], days: int | None,
                 reason: str) -> None:
    """Issue an API token acting as USERNAME. The token is printed once and never again."""
    with _changing() as session:
        user = _user(session, username)
        text, token = tokens.issue_token(
            session=session, now=_now(), actor=operator(), user_id=user.id,  # type: ignore[arg-type]
            name=name, days=days if days is not None else int(current_app.config["API_TOKEN_DAYS"]),
            scopes=scopes or DEFAULT_SCOPES, reason=reason)
    click.echo(f"Token {token.id} for {user.username} ({token.scopes}), valid until "
               f"{_when(token.expires_at)}. Copy it now: it is shown only once.")
    click.echo(text)


@token_cli.command("list")
@click.option("--user", "username", default=None, help="Only this person's tokens.")
def token_list(username: str | None) -> None:
    """API tokens (newest first): id, person, name, prefix, scopes, expiry, state."""
    now = _now()
    with snapshot(_engine()) as session:
        wanted = _user(session, username).id if username is not None else None
        found = tokens.list_tokens(session=session, actor=operator())
    rows = [("id", "user", "name", "prefix", "scopes", "created", "expires", "state")]
    rows += [(str(token.id), user.username, token.name, token.prefix + "...", token.scopes,
              _when(token.created_at), _when(token.expires_at), _token_state(token, now))
             for token, user in found if wanted is None or token.user_id == wanted]
    _table(rows, "No tokens.")


def _token_state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return f"revoked {_when(token.revoked_at)}"
    return "expired" if token.expires_at <= now else "valid"


@token_cli.command("revoke")
@click.argument("token_id", type=int)
@reason_option
def token_revoke(token_id: int, reason: str) -> None:
    """Revoke an API token: it is refused (401) from now on."""
    with _changing() as session:
        token = session.get(ApiToken, token_id)
        if token is not None and token.revoked_at is not None:
            raise click.ClickException(f"Token {token_id} was revoked already "
                                       f"({_when(token.revoked_at)}): nothing changed.")
        tokens.revoke_token(session=session, now=_now(), actor=operator(), token_id=token_id,
                            reason=reason)
    click.echo(f"Token {token_id} revoked.")


# ---------------------------------------------------------------- sessions

@session_cli.command("list")
@click.option("--user", "username", default=None, help="Only this person's sessions.")
def session_list(username: str | None) -> None:
    """Live browser sessions: id, person, started, last seen, address (never the key)."""
    with snapshot(_engine()) as session:
        wanted = _user(session, username).id if username is not None else None
        found = sessions.live(session=session, now=_now(), limits=session_limits(),
                              user_id=wanted)
    rows = [("id", "user", "started", "last seen", "address")]
    rows += [(str(row.id), user.username, _when(row.created_at), _when(row.last_seen_at),
              row.remote_addr or "-") for row, user in found]
    _table(rows, "No live sessions.")


@session_cli.command("end")
@click.argument("session_id", type=int, required=False)
@click.option("--user", "username", default=None, help="End every session of this person.")
@reason_option
def session_end(session_id: int | None, username: str | None, reason: str) -> None:
    """End one session (ID, from `session list`), or every session of a person (--user)."""
    if (session_id is None) == (username is None):
        raise click.UsageError("Give a session ID or --user USERNAME (one of them).")
    with _changing() as session:
        if username is not None:
            user = _user(session, username)
            ended = users.end_sessions(session=session, now=_now(), actor=operator(),
                                       user_id=user.id, reason=reason)  # type: ignore[arg-type]
            done = f"{ended} session(s) of {user.username} ended."
        else:
            assert session_id is not None
            users.end_session(session=session, now=_now(), actor=operator(),
                              session_id=session_id, limits=session_limits(), reason=reason)
            done = f"Session {session_id} ended."
    click.echo(done)

