"""alarm workflow, notifications and deadlines

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 07:38:37.317309
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Alarm changes and the delivery log are evidence: append-only.
APPEND_ONLY_TABLES = ("alarm_event", "notification_attempt")

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alarm_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alarm_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('signature_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['alarm_id'], ['alarm.id'], ),
    sa.ForeignKeyConstraint(['signature_id'], ['signature.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alarm_id', 'action', 'level')
    )
    with op.batch_alter_table('alarm_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alarm_event_alarm_id'), ['alarm_id'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alarm_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['alarm_id'], ['alarm.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alarm_id', 'channel', 'target', 'reason', 'level')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_alarm_id'), ['alarm_id'], unique=False)
        batch_op.create_index('ix_notification_due', ['next_attempt_at'], unique=False)

    op.create_table('notification_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_attempt_notification_id'), ['notification_id'], unique=False)

    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('level', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('escalate_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('notify_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('notified_event_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_alarm_escalate_at'), ['escalate_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alarm_notify_at'), ['notify_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alarm_unit_id'), ['unit_id'], unique=False)
        batch_op.create_foreign_key('fk_alarm_unit_id', 'unit', ['unit_id'], ['id'])

    with op.batch_alter_table('shipment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eta_alarm_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_reading_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('silence_alarm_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_shipment_eta_unalarmed', ['eta'], unique=False, sqlite_where=sa.text('eta_alarm_id IS NULL AND received_at IS NULL'), postgresql_where=sa.text('eta_alarm_id IS NULL AND received_at IS NULL'))
        batch_op.create_index('ix_shipment_silence_unalarmed', ['last_reading_at'], unique=False, sqlite_where=sa.text('silence_alarm_id IS NULL AND received_at IS NULL'), postgresql_where=sa.text('silence_alarm_id IS NULL AND received_at IS NULL'))

    with op.batch_alter_table('therapy_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overdue_alarm_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_therapy_case_due_unalarmed', ['next_due_at'], unique=False, sqlite_where=sa.text('overdue_alarm_id IS NULL'), postgresql_where=sa.text('overdue_alarm_id IS NULL'))

    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('expiry_check_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_unit_expiry_check_at'), ['expiry_check_at'], unique=False)

    for table in APPEND_ONLY_TABLES:
        _forbid_update_and_delete(table)



def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _allow_update_and_delete(table)
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_expiry_check_at'))
        batch_op.drop_column('expiry_check_at')
        batch_op.drop_column('expires_at')

    with op.batch_alter_table('therapy_case', schema=None) as batch_op:
        batch_op.drop_index('ix_therapy_case_due_unalarmed', sqlite_where=sa.text('overdue_alarm_id IS NULL'), postgresql_where=sa.text('overdue_alarm_id IS NULL'))
        batch_op.drop_column('overdue_alarm_id')

    with op.batch_alter_table('shipment', schema=None) as batch_op:
        batch_op.drop_index('ix_shipment_silence_unalarmed', sqlite_where=sa.text('silence_alarm_id IS NULL AND received_at IS NULL'), postgresql_where=sa.text('silence_alarm_id IS NULL AND received_at IS NULL'))
        batch_op.drop_index('ix_shipment_eta_unalarmed', sqlite_where=sa.text('eta_alarm_id IS NULL AND received_at IS NULL'), postgresql_where=sa.text('eta_alarm_id IS NULL AND received_at IS NULL'))
        batch_op.drop_column('silence_alarm_id')
        batch_op.drop_column('last_reading_at')
        batch_op.drop_column('eta_alarm_id')

    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.drop_constraint('fk_alarm_unit_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_alarm_unit_id'))
        batch_op.drop_index(batch_op.f('ix_alarm_notify_at'))
        batch_op.drop_index(batch_op.f('ix_alarm_escalate_at'))
        batch_op.drop_column('notified_event_id')
        batch_op.drop_column('notify_at')
        batch_op.drop_column('outcome')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('escalate_at')
        batch_op.drop_column('level')
        batch_op.drop_column('unit_id')

    with op.batch_alter_table('notification_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_attempt_notification_id'))

    op.drop_table('notification_attempt')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_due')
        batch_op.drop_index(batch_op.f('ix_notification_alarm_id'))

    op.drop_table('notification')
    with op.batch_alter_table('alarm_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alarm_event_alarm_id'))

    op.drop_table('alarm_event')


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
