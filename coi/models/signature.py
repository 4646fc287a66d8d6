from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime

MEANINGS = (
    "authored",
    "corrected",
    "verified",
    "collected",
    "released",
    "acknowledged",
    "resolved",
    "decided",  # QA's second decision on a quarantined product
    "approved",
    "administered",
)


class Signature(SQLModel, table=True):
    """An electronic signature (21 CFR 11.50/11.70): who (printed name as it was at signing),
    when, what it means, and a SHA-256 of exactly what was signed. Append-only."""

    __tablename__ = "signature"
    __table_args__ = (Index("ix_signature_subject", "subject_type", "subject_id"),)

    id: int | None = Field(default=None, primary_key=True)
    signer_id: int = Field(foreign_key="app_user.id")
    signer_name: str = Field(max_length=200)
    meaning: str = Field(max_length=32)
    signed_at: datetime = Field(sa_type=UTCDateTime)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=64)
    content_sha256: str = Field(max_length=64)
