from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is a reserved word in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    full_name: str = Field(max_length=200)  # the printed name on e-signatures
    email: str | None = Field(default=None, max_length=254)
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    # Administers every site's accounts (never PHI): its own explicit role, not a site grant.
    global_admin: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # Set by an administrator's reset: the next login must choose a new password.
    must_change_password: bool = Field(default=False,
                                       sa_column_kwargs={"server_default": false()})
    password_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RoleGrant(SQLModel, table=True):
    """A user holds a role at one site; access is decided from these rows."""

    __tablename__ = "role_grant"
    __table_args__ = (UniqueConstraint("user_id", "site_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    role: str = Field(max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)


class LoginAttempt(SQLModel, table=True):
    """Every login attempt, kept: throttling counts recent failures across all web workers."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_username_at", "username", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
    succeeded: bool
    remote_addr: str | None = Field(default=None, max_length=64)
    kind: str = Field(default="login", max_length=16,  # login, signing
                      sa_column_kwargs={"server_default": "login"})


class ApiToken(SQLModel, table=True):
    """A machine's credential. Only a SHA-256 of the token is stored; the token is shown once."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=12)  # first characters, so people can tell tokens apart
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(foreign_key="app_user.id")
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What the token may do: space-separated of read, scan, upload (coi.core.access.SCOPES).
    scopes: str = Field(default="read", max_length=64,
                        sa_column_kwargs={"server_default": "read scan upload"})


class WebSession(SQLModel, table=True):
    """A browser's login, kept on the server: the cookie holds only a random key whose
    SHA-256 is stored here. Ended by logout, password change, an administrator, or timeouts."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end_reason: str | None = Field(default=None, max_length=32)  # logout, idle, lifetime, ...
    remote_addr: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=200)
