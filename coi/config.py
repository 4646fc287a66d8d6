"""Configuration: defaults, then `COI_*` environment variables, then the mapping given to
`create_app`. Secrets never live in the repository: in production they must be configured;
in development they are generated once under `instance/`."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coi import logs
from coi.core import alerting
from coldchain import Profile, load_profiles

MODES = ("development", "testing", "production")

DEFAULTS: dict[str, Any] = {
    "MODE": "development",
    "DATABASE_URL": None,  # default: SQLite file under instance/
    "SECRET_KEY": None,
    "PHI_KEYS": None,  # Fernet keys, newest first; comma-separated in the environment
    "PHI_INDEX_KEY": None,  # key of the keyed hash that makes MRNs unique per site
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # bytes; larger requests get 413
    # Reverse proxies trusted for X-Forwarded-*: "x_for=1,x_proto=1,x_host=1" (coi/security.py).
    # Off by default: without a proxy those headers come from the client and are ignored.
    "PROXY_FIX": "",
    # Passwords (logins and signatures) and rate limits: coi/throttle.py.
    "LOGIN_MAX_FAILURES": 5,  # failures of one account before its delays start
    "LOGIN_ADDRESS_MAX_FAILURES": 20,  # failures from one address (any accounts) before delays
    "LOGIN_MAX_DELAY_SECONDS": 900,  # the delays double from 1 s up to this
    "LOGIN_FAILURES_KEPT_MINUTES": 60,  # a counter starts again this long after its last failure
    "RATE_LIMIT_STORAGE": "",  # memory:// or redis://host:6379/0; empty: memory, except production
    "RATE_LIMIT_KEY_PREFIX": "coi:",  # Redis keys start with this (installations sharing a server)
    "VERIFY_REQUESTS_PER_MINUTE": 30,  # per address, /verify and /V/... together; 0: no limit
    "API_TOKEN_REQUESTS_PER_MINUTE": 600,  # per API token; 0: no limit
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # Browser sessions live on the server (coi/services/sessions.py): they end after this long
    # without a request, and this long after login whatever happens.
    "SESSION_IDLE_MINUTES": 15,
    "SESSION_LIFETIME_HOURS": 12,
    "PASSWORD_MAX_AGE_DAYS": 0,  # password aging: a password older than this must change; 0: off
    "DEFAULT_TIMEZONE": "UTC",
    "API_TOKEN_DAYS": 90,  # a new API token's default lifetime
    # The installation's Ed25519 private key (32 bytes, url-safe base64): it signs every
    # label's QR code and every ledger checkpoint. Formerly LABEL_SIGNING_KEY.
    "INSTALLATION_SIGNING_KEY": None,
    "LABEL_VERIFY_BASE_URL": None,  # where phones open a label's QR; development: local server
    "ZPL_PRINTERS": "",  # "SITECODE=host[:port],..." Zebra printers reached on raw port 9100
    "LABEL_UPLOAD_MAX_BYTES": 8 * 1024 * 1024,  # photos uploaded to the public verify page
    "LABEL_IMAGE_MAX_PIXELS": 40_000_000,  # larger images are refused (decompression bombs)
    "LOGGER_UPLOAD_MAX_BYTES": 64 * 1024 * 1024,  # logger files (CSV, TXT, EPCIS, JSON readings)
    "TEMPERATURE_PROFILES": None,  # a TOML file of temperature profiles; default: the built-in ones
    # Alarms (coi/core/alerting.py): escalation levels and webhooks as JSON; SMTP for e-mail.
    "ALARM_ESCALATION": None,  # default: coi.core.alerting.DEFAULT_LEVELS
    "ALARM_WEBHOOKS": "",  # [{"name": ..., "url": ..., "secret": ...}]
    "MAIL_SERVER": "",  # host[:port]; empty: no e-mail is sent
    "MAIL_FROM": "coi-alarms@localhost",
    "MAIL_USERNAME": "",
    "MAIL_PASSWORD": "",
    "MAIL_STARTTLS": False,
    # Development: alarm e-mails kept in the outbox table (/admin/outbox), not sent. None: on in
    # development mode when MAIL_SERVER is empty, off otherwise.
    "MAIL_OUTBOX": None,
    "NOTIFY_MAX_ATTEMPTS": 10,
    "LOGGER_SILENCE_MINUTES": 60,  # in transit, logger data older than this has "stopped"
    # The scheduler process (flask coi scheduler) and the dashboard.
    "SWEEP_INTERVAL_SECONDS": 60,
    "DELIVERY_INTERVAL_SECONDS": 15,
    # Readiness (/healthz/ready) and a banner fail when the scheduler is silent; off where an
    # installation runs the jobs some other way and watches them itself.
    "SCHEDULER_EXPECTED": True,
    "SCHEDULER_RUNS_KEPT_DAYS": 30,  # the scheduler's heartbeat: runs older are pruned by the sweep
    "DASHBOARD_REFRESH_SECONDS": 30,
    # Logs (coi/logs.py) and the Prometheus metrics at /metrics (coi/metrics.py).
    "LOG_FORMAT": "json",  # json (one object per line) or text (a developer's terminal)
    "LOG_LEVEL": "INFO",
    "METRICS_TOKEN": "",  # bearer token for /metrics; empty: loopback clients only
}

# How a setting says yes or no in the environment.
YES = ("1", "true", "yes", "on")
NO = ("0", "false", "no", "off")

SECRET_NAMES = ("SECRET_KEY", "PHI_KEYS", "PHI_INDEX_KEY", "INSTALLATION_SIGNING_KEY")
# Settings renamed: the old name is still read (with a warning) so that an upgrade keeps its key.
RENAMED = {"LABEL_SIGNING_KEY": "INSTALLATION_SIGNING_KEY"}

log = logging.getLogger(__name__)


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


def load(instance_path: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    config = dict(DEFAULTS)
    config.update(_from_environment())
    config.update(overrides or {})
    _take_old_names(config)
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
    _check_signing_key(config["INSTALLATION_SIGNING_KEY"])
    if not config["LABEL_VERIFY_BASE_URL"]:
        if mode == "production":
            raise ConfigError("COI_LABEL_VERIFY_BASE_URL is not set: labels carry a link to the "
                              "public verify page, e.g. https://coi.example.org")
        config["LABEL_VERIFY_BASE_URL"] = local_url()
    if mode == "production":
        _check_secret_key(config["SECRET_KEY"])
        _check_verify_base_url(config["LABEL_VERIFY_BASE_URL"])
    config["ZPL_PRINTERS"] = _printers(config["ZPL_PRINTERS"])
    secure = config.get("SESSION_COOKIE_SECURE", mode == "production")
    config["SESSION_COOKIE_SECURE"] = (secure.lower() in YES
                                       if isinstance(secure, str) else bool(secure))
    # The cookie and its CSRF token last no longer than the server-side session may.
    lifetime = int(config["SESSION_LIFETIME_HOURS"]) * 3600
    config["PERMANENT_SESSION_LIFETIME"] = config["WTF_CSRF_TIME_LIMIT"] = lifetime
    _check_rate_limit_storage(config["RATE_LIMIT_STORAGE"])
    config["MAIL_OUTBOX"] = _mail_outbox(config["MAIL_OUTBOX"], mode=mode,
                                         server=config.get("MAIL_SERVER"))
    if int(config["SCHEDULER_RUNS_KEPT_DAYS"]) < 1:
        raise ConfigError("COI_SCHEDULER_RUNS_KEPT_DAYS must be at least 1: readiness and the "
                          "banner judge the scheduler by its latest recorded run.")
    config["LOG_LEVEL"] = str(config["LOG_LEVEL"]).upper()
    problem = logs.check(config["LOG_FORMAT"], config["LOG_LEVEL"])
    if problem:
        raise ConfigError(problem)
    return config


def _mail_outbox(value: str | bool | None, *, mode: str, server: str | None) -> bool:
    """Whether alarm e-mails are kept in the development outbox instead of sent. Refused where
    it would silently keep alarms from people: in production, or beside a mail server."""
    if value is None or value == "":
        return mode == "development" and not server
    if isinstance(value, str):
        if value.lower() not in YES + NO:
            raise ConfigError(f"COI_MAIL_OUTBOX is {value!r}; use on or off (or leave it unset).")
        value = value.lower() in YES
    if value and mode == "production":
        raise ConfigError("Refusing to start in production mode: COI_MAIL_OUTBOX is on, so alarm "
                          "e-mails would be kept in a table and never reach anyone. Unset it and "
                          "configure COI_MAIL_SERVER.")
    if value and server:
        raise ConfigError("COI_MAIL_OUTBOX is on and COI_MAIL_SERVER is set: alarm e-mails go to "
                          "one or the other. Unset one of them.")
    return bool(value)


def _check_rate_limit_storage(url: str) -> None:
    if url and url != "memory://" and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"COI_RATE_LIMIT_STORAGE is {url!r}; use memory:// or a Redis URL "
                          "such as redis://127.0.0.1:6379/0.")


def _take_old_names(config: dict[str, Any]) -> None:
    for old, new in RENAMED.items():
        value = config.pop(old, None)
        if not value:
            continue
        if config.get(new) and config[new] != value:
            raise ConfigError(f"COI_{old} and COI_{new} are both set, to different values: "
                              f"{old} is the old name of {new}; keep only COI_{new}.")
        log.warning("COI_%s is the old name of COI_%s: rename it.", old, new)
        config[new] = value


def _from_environment() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in os.environ.items():
        if not name.startswith("COI_") or name.startswith("COI_TEST_"):
            continue
        key = name[len("COI_") :]
        default = DEFAULTS.get(key)
        if isinstance(default, bool):
            found[key] = value.lower() in YES
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


def signing_key_from(text: str) -> Ed25519PrivateKey:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return Ed25519PrivateKey.from_private_bytes(raw)


def _check_signing_key(text: str) -> None:
    try:
        signing_key_from(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "COI_INSTALLATION_SIGNING_KEY is not an Ed25519 private key (32 url-safe base64-encoded "
            "bytes). Generate one with: python -c \"import base64, os; "
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"") from exc


# Fewer distinct characters than this is no random key. Not 16: a random key in hex has at
# most 16, and `secrets.token_hex(16)` shows fewer than 10 in about 1 of 10,000 draws.
SECRET_KEY_MIN_DISTINCT = 10
SECRET_KEY_MIN_BYTES = 32


def _check_secret_key(key: str | bytes) -> None:
    """Production signs session cookies with a key that cannot be guessed: at least 32 bytes,
    not one character or one short piece repeated, not a handful of characters."""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < SECRET_KEY_MIN_BYTES:
        problem = f"is {len(raw)} bytes long; it must be at least {SECRET_KEY_MIN_BYTES}"
    elif len(set(raw)) < SECRET_KEY_MIN_DISTINCT or _repeats(raw):
        problem = "is not random (too few different characters, or a short piece repeated)"
    else:
        return
    raise ConfigError(f"Refusing to start in production mode: COI_SECRET_KEY {problem}. It signs the "
                      f"session cookies: set it to at least {SECRET_KEY_MIN_BYTES} random bytes, "
                      "e.g. the output of: python -c \"import secrets; print(secrets.token_urlsafe(48))\"")


def _repeats(raw: bytes) -> bool:
    """`raw` is a shorter piece written again and again ("abcabcabc", "password" * 4)."""
    return any(raw == (raw[:period] * (len(raw) // period + 1))[:len(raw)]
               for period in range(1, len(raw) // 2 + 1))


def local_url() -> str:
    """Where a development server on this machine answers: port PORT (what `PORT=8000 make
    run` gives the web server), else 5000. Labels' links and alarm e-mails of a development
    machine point there unless COI_LABEL_VERIFY_BASE_URL says otherwise."""
    port = os.environ.get("PORT", "").strip() or "5000"
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"PORT is {port!r}: the development server's port, a number from 1 to 65535.")
    return f"http://127.0.0.1:{int(port)}"


def _check_verify_base_url(url: str) -> None:
    parts = urlsplit(str(url))
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigError(f"Refusing to start in production mode: COI_LABEL_VERIFY_BASE_URL is {url!r}; "
                          "it must be the https:// address of this installation's public verify "
                          "page, e.g. https://coi.example.org: labels and alarm messages link to "
                          "it, and a link over plain http can be read and altered on the way.")


def _printers(value: str | dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """'BOS=10.0.0.5,BER=zebra-ber.local:9100' -> {"BOS": ("10.0.0.5", 9100), ...}"""
    if isinstance(value, dict):
        return value
    printers: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        site, _, address = item.partition("=")
        host, _, port = address.partition(":")
        if not site or not host or (port and not port.isdigit()):
            raise ConfigError(f"COI_ZPL_PRINTERS entry {item!r} is not SITECODE=host[:port].")
        printers[site.strip()] = (host.strip(), int(port or 9100))
    return printers


def _fill_development_secrets(config: dict[str, Any], path: Path) -> None:
    """Development mode keeps its own secrets in instance/secrets.json (mode 0600), made on
    first start; a secret added by a later version is added to the file."""
    stored = json.loads(path.read_text()) if path.exists() else {}
    for old, new in RENAMED.items():  # a file written before a rename keeps its secret
        if old in stored and new not in stored:
            stored[new] = stored[old]
    made = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(32),
        "PHI_KEYS": lambda: [Fernet.generate_key().decode()],
        "PHI_INDEX_KEY": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "INSTALLATION_SIGNING_KEY": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    missing = [name for name in made if name not in stored]
    if missing:
        stored.update({name: made[name]() for name in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(stored, out, indent=2)
    for name in SECRET_NAMES:
        if not config.get(name):
            config[name] = stored[name]


def _missing_secrets_message(mode: str, missing: list[str]) -> str:
    names = ", ".join("COI_" + name for name in missing)
    return (
        f"Refusing to start in {mode} mode: {names} not set. "
        "Patient data and labels are protected with keys that must come from configuration, "
        "never from the repository. Set COI_SECRET_KEY to a long random string, COI_PHI_KEYS "
        "to one or more Fernet keys (newest first, comma-separated), COI_PHI_INDEX_KEY and "
        "COI_INSTALLATION_SIGNING_KEY to 32 random bytes in url-safe base64. Generate a Fernet key "
        "with: python -c \"from cryptography.fernet import Fernet; "
        'print(Fernet.generate_key().decode())"'
    )


def temperature_profiles(path: str | None) -> dict[str, Profile]:
    """The temperature profiles shipments are judged against: the built-in ones, or those of
    the TOML file configured (same shape as coldchain/profiles.toml)."""
    try:
        return load_profiles(Path(path) if path else None)
    except (OSError, ValueError) as error:
        raise ConfigError(f"COI_TEMPERATURE_PROFILES: {error}") from None


def alerting_settings(config: dict[str, Any]) -> alerting.Alerting:
    """Escalation levels, webhooks and the mail server, checked once at start."""
    try:
        levels = (alerting.parse_levels(config["ALARM_ESCALATION"])
                  if config.get("ALARM_ESCALATION") else alerting.DEFAULT.levels)
        return alerting.Alerting(
            levels=levels,
            webhooks=alerting.parse_webhooks(config.get("ALARM_WEBHOOKS")),
            mail=alerting.parse_mail(config.get("MAIL_SERVER"), config.get("MAIL_FROM"),
                                     config.get("MAIL_USERNAME"), config.get("MAIL_PASSWORD"),
                                     bool(config.get("MAIL_STARTTLS"))),
            outbox=bool(config.get("MAIL_OUTBOX")),
            base_url=str(config["LABEL_VERIFY_BASE_URL"]).rstrip("/"),
            max_attempts=int(config["NOTIFY_MAX_ATTEMPTS"]),
            logger_silence=timedelta(minutes=int(config["LOGGER_SILENCE_MINUTES"])),
        )
    except alerting.AlertingError as error:
        raise ConfigError(str(error)) from None
