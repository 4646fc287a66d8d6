from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
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
