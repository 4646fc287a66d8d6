"""shipments and logger data

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:11:56.461650
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# The raw logger files and what was read from them are evidence: append-only.
APPEND_ONLY_TABLES = ("logger_file", "logger_file_chunk", "logger_file_result", "logger_reading")

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('shipment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('leg', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('origin_site_id', sa.Integer(), nullable=False),
    sa.Column('destination_site_id', sa.Integer(), nullable=False),
    sa.Column('shipper_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('profile_rule', sa.Text(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_by_id', sa.Integer(), nullable=False),
    sa.Column('eta', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['therapy_case.id'], ),
    sa.ForeignKeyConstraint(['destination_site_id'], ['site.id'], ),
    sa.ForeignKeyConstraint(['opened_by_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['origin_site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shipment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipment_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_destination_site_id'), ['destination_site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_eta'), ['eta'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_origin_site_id'), ['origin_site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_state'), ['state'], unique=False)

    op.create_table('logger_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('logger_serial', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
    sa.Column('report', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipment.id'], ),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('logger_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_logger_file_shipment_id'), ['shipment_id'], unique=False)

    op.create_table('shipment_logger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('serial', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('zone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assigned_by_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['assigned_by_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipment.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('shipment_id', 'serial')
    )
    with op.batch_alter_table('shipment_logger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipment_logger_serial'), ['serial'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_logger_shipment_id'), ['shipment_id'], unique=False)

    op.create_table('logger_file_chunk',
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['logger_file.id'], ),
    sa.PrimaryKeyConstraint('file_id', 'seq')
    )
    op.create_table('logger_file_result',
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('reading_count', sa.Integer(), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('min_celsius', sa.Float(), nullable=True),
    sa.Column('max_celsius', sa.Float(), nullable=True),
    sa.Column('outside_window', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['logger_file.id'], ),
    sa.PrimaryKeyConstraint('file_id')
    )
    op.create_table('logger_reading',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('logger', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('celsius', sa.Float(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['logger_file.id'], ),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipment.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('logger_reading', schema=None) as batch_op:
        batch_op.create_index('ix_logger_reading_series', ['shipment_id', 'logger', 'at'], unique=False)

    # alarm is not evidence-only (its state moves), so a batch copy on SQLite is safe here.
    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shipment_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.create_foreign_key('fk_alarm_shipment_id_shipment', 'shipment', ['shipment_id'], ['id'])
        batch_op.create_index('ix_alarm_shipment_id', ['shipment_id'], unique=False)
        batch_op.create_index('ix_alarm_fingerprint', ['fingerprint'], unique=True)

    for table in APPEND_ONLY_TABLES:
        _forbid_update_and_delete(table)


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _allow_update_and_delete(table)
    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.drop_index('ix_alarm_fingerprint')
        batch_op.drop_index('ix_alarm_shipment_id')
        batch_op.drop_constraint('fk_alarm_shipment_id_shipment', type_='foreignkey')
        batch_op.drop_column('fingerprint')
        batch_op.drop_column('shipment_id')

    with op.batch_alter_table('logger_reading', schema=None) as batch_op:
        batch_op.drop_index('ix_logger_reading_series')

    op.drop_table('logger_reading')
    op.drop_table('logger_file_result')
    op.drop_table('logger_file_chunk')
    with op.batch_alter_table('shipment_logger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipment_logger_shipment_id'))
        batch_op.drop_index(batch_op.f('ix_shipment_logger_serial'))

    op.drop_table('shipment_logger')
    with op.batch_alter_table('logger_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_logger_file_shipment_id'))

    op.drop_table('logger_file')
    with op.batch_alter_table('shipment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipment_state'))
        batch_op.drop_index(batch_op.f('ix_shipment_origin_site_id'))
        batch_op.drop_index(batch_op.f('ix_shipment_eta'))
        batch_op.drop_index(batch_op.f('ix_shipment_destination_site_id'))
        batch_op.drop_index(batch_op.f('ix_shipment_case_id'))

    op.drop_table('shipment')


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
