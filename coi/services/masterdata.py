"""Sites, products and product routes: master data, each change audited."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func
from sqlmodel import Session, col, select

from coi.core.access import Actor, require
from coi.core.errors import Conflict, InvalidInput, NotFound
from coi.core.identifiers import CoiId, IdentifierError
from coi.core.route import Route, RouteError, parse_route
from coi.models import SITE_KINDS, Case, Product, ProductRoute, Site
from coi.services import audit

T = TypeVar("T", Site, Product)


def create_site(
    *, session: Session, now: datetime, actor: Actor | None, code: str, name: str,
    kinds: list[str], timezone: str, facility_id: str | None, reason: str,
) -> Site:
    if actor is not None:
        require(actor, "user.manage", doing="create sites")
    errors = []
    if not kinds or any(kind not in SITE_KINDS for kind in kinds):
        errors.append({"field": "kinds", "message": f"Choose from: {', '.join(SITE_KINDS)}."})
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append({"field": "timezone", "message": f"'{timezone}' is not an IANA time zone."})
    if facility_id is not None:
        try:
            CoiId.issue(facility_id, 2000, 1)
        except IdentifierError as exc:
            errors.append({"field": "facility_id", "message": exc.message})
    if errors:
        raise InvalidInput("The site was not created: " + errors[0]["message"], errors)
    if session.exec(select(Site).where(Site.code == code)).first():
        raise Conflict(f"A site with code {code} exists.")
    site = Site(code=code, name=name, kinds=" ".join(kinds), timezone=timezone,
                facility_id=facility_id, created_at=now)
    session.add(site)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="site", entity_id=site.code,
                 action="create", reason=reason,
                 changes={"name": (None, name), "kinds": (None, site.kinds),
                          "timezone": (None, timezone), "facility_id": (None, facility_id)})
    return site


def create_product(
    *, session: Session, now: datetime, actor: Actor | None, code: str, name: str,
    description: str, reason: str,
) -> Product:
    if actor is not None:
        require(actor, "user.manage", doing="create products")
    if session.exec(select(Product).where(Product.code == code)).first():
        raise Conflict(f"A product with code {code} exists.")
    product = Product(code=code, name=name, description=description, created_at=now)
    session.add(product)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="product", entity_id=code,
                 action="create", reason=reason,
                 changes={"name": (None, name), "description": (None, description)})
    return product


def add_route_version(
    *, session: Session, now: datetime, actor: Actor | None, definition: str, reason: str,
) -> ProductRoute:
    """Store a new version of a product's route. Versions are numbered by the definition and
    must follow the latest one; an existing version is never replaced."""
    if actor is not None:
        require(actor, "user.manage", doing="change product routes")
    try:
        route = parse_route(definition)
    except RouteError as exc:
        raise InvalidInput(f"The route was not stored: {exc}") from exc
    product = session.exec(select(Product).where(Product.code == route.product)).first()
    if product is None:
        raise NotFound(f"The route names product {route.product}, which does not exist.")
    latest = session.exec(select(func.max(ProductRoute.version))
                          .where(ProductRoute.product_id == product.id)).one() or 0
    if route.version != latest + 1:
        raise Conflict(f"The route says version {route.version}; the next version of "
                       f"{product.code} must be {latest + 1}.")
    row = ProductRoute(product_id=product.id, version=route.version,  # type: ignore[arg-type]
                       definition=definition,
                       sha256=hashlib.sha256(definition.encode()).hexdigest(), created_at=now)
    session.add(row)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="product", entity_id=product.code,
                 action="update", reason=reason,
                 changes={"route_version": (latest or None, route.version),
                          "route_sha256": (None, row.sha256)})
    return row


def current_route(*, session: Session, product: Product) -> ProductRoute | None:
    return session.exec(select(ProductRoute).where(ProductRoute.product_id == product.id)
                        .order_by(col(ProductRoute.version).desc())).first()


def route_of(row: ProductRoute) -> Route:
    """The route a stored version defines (parsed once per text: versions never change)."""
    return _parsed(row.definition)


def route_of_case(*, session: Session, case: Case) -> Route:
    """The route version the case started with (a later version never applies to it)."""
    row = session.get(ProductRoute, case.route_id)
    assert row is not None
    return route_of(row)


@functools.lru_cache(maxsize=64)
def _parsed(definition: str) -> Route:
    """Routes are immutable once stored, and every scan needs one: parse each text once."""
    return parse_route(definition)


def active_sites(*, session: Session) -> list[Site]:
    return list(session.exec(select(Site).where(col(Site.active).is_(True))
                             .order_by(col(Site.name))))


def active_products(*, session: Session) -> list[Product]:
    return list(session.exec(select(Product).where(col(Product.active).is_(True))
                             .order_by(col(Product.code))))


def sites_with_ids(*, session: Session, ids: Iterable[int]) -> list[Site]:
    """The sites named by `ids`, by name."""
    return list(session.exec(select(Site).where(col(Site.id).in_(set(ids))).order_by(col(Site.name))))


def site_by_code(*, session: Session, code: str, field: str = "site") -> Site:
    """The site with this code; InvalidInput naming `field` when there is none."""
    return _by_code(session, Site, code, field)


def product_by_code(*, session: Session, code: str, field: str = "product") -> Product:
    """The product with this code; InvalidInput naming `field` when there is none."""
    return _by_code(session, Product, code, field)


def _by_code(session: Session, model: type[T], code: str, field: str) -> T:
    found = session.exec(select(model).where(model.code == code)).first()  # type: ignore[attr-defined]
    if found is None:
        raise InvalidInput(f"No {field} with code {code!r}.", [{"field": field, "message": "Unknown code."}])
    return found
