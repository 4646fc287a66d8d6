"""Who is told about an alarm, when it escalates, and where notifications go: settings read
from configuration once, handed to the alarm service and the scheduler's jobs. Pure data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from coi.core.vocabulary import ROLES

SEVERITY_ORDER = ("critical", "major", "minor")


class AlertingError(ValueError):
    """The alerting configuration is not valid; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Level:
    """One escalation group: these roles, at the alarm's own sites ("alarm") or at every
    site ("all"), told when the alarm reaches this level. `after` says how long the alarm
    may stay unacknowledged at this level before the next group is told (None: last)."""

    roles: tuple[str, ...]
    scope: str = "alarm"
    after: dict[str, timedelta] = field(default_factory=dict)

    def wait(self, severity: str) -> timedelta | None:
        return self.after.get(severity)


@dataclass(frozen=True, slots=True)
class Webhook:
    name: str
    url: str
    secret: str  # HMAC-SHA256 key; the receiver checks X-COI-Signature with it


@dataclass(frozen=True, slots=True)
class Mail:
    host: str
    port: int = 25
    sender: str = "coi-alarms@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 15.0


@dataclass(frozen=True, slots=True)
class Alerting:
    levels: tuple[Level, ...]
    webhooks: tuple[Webhook, ...] = ()
    mail: Mail | None = None  # None: no SMTP server configured, e-mails are not sent
    # Development: e-mails are kept in the outbox table (coi.services.outbox), never sent.
    outbox: bool = False
    base_url: str = "http://127.0.0.1:5000"  # links in messages point here
    max_attempts: int = 10  # a notification is given up after this many failed attempts
    # While a shipment is in transit, logger data older than this counts as stopped.
    logger_silence: timedelta = timedelta(minutes=60)

    def level(self, number: int) -> Level | None:
        return self.levels[number] if 0 <= number < len(self.levels) else None

    def retry_after(self, attempts: int) -> timedelta:
        """The pause after the `attempts`-th failure: 1, 2, 4 ... minutes, at most an hour."""
        return timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


# The default: the alarm's sites' staff, coordinators and couriers first; QA when nobody
# acknowledges in time; then QA at every site (the quality unit as a whole).
DEFAULT_LEVELS: list[dict[str, Any]] = [
    {"roles": ["site_staff", "coordinator", "courier"], "scope": "alarm",
     "after_minutes": {"critical": 15, "major": 60, "minor": 240}},
    {"roles": ["qa"], "scope": "alarm", "after_minutes": {"critical": 30, "major": 120, "minor": 480}},
    {"roles": ["qa"], "scope": "all"},
]

DEFAULT = Alerting(levels=())  # replaced by parse_levels(DEFAULT_LEVELS) below


def parse_levels(raw: object) -> tuple[Level, ...]:
    """`[{"roles": [...], "scope": "alarm"|"all", "after_minutes": {severity: minutes}}]`;
    every level but the last needs a wait for every severity."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise AlertingError(f"COI_ALARM_ESCALATION is not JSON: {error}") from None
    if not isinstance(raw, list) or not raw:
        raise AlertingError("COI_ALARM_ESCALATION must be a non-empty JSON list of levels")
    levels = []
    for number, entry in enumerate(raw):
        where = f"COI_ALARM_ESCALATION level {number}"
        if not isinstance(entry, dict) or set(entry) - {"roles", "scope", "after_minutes"}:
            raise AlertingError(f"{where}: use the keys roles, scope, after_minutes")
        roles = entry.get("roles")
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise AlertingError(f"{where}: `roles` must list some of {', '.join(ROLES)}")
        scope = entry.get("scope", "alarm")
        if scope not in ("alarm", "all"):
            raise AlertingError(f"{where}: `scope` must be \"alarm\" or \"all\"")
        after = entry.get("after_minutes", {})
        last = number == len(raw) - 1
        if not isinstance(after, dict) or (not last and set(after) != set(SEVERITY_ORDER)) or any(
                not isinstance(v, int | float) or v <= 0 for v in after.values()):
            raise AlertingError(f"{where}: `after_minutes` must give positive minutes for "
                                f"{', '.join(SEVERITY_ORDER)}" + (" (or be left out on the last level)"
                                                                  if last else ""))
        levels.append(Level(tuple(roles), scope, {k: timedelta(minutes=v) for k, v in after.items()}))
    return tuple(levels)


def parse_webhooks(raw: object) -> tuple[Webhook, ...]:
    """`[{"name": "lims", "url": "https://...", "secret": "..."}]` (JSON in the environment)."""
    if raw in (None, ""):
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise AlertingError(f"COI_ALARM_WEBHOOKS is not JSON: {error}") from None
    if not isinstance(raw, list):
        raise AlertingError("COI_ALARM_WEBHOOKS must be a JSON list of {name, url, secret}")
    hooks = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"name", "url", "secret"} or not all(
                isinstance(entry[k], str) and entry[k] for k in entry):
            raise AlertingError("each COI_ALARM_WEBHOOKS entry needs exactly name, url and secret")
        if not entry["url"].startswith(("http://", "https://")):
            raise AlertingError(f"webhook {entry['name']!r}: the url must start with http:// or https://")
        if len(entry["secret"]) < 16:
            raise AlertingError(f"webhook {entry['name']!r}: the secret must be at least 16 characters")
        hooks.append(Webhook(entry["name"], entry["url"], entry["secret"]))
    if len({h.name for h in hooks}) != len(hooks):
        raise AlertingError("COI_ALARM_WEBHOOKS: webhook names must be unique")
    return tuple(hooks)


def parse_mail(server: str | None, sender: str | None, username: str | None, password: str | None,
               starttls: bool) -> Mail | None:
    """`COI_MAIL_SERVER=host[:port]`; unset: no e-mail."""
    if not server:
        return None
    host, _, port = server.partition(":")
    if not host or (port and not port.isdigit()):
        raise AlertingError(f"COI_MAIL_SERVER {server!r} is not host[:port]")
    return Mail(host, int(port or 25), sender or "coi-alarms@localhost", username or None,
                password or None, starttls)


DEFAULT = Alerting(levels=parse_levels(DEFAULT_LEVELS))
