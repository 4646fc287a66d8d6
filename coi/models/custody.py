from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from coi.models.types import UTCDateTime

# Event kinds that complete a route step (an "enrol" event completes "enrol").
COMPLETING_KINDS = ("step", "handoff_receive", "transform")


class CustodyEvent(SQLModel, table=True):
    """One entry of a case's ledger: who (user, site, device) did what (kind, body: units,
    scanned codes, expected vs actual, outcome), when (server time, device time). Append-only
    and hash-chained per case: `hash` = SHA-256 of the previous event's hash and this event's
    canonical form, so an edit, deletion, insertion or reordering breaks the chain."""

    __tablename__ = "custody_event"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="therapy_case.id", index=True)
    seq: int  # 1, 2, 3... within the case
    at: datetime = Field(sa_type=UTCDateTime)
    device_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    kind: str = Field(max_length=40)
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    site_id: int | None = Field(default=None, foreign_key="site.id")
    device: str | None = Field(default=None, max_length=100)
    body: str = Field(sa_type=Text)  # canonical JSON
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
    # SHA-256 of (user, idempotency key) for scans sent with a key: a retried request finds
    # its event instead of recording a second one.
    request_key: str | None = Field(default=None, max_length=64, unique=True, index=True)


class LedgerCheckpoint(SQLModel, table=True):
    """A signed statement of every case's chain head, and of the identity chain's head, at one
    moment. A chain rewritten from scratch, or cut short at its end, no longer matches the last
    checkpoint; exported (`flask coi ledger head`), it holds even against the key's holder."""

    __tablename__ = "ledger_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    heads: str = Field(sa_type=Text)  # canonical JSON: {case id: [seq, hash]}
    key_id: str = Field(max_length=4)
    signature: str = Field(max_length=128)  # hex Ed25519 (coi.services.ledger.statement)
    # The identity chain's head (table record_seal) at the same moment, signed with `heads`
    # and `at`; None on the checkpoints signed before migration 0009, which signed `heads`.
    seal_seq: int | None = Field(default=None)
    seal_hash: str | None = Field(default=None, max_length=64)
