"""one valid label per unit: the database refuses a second valid (unrevoked) label for a unit
or a case's wristband; labels that older reprints left valid beside their replacement are
revoked ("replaced"), each with its seal

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00.000000

Why a trigger and not a unique index: validity is the absence of a row in another table
(label_revocation), which no index can see, and both tables are append-only, so no column of
`label` can say "revoked" either. A table of valid labels with a unique key would be one more
record to keep in step with the revocations, and a label written around it would not be
refused. The trigger checks the evidence itself, on every insert, whoever writes. SQLite has
one writer at a time; on PostgreSQL the trigger first takes a transaction lock on the label's
identifier, so that of two concurrent writers the second checks after the first committed.
(The services also lock the case's row, and so never reach the refusal but in a race with a
writer that goes around them.)
"""
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The words coi.services.labels.ONE_VALID_LABEL looks for in the refusal.
REFUSAL = "one valid label per unit and wristband: revoke the label it replaces first"
LOCK_NAMESPACE = 0x636F694C  # "coiL": first key of the PostgreSQL lock on a label identifier
SEAL_LOCK_KEY = 0x636F69_5345414C  # coi.services.seals.LOCK_KEY
GENESIS = "0" * 64
# label_revocation's sealed columns at this revision (coi.services.seals.SEALED), frozen.
REVOCATION_SEALED = ("id", "label_id", "revoked_at", "revoked_by_id", "reason", "category")


def upgrade() -> None:
    op.create_index('ix_label_kind_identifier', 'label', ['kind', 'identifier'], unique=False)
    _revoke_replaced_labels()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION coi_one_valid_label() RETURNS trigger LANGUAGE plpgsql VOLATILE "
            "AS $$ BEGIN "
            f"PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, "
            "hashtext(NEW.kind || ' ' || NEW.identifier)); "
            # VOLATILE at READ COMMITTED: this query's snapshot is taken after the lock, so it
            # sees the label of a writer that held the lock before.
            "IF EXISTS (SELECT 1 FROM label l WHERE l.kind = NEW.kind "
            "AND l.identifier = NEW.identifier AND l.id <> NEW.id AND NOT EXISTS "
            "(SELECT 1 FROM label_revocation r WHERE r.label_id = l.id)) THEN "
            f"RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'unique_violation'; "
            "END IF; RETURN NEW; END $$"
        )
        op.execute("CREATE TRIGGER label_one_valid BEFORE INSERT ON label "
                   "FOR EACH ROW EXECUTE FUNCTION coi_one_valid_label()")
    else:
        op.execute(
            "CREATE TRIGGER label_one_valid BEFORE INSERT ON label WHEN EXISTS "
            "(SELECT 1 FROM label l WHERE l.kind = NEW.kind AND l.identifier = NEW.identifier "
            "AND NOT EXISTS (SELECT 1 FROM label_revocation r WHERE r.label_id = l.id)) "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
        )


def downgrade() -> None:
    # The revocations made by the upgrade stay: they are evidence, and append-only.
    op.execute("DROP TRIGGER IF EXISTS label_one_valid" + (
        " ON label" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS coi_one_valid_label()")
    op.drop_index('ix_label_kind_identifier', table_name='label')


def _revoke_replaced_labels() -> None:
    """Before this revision a reprint left the label it replaced valid. Of each identifier's
    valid labels, all but the newest are revoked now as "replaced", by whoever printed the
    newest and as of its printing (that print was the replacement), the reason saying so. Each
    revocation gets its seal, as the application's would."""
    bind = op.get_bind()
    label = sa.table("label", *(sa.column(name) for name in (
        "id", "kind", "identifier", "printed_by_id")), sa.column("printed_at", sa.DateTime(timezone=True)))
    revocation = sa.table("label_revocation", sa.column("id"), sa.column("label_id"),
                          sa.column("revoked_at", sa.DateTime(timezone=True)),
                          sa.column("revoked_by_id"), sa.column("reason"), sa.column("category"))
    revoked = sa.select(revocation.c.label_id)
    valid = bind.execute(
        sa.select(label).where(label.c.id.not_in(revoked))
        .order_by(label.c.kind, label.c.identifier, label.c.printed_at.desc(), label.c.id.desc())
    ).mappings().all()
    newest: dict[tuple[str, str], Any] = {}
    made: list[int] = []
    for row in valid:
        holder = (row["kind"], row["identifier"])
        keeper = newest.setdefault(holder, row)
        if keeper is row:
            continue
        bind.execute(revocation.insert().values(
            label_id=row["id"], revoked_at=keeper["printed_at"],
            revoked_by_id=keeper["printed_by_id"], category="replaced",
            reason=f"replaced by label {keeper['id']}, printed when a reprint did not yet "
                   "revoke the label it replaced; revocation recorded by migration 0010"))
        made.append(row["id"])
    if made:
        _seal(bind, revocation, made)


def _seal(bind: Any, revocation: Any, label_ids: list[int]) -> None:
    seals = sa.table('record_seal', *(sa.column(name) for name in (
        'seq', 'table_name', 'row_key', 'action', 'content_sha256', 'prev_hash', 'hash')))
    if bind.dialect.name == "postgresql":
        last = bind.execute(sa.text("SELECT seq, hash FROM coi_seal_head(:key)"),
                            {"key": SEAL_LOCK_KEY}).first()
    else:
        last = bind.execute(sa.text("SELECT seq, hash FROM record_seal "
                                    "ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    rows = bind.execute(sa.select(*(revocation.c[name] for name in REVOCATION_SEALED))
                        .where(revocation.c.label_id.in_(label_ids))
                        .order_by(revocation.c.id)).mappings()
    batch = []
    for row in rows:
        seq += 1
        form = _canonical({name: _plain(row[name]) for name in REVOCATION_SEALED})
        content = hashlib.sha256(form.encode()).hexdigest()
        key = str(row["id"])
        digest = _seal_hash(prev, seq, "label_revocation", key, "insert", content)
        batch.append({"seq": seq, "table_name": "label_revocation", "row_key": key,
                      "action": "insert", "content_sha256": content, "prev_hash": prev,
                      "hash": digest})
        prev = digest
    bind.execute(seals.insert(), batch)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return value


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _seal_hash(prev: str, seq: int, table: str, key: str, action: str, content: str) -> str:
    form = _canonical({"seq": seq, "table": table, "row": key, "action": action,
                       "content": content})
    return hashlib.sha256(f"{prev}\n{form}".encode()).hexdigest()
