"""identity chain: one hash chain of seals over every row that defines identity (patients,
cases, units, alarms and their events, signatures, grants, accounts and tokens, the audit
trail, labels and their keys), its head in the signed checkpoints; every row already there
gets a seal of its content as found ("existing")

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000
"""
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

APPEND_ONLY_TABLES = ("record_seal",)

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
# The sealed columns as of this revision (coi.services.seals.SEALED then), frozen here: the
# seals written below must match what the application seals and checks at this revision.
# Times and flags are named so that both engines hand back the same values.
SEALED: dict[str, tuple[str, ...]] = {
    "patient": ("id", "site_id", "phi", "mrn_index", "created_at", "created_by_id"),
    "therapy_case": ("id", "coi", "patient_id", "product_id", "route_id", "site_id",
                     "manufacturing_site_id", "created_at", "created_by_id"),
    "unit": ("id", "serial", "case_id", "kind", "sequence", "state", "custodian_site_id",
             "created_at", "created_by_id", "expires_at"),
    "alarm": ("id", "kind", "code", "severity", "state", "raised_at", "case_id", "site_id",
              "event_id", "actor_id", "summary", "rule", "shipment_id", "unit_id", "fingerprint",
              "level", "acknowledged_at", "resolved_at", "outcome"),
    "alarm_event": ("id", "alarm_id", "at", "action", "level", "actor_id", "comment", "outcome",
                    "signature_id"),
    "signature": ("id", "signer_id", "signer_name", "meaning", "signed_at", "subject_type",
                  "subject_id", "content_sha256"),
    "role_grant": ("id", "user_id", "site_id", "role", "created_at"),
    "app_user": ("id", "username", "full_name", "email", "password_hash", "active",
                 "created_at", "global_admin", "must_change_password", "password_changed_at"),
    "api_token": ("id", "user_id", "name", "token_hash", "prefix", "created_at",
                  "created_by_id", "expires_at", "revoked_at", "scopes"),
    "audit_entry": ("id", "at", "actor_id", "actor_name", "entity", "entity_id", "action",
                    "field", "old_value", "new_value", "reason", "via"),
    "audit_entry_site": ("entry_id", "site_id"),
    "label": ("id", "case_id", "unit_id", "kind", "identifier", "template", "template_version",
              "key_id", "signature", "output", "dpi", "printed_at", "printed_by_id",
              "reprint_of_id", "reason"),
    "label_revocation": ("id", "label_id", "revoked_at", "revoked_by_id", "reason", "category"),
    "label_key": ("id", "key_id", "public_key", "first_used_at"),
}
PRIMARY_KEYS = {"audit_entry_site": ("entry_id", "site_id")}  # "id" elsewhere
TIMES = {"created_at", "expires_at", "raised_at", "acknowledged_at", "resolved_at", "at",
         "signed_at", "password_changed_at", "revoked_at", "printed_at", "first_used_at"}
FLAGS = {"active", "global_admin", "must_change_password"}


def upgrade() -> None:
    op.create_table('record_seal',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('table_name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('row_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('content_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    # Plain ADD COLUMN (no table copy): the append-only triggers of the checkpoints stay.
    op.add_column('ledger_checkpoint', sa.Column('seal_seq', sa.Integer(), nullable=True))
    op.add_column('ledger_checkpoint', sa.Column(
        'seal_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    _seal_existing_rows()
    for table in APPEND_ONLY_TABLES:
        _forbid_update_and_delete(table)
    if op.get_bind().dialect.name == "postgresql":
        # The chain's lock and its head in one round trip (coi.services.seals): VOLATILE, so
        # the query after the lock takes a snapshot of its own and sees the seals the writer
        # before committed while this one waited.
        op.execute(
            "CREATE FUNCTION coi_seal_head(lock_key bigint) "
            "RETURNS TABLE (seq integer, hash varchar) LANGUAGE plpgsql VOLATILE AS $$ "
            "BEGIN "
            "PERFORM pg_advisory_xact_lock(lock_key); "
            "RETURN QUERY SELECT s.seq, s.hash FROM record_seal s "
            "WHERE s.seq = (SELECT max(m.seq) FROM record_seal m); "
            "END $$"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS coi_seal_head(bigint)")
    for table in APPEND_ONLY_TABLES:
        _allow_update_and_delete(table)
    op.drop_column('ledger_checkpoint', 'seal_hash')
    op.drop_column('ledger_checkpoint', 'seal_seq')
    op.drop_table('record_seal')


def _seal_existing_rows() -> None:
    """A seal of every row already there, as found at the upgrade: the chain vouches for
    changes from now on. Done here rather than by a command run later, so that no database
    is ever at this revision with rows the chain does not know (verify would list them all,
    and rows written meanwhile would be sealed while older ones were not)."""
    bind = op.get_bind()
    seals = sa.table('record_seal', *(sa.column(name) for name in (
        'seq', 'table_name', 'row_key', 'action', 'content_sha256', 'prev_hash', 'hash')))
    seq, prev, batch = 0, GENESIS, []
    for table, key, content in _contents(bind):
        seq += 1
        digest = _seal_hash(prev, seq, table, key, "existing", content)
        batch.append({"seq": seq, "table_name": table, "row_key": key, "action": "existing",
                      "content_sha256": content, "prev_hash": prev, "hash": digest})
        prev = digest
        if len(batch) == 5000:
            bind.execute(seals.insert(), batch)
            batch = []
    if batch:
        bind.execute(seals.insert(), batch)


def _contents(bind: Any) -> Iterator[tuple[str, str, str]]:
    for table, names in sorted(SEALED.items()):
        columns = [sa.column(name, sa.DateTime(timezone=True) if name in TIMES else
                             sa.Boolean() if name in FLAGS else None) for name in names]
        primary = PRIMARY_KEYS.get(table, ("id",))
        query = sa.select(*columns).select_from(sa.table(table, *columns)).order_by(
            *(sa.column(name) for name in primary))
        for row in bind.execute(query).mappings():
            key = "/".join(str(row[name]) for name in primary)
            form = _canonical({name: _plain(row[name]) for name in names})
            yield table, key, hashlib.sha256(form.encode()).hexdigest()


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


def _forbid_update_and_delete(table: str) -> None:
    # coi_refuse_change() is the PostgreSQL trigger function made by migration 0001.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION coi_refuse_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )


def _allow_update_and_delete(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
