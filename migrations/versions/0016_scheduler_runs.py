"""scheduler runs: the scheduler's heartbeat, one row per run of a job group (operational data,
pruned by the sweep; not evidence, not sealed)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 21:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('scheduler_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_group', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('found', sa.Text(), nullable=False),
    sa.Column('failed', sa.Text(), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_scheduler_run_group_finished', 'scheduler_run',
                    ['job_group', 'finished_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_scheduler_run_group_finished', table_name='scheduler_run')
    op.drop_table('scheduler_run')
