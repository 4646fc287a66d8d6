"""logger formats: saved column mappings for logger files of one layout (master data, audited;
a mapping is retired, never edited)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('logger_format',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('mapping', sa.Text(), nullable=False),
    sa.Column('columns', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['retired_by_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('logger_format', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_logger_format_fingerprint'), ['fingerprint'], unique=False)
    # At most one mapping in use per layout, whoever writes it.
    op.create_index('ux_logger_format_in_use', 'logger_format', ['fingerprint'], unique=True,
                    sqlite_where=sa.text('retired_at IS NULL'),
                    postgresql_where=sa.text('retired_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ux_logger_format_in_use', table_name='logger_format')
    with op.batch_alter_table('logger_format', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_logger_format_fingerprint'))
    op.drop_table('logger_format')
