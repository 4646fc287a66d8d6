from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Text
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime


class LabelKey(SQLModel, table=True):
    """A public key that has signed labels. Kept for ever, so labels printed before a key
    rotation still verify after the private key has left the configuration."""

    __tablename__ = "label_key"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=4, index=True)  # hex of the 2-byte id carried in each QR
    public_key: str = Field(max_length=64, unique=True)  # url-safe base64 of the raw 32 bytes
    first_used_at: datetime = Field(sa_type=UTCDateTime)


class Label(SQLModel, table=True):
    """One printed label (or set member): what it carries and who printed it, when and why.
    Append-only; a reprint is a new row pointing at the label it replaces. A unit (kind
    "unit", its serial) or a case's wristband (kind "wristband", its COI) has at most one
    valid label, one without a revocation: the database refuses a second (migration 0010)."""

    __tablename__ = "label"
    # What the database's check of a new label looks up: the labels of the same identifier.
    __table_args__ = (Index("ix_label_kind_identifier", "kind", "identifier"),)

    # Drawn at random from 1..2**32-1 (see services.labels), hence BIGINT: PostgreSQL's
    # INTEGER is signed 32-bit.
    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    case_id: int = Field(foreign_key="therapy_case.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)  # None: wristband
    kind: str = Field(max_length=16)  # unit, wristband
    identifier: str = Field(max_length=16)  # data characters, as signed
    template: str = Field(max_length=32)
    template_version: int
    key_id: str = Field(max_length=4)
    signature: str = Field(max_length=128)  # hex, so a record can be re-checked any time
    output: str = Field(max_length=8)  # zpl, pdf, png
    dpi: int
    printed_at: datetime = Field(sa_type=UTCDateTime)
    printed_by_id: int = Field(foreign_key="app_user.id")
    reprint_of_id: int | None = Field(default=None, foreign_key="label.id", sa_type=BigInteger)
    reason: str | None = Field(default=None, sa_type=Text)


class LabelRevocation(SQLModel, table=True):
    """A label withdrawn from use: its QR then verifies as REVOKED. Append-only."""

    __tablename__ = "label_revocation"

    id: int | None = Field(default=None, primary_key=True)
    label_id: int = Field(foreign_key="label.id", unique=True, sa_type=BigInteger)
    revoked_at: datetime = Field(sa_type=UTCDateTime)
    revoked_by_id: int = Field(foreign_key="app_user.id")
    reason: str = Field(sa_type=Text)  # free text: shown to signed-in users only
    category: str | None = Field(default=None, max_length=32)  # the public page shows this
