"""Configuration: defaults, then `COI_*` environment variables, then the mapping given to
`create_app`. Secrets never live in the repository: in production they must be configured;
in development they are generated once under `instance/`."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

MODES = ("development", "testing", "production")

DEFAULTS: dict[str, Any] = {
    "MODE": "development",
    "DATABASE_URL": None,  # default: SQLite file under instance/
    "SECRET_KEY": None,
    "PHI_KEYS": None,  # Fernet keys, newest first; comma-separated in the environment
    "PHI_INDEX_KEY": None,  # key of the keyed hash that makes MRNs unique per site
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # bytes; larger requests get 413
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_LOCK_MINUTES": 15,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": 8 * 3600,
    "WTF_CSRF_TIME_LIMIT": 8 * 3600,
    "DEFAULT_TIMEZONE": "UTC",
    "API_TOKEN_DAYS": 365,
}

SECRET_NAMES = ("SECRET_KEY", "PHI_KEYS", "PHI_INDEX_KEY")


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


def load(instance_path: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    config = dict(DEFAULTS)
    config.update(_from_environment())
    config.update(overrides or {})
    mode = config["MODE"]
    if mode not in MODES:
        raise ConfigError(f"COI_MODE is {mode!r}; use one of: {', '.join(MODES)}.")
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = "sqlite:///" + str(Path(instance_path) / "coi.sqlite3")
    if mode == "development" and any(not config.get(name) for name in SECRET_NAMES):
        _fill_development_secrets(config, Path(instance_path) / "secrets.json")
    missing = [name for name in SECRET_NAMES if not config.get(name)]
    if missing:
        raise ConfigError(_missing_secrets_message(mode, missing))
    config["PHI_KEYS"] = _key_list(config["PHI_KEYS"])
    config["SESSION_COOKIE_SECURE"] = config.get("SESSION_COOKIE_SECURE", mode == "production")
    return config


def _from_environment() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in os.environ.items():
        if not name.startswith("COI_") or name.startswith("COI_TEST_"):
            continue
        key = name[len("COI_") :]
        default = DEFAULTS.get(key)
        if isinstance(default, bool):
            found[key] = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            try:
                found[key] = int(value)
            except ValueError as exc:
                raise ConfigError(f"{name} must be a whole number, not {value!r}.") from exc
        else:
            found[key] = value
    return found


def _key_list(value: str | list[str]) -> list[str]:
    keys = [k.strip() for k in value.split(",")] if isinstance(value, str) else list(value)
    keys = [k for k in keys if k]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError as exc:
            raise ConfigError(
                f"PHI key number {position} is not a valid key (32 url-safe base64-encoded "
                "bytes). Generate one with: python -c \"from cryptography.fernet import "
                'Fernet; print(Fernet.generate_key().decode())"'
            ) from exc
    if not keys:
        raise ConfigError("COI_PHI_KEYS is empty: give at least one key.")
    return keys


def _fill_development_secrets(config: dict[str, Any], path: Path) -> None:
    """Development mode keeps its own secrets in instance/secrets.json, made on first start."""
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        stored = {
            "SECRET_KEY": secrets.token_urlsafe(32),
            "PHI_KEYS": [Fernet.generate_key().decode()],
            "PHI_INDEX_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(stored, out, indent=2)
    for name in SECRET_NAMES:
        if not config.get(name):
            config[name] = stored[name]


def _missing_secrets_message(mode: str, missing: list[str]) -> str:
    names = ", ".join("COI_" + name for name in missing)
    return (
        f"Refusing to start in {mode} mode: {names} not set. "
        "Patient data is encrypted with keys that must come from configuration, never from "
        "the repository. Set COI_SECRET_KEY to a long random string, COI_PHI_KEYS to one or "
        "more Fernet keys (newest first, comma-separated) and COI_PHI_INDEX_KEY to a random "
        "url-safe base64 string. Generate a Fernet key with: python -c \"from "
        'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    )
