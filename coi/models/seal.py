from __future__ import annotations

from sqlmodel import Field, SQLModel


class RecordSeal(SQLModel, table=True):
    """One link of the identity chain: a covered row (patient, case, unit, alarm, grant,
    signature, audit entry...) was inserted, changed or deleted, and `content_sha256` is the
    SHA-256 of its content afterwards (None for a deletion). One chain for the whole database,
    `hash` = SHA-256 of `prev_hash` and this seal's canonical form (coi.services.seals).
    Append-only; the signed checkpoints carry its head."""

    __tablename__ = "record_seal"

    # Given by the writer that holds the chain's lock (coi.services.seals), never by the
    # database: a gap is a deleted seal.
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    table_name: str = Field(max_length=32)
    row_key: str = Field(max_length=64)  # the primary key's values joined by "/"
    action: str = Field(max_length=8)  # insert, update, delete; existing (migration 0009)
    content_sha256: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
