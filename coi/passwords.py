"""Password hashing (werkzeug's scrypt; tests lower the cost, nothing else should) and the
rules a new password must meet (21 CFR 11.300): at least 12 characters, not a common or
easily guessed password (zxcvbn's offline lists and pattern checks), not the person's own
username or name."""

from __future__ import annotations

import functools
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

METHOD = "scrypt"
MIN_LENGTH = 12
MAX_LENGTH = 200  # longer is no safer, and the strength check's cost grows with length
MIN_SCORE = 3  # zxcvbn's 0-4: 3 is "safely unguessable: moderate protection from offline attack"


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


def password_problem(password: str, *, username: str = "", full_name: str = "") -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"A password has at most {MAX_LENGTH} characters."
    if password.strip() != password:
        return "A password must not start or end with a space."
    lowered = password.lower()
    own = [part for part in [username.lower(), *full_name.lower().split()] if len(part) >= 3]
    if any(part in lowered for part in own):
        return "A password must not contain your username or your name."
    from zxcvbn import zxcvbn  # loads its word lists (~1 MB) only when a password is set

    result = zxcvbn(password, user_inputs=own)
    if result["score"] < MIN_SCORE:
        hint = result["feedback"].get("warning") or "It is too easy to guess."
        return f"This password is too easy to guess: {hint.rstrip('.')}. Use a longer phrase of " \
               "uncommon words."
    return None
