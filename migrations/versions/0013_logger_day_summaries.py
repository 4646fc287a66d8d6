"""logger day summaries: the days of a daily-summary logger file (append-only evidence, like
the readings; no sealed table gains a column)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 02:00:00.000000

Written beside another branch's 0012: at the merge, down_revision becomes '0012'. Nothing
here depends on 0012.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

APPEND_ONLY_TABLES = ("logger_day_summary",)

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('logger_day_summary',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('logger', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('min_c', sa.Float(), nullable=True),
    sa.Column('max_c', sa.Float(), nullable=True),
    sa.Column('minutes_above', sa.Float(), nullable=True),
    sa.Column('minutes_below', sa.Float(), nullable=True),
    sa.Column('minutes_in_alarm', sa.Float(), nullable=True),
    sa.Column('low_limit_c', sa.Float(), nullable=True),
    sa.Column('high_limit_c', sa.Float(), nullable=True),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['logger_file.id'], ),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipment.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_id', 'day')
    )
    with op.batch_alter_table('logger_day_summary', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_logger_day_summary_file_id'), ['file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_logger_day_summary_shipment_id'), ['shipment_id'], unique=False)
    for table in APPEND_ONLY_TABLES:
        _forbid_update_and_delete(table)


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _allow_update_and_delete(table)
    with op.batch_alter_table('logger_day_summary', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_logger_day_summary_shipment_id'))
        batch_op.drop_index(batch_op.f('ix_logger_day_summary_file_id'))
    op.drop_table('logger_day_summary')


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
