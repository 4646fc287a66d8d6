"""Password hashing (werkzeug's scrypt). Tests lower the cost; nothing else should."""

from __future__ import annotations

import functools
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

METHOD = "scrypt"
MIN_LENGTH = 12


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=METHOD)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Does `password` match? `password_hash` None (no such account) costs one check against a
    dummy hash of the same method and cost, so an unknown username takes as long to refuse as
    a real one (no telling them apart by the time of the answer), and never matches."""
    if password_hash is None:
        check_password_hash(_dummy_hash(METHOD), password)
        return False
    return check_password_hash(password_hash, password)


@functools.cache
def _dummy_hash(method: str) -> str:
    # Made once per method (tests lower it), of a password nobody knows.
    return generate_password_hash(secrets.token_urlsafe(32), method=method)


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    if password.strip() != password:
        return "A password must not start or end with a space."
    return None
