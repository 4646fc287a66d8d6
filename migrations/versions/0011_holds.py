"""holds: the deviation a product was accepted under, with QA's signed resolution or decision
(append-only; no column is added to a sealed table, so no existing row needs a new seal)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

APPEND_ONLY_TABLES = ("alarm_deviation",)

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alarm_deviation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alarm_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.ForeignKeyConstraint(['alarm_id'], ['alarm.id'], ),
    sa.ForeignKeyConstraint(['event_id'], ['alarm_event.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('alarm_deviation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alarm_deviation_alarm_id'), ['alarm_id'], unique=False)
    for table in APPEND_ONLY_TABLES:
        _forbid_update_and_delete(table)


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _allow_update_and_delete(table)
    with op.batch_alter_table('alarm_deviation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alarm_deviation_alarm_id'))
    op.drop_table('alarm_deviation')


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
