"""logger file links: one stored file judged for every shipment (leg) its logger travelled;
each existing file gets the link to the shipment it was uploaded for (append-only, like the
file; no sealed table changes, so no existing row needs a new seal)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 02:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

APPEND_ONLY_TABLES = ("logger_file_link",)

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('logger_file_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('logger_serial', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('linked_by_id', sa.Integer(), nullable=False),
    sa.Column('outside_window', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['logger_file.id'], ),
    sa.ForeignKeyConstraint(['linked_by_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipment.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_id', 'shipment_id')
    )
    op.create_index(op.f('ix_logger_file_link_shipment_id'), 'logger_file_link', ['shipment_id'],
                    unique=False)
    op.create_index('ix_logger_reading_file', 'logger_reading', ['file_id', 'at'], unique=False)
    # Every file stored so far is judged for the shipment it was uploaded for: its link, as
    # made by whoever uploaded it, when they did.
    op.execute(
        "INSERT INTO logger_file_link (file_id, shipment_id, logger_serial, via, linked_at, "
        "linked_by_id, outside_window) "
        "SELECT f.id, f.shipment_id, f.logger_serial, f.via, f.uploaded_at, f.uploaded_by_id, "
        "COALESCE(r.outside_window, 0) FROM logger_file f "
        "LEFT JOIN logger_file_result r ON r.file_id = f.id ORDER BY f.id")
    for table in APPEND_ONLY_TABLES:
        _forbid_update_and_delete(table)


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _allow_update_and_delete(table)
    op.drop_index('ix_logger_reading_file', table_name='logger_reading')
    op.drop_index(op.f('ix_logger_file_link_shipment_id'), table_name='logger_file_link')
    op.drop_table('logger_file_link')


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
