"""Who may do what, where: the single place where access is decided.

Every view declares a permission with `@permission(...)`; the request hook installed by
`install()` refuses any endpoint that declares none (deny by default). Site-scoped checks
(this case's site, this patient's site) are asked here too, by the services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from coi.core.errors import Forbidden

PUBLIC = "public"  # no login needed (login page, health check, OpenAPI document)
AUTHENTICATED = "authenticated"  # any logged-in user, whatever their roles

# permission -> roles that hold it (at a site). PHI permissions are further limited to the
# patient's treating site by the services that show or change it.
POLICY: dict[str, frozenset[str]] = {
    "case.list": frozenset({"site_staff", "coordinator", "qa"}),
    "case.view": frozenset({"site_staff", "coordinator", "qa"}),
    "case.enrol": frozenset({"site_staff"}),
    "unit.register": frozenset({"site_staff", "coordinator"}),  # coordinators: drug product
    "patient.view": frozenset({"site_staff", "coordinator", "qa"}),
    "patient.correct": frozenset({"site_staff"}),
    "user.manage": frozenset({"admin"}),
    "token.manage": frozenset({"admin"}),
    "audit.view": frozenset({"admin", "qa"}),
    "label.print": frozenset({"site_staff", "coordinator"}),
    "label.revoke": frozenset({"site_staff", "qa"}),
    # Scanning is judged step by step against the route (roles, site kinds, custody).
    "scan": frozenset({"site_staff", "coordinator", "courier", "qa"}),
    # Shipments: staff see those of their sites' cases; couriers carry them all and see them
    # all (a shipment shows the COI identifier, never the patient).
    "shipment.view": frozenset({"site_staff", "coordinator", "qa", "courier"}),
    "shipment.view_any": frozenset({"courier"}),
    "shipment.open": frozenset({"site_staff", "coordinator"}),  # at the leg's origin
    "logger.upload": frozenset({"site_staff", "coordinator", "courier"}),
    # Alarms: seen by the people of the sites they concern (couriers: shipment alarms);
    # acknowledged by whoever takes them in hand; resolved, with an e-signature, by QA.
    "alarm.view": frozenset({"site_staff", "coordinator", "qa", "courier"}),
    "alarm.acknowledge": frozenset({"site_staff", "coordinator", "qa", "courier"}),
    "alarm.resolve": frozenset({"qa"}),
    "dashboard.view": frozenset({"coordinator", "qa", "site_staff"}),
    # The development outbox holds every site's alarm e-mails: no site role reads it, only a
    # global administrator (GLOBAL_ADMIN_PERMISSIONS).
    "outbox.view": frozenset(),
    # Told when the scheduler is silent (deadlines unchecked, nobody told of alarms): the
    # people who follow cases across sites and can get an administrator to act.
    "scheduler.watch": frozenset({"coordinator", "qa"}),
}


# Global administration is its own explicit role (app_user.global_admin), held by nobody by
# default: it manages every site's accounts and reads every site's audit trail, never PHI.
GLOBAL_ADMIN_PERMISSIONS = frozenset({"user.manage", "token.manage", "audit.view", "outbox.view",
                                      "scheduler.watch"})

# What an API token may be used for. A token acts as the person who created it, and only
# within its scopes; every other permission (administration, corrections, signatures at the
# desk) is for people in a browser session.
SCOPES: dict[str, frozenset[str]] = {
    "read": frozenset({"case.list", "case.view", "patient.view", "shipment.view",
                       "shipment.view_any", "alarm.view", "dashboard.view"}),
    "scan": frozenset({"scan"}),
    "upload": frozenset({"logger.upload"}),
    "enrol": frozenset({"case.enrol", "unit.register"}),
}
DEFAULT_SCOPES = ("read", "scan", "upload")


@dataclass(frozen=True, slots=True)
class Actor:
    """The person (or machine, through a token) doing something, with their role grants."""

    user_id: int
    username: str
    full_name: str
    grants: frozenset[tuple[int, str]]  # (site id, role)
    timezone: str = "UTC"
    token_id: int | None = None
    # The channel the actor came through, as audit rows name it: "session 12", "token 7 (name)".
    via: str | None = None
    scopes: frozenset[str] | None = None  # a token's scopes; None: a person in a session
    global_admin: bool = False
    site_names: dict[int, str] = field(default_factory=dict, compare=False)
    site_codes: dict[int, str] = field(default_factory=dict, compare=False)  # for log lines

    def roles(self) -> set[str]:
        return {role for _site, role in self.grants}


@dataclass(frozen=True, slots=True)
class Operator:
    """The installation's operator on the command line (`flask coi user ...`). Whoever can
    run those commands holds the database and the keys, so the operator acts as a global
    administrator (accounts, grants, tokens, sessions, the audit trail; never PHI): the
    services' checks see `global_admin` and no site grant. It has no account: the audit trail
    names it (`name`, e.g. the operating-system user and host) and its channel (`via`)."""

    name: str
    via: str = "command line"
    user_id: ClassVar[None] = None  # no account: never "yourself", never an audit actor_id
    global_admin: ClassVar[bool] = True
    grants: ClassVar[frozenset[tuple[int, str]]] = frozenset()
    scopes: ClassVar[None] = None  # not a token


def allowed(actor: Actor | Operator | None, name: str, site_id: int | None = None) -> bool:
    """May `actor` use permission `name` at `site_id` (or at any of their sites, if None)?"""
    if name == PUBLIC:
        return True
    if actor is None:
        return False
    if name == AUTHENTICATED:
        return True
    if actor.global_admin and name in GLOBAL_ADMIN_PERMISSIONS:
        return True
    roles = POLICY[name]
    return any(role in roles and site_id in (None, site) for site, role in actor.grants)


def within_scopes(actor: Actor, name: str) -> bool:
    """May the channel `actor` came through be used for permission `name`? A person in a
    session: yes; a token: only within its scopes. Asked once per request, of the endpoint's
    declared permission (the roles then decide, site by site, as for a person)."""
    if actor.scopes is None or name in (PUBLIC, AUTHENTICATED):
        return True
    return any(name in SCOPES[scope] for scope in actor.scopes)


def require(actor: Actor | Operator | None, name: str, site_id: int | None = None, *, doing: str) -> None:
    if not allowed(actor, name, site_id):
        raise Forbidden(f"You are not allowed to {doing}.")


def sites_for(actor: Actor, name: str) -> set[int]:
    """The sites at which `actor` holds permission `name` through a site grant (a global
    administrator's reach is `allowed`'s business: callers that list sites ask it)."""
    roles = POLICY[name]
    return {site for site, role in actor.grants if role in roles}


def allowed_at_any(actor: Actor | None, name: str, site_ids: Iterable[int]) -> bool:
    return any(allowed(actor, name, site) for site in site_ids)


F = TypeVar("F", bound=Callable[..., Any])


def permission(name: str) -> Callable[[F], F]:
    """Declare the permission a view needs. Undeclared views are refused."""
    if name not in POLICY and name not in (PUBLIC, AUTHENTICATED):
        raise ValueError(f"unknown permission {name!r}")

    def mark(view: F) -> F:
        view.coi_permission = name  # type: ignore[attr-defined]
        return view

    return mark


def declared_permission(view: Callable[..., Any] | None) -> str | None:
    return getattr(view, "coi_permission", None)
