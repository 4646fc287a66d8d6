from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class Product(SQLModel, table=True):
    __tablename__ = "product"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=UTCDateTime)


class ProductRoute(SQLModel, table=True):
    """One version of a product's route, kept verbatim (TOML). Versions are never edited:
    a changed route is a new version, and a case keeps the version it started with."""

    __tablename__ = "product_route"
    __table_args__ = (UniqueConstraint("product_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id", index=True)
    version: int
    definition: str = Field(sa_type=Text)
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
