"""scans and alarms

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 02:11:03.453491
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alarm',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('rule', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['therapy_case.id'], ),
    sa.ForeignKeyConstraint(['event_id'], ['custody_event.id'], ),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alarm_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alarm_raised_at'), ['raised_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alarm_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alarm_state'), ['state'], unique=False)

    # Plain ADD COLUMN, never a batch copy: custody_event is append-only, and a SQLite batch
    # migration would rebuild the table without its triggers.
    op.add_column('custody_event', sa.Column('request_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.create_index('ix_custody_event_request_key', 'custody_event', ['request_key'], unique=True)

    op.add_column('therapy_case', sa.Column('last_step', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False, server_default='enrol'))
    op.add_column('therapy_case', sa.Column('last_step_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('therapy_case', sa.Column('next_step', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    op.add_column('therapy_case', sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_therapy_case_next_due_at', 'therapy_case', ['next_due_at'], unique=False)
    op.create_index('ix_therapy_case_next_step', 'therapy_case', ['next_step'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('therapy_case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_therapy_case_next_step'))
        batch_op.drop_index(batch_op.f('ix_therapy_case_next_due_at'))
        batch_op.drop_column('next_due_at')
        batch_op.drop_column('next_step')
        batch_op.drop_column('last_step_at')
        batch_op.drop_column('last_step')

    op.drop_index('ix_custody_event_request_key', 'custody_event')
    op.drop_column('custody_event', 'request_key')

    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alarm_state'))
        batch_op.drop_index(batch_op.f('ix_alarm_site_id'))
        batch_op.drop_index(batch_op.f('ix_alarm_raised_at'))
        batch_op.drop_index(batch_op.f('ix_alarm_case_id'))

    op.drop_table('alarm')
