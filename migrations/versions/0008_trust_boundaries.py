"""trust boundaries: server-side sessions, token scopes, global administration, password
changes, the channel (session or token) of every audit row, the sites an audit row concerns,
signing attempts beside login attempts, a revocation's public category

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 22:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Which sites an audit row concerns is part of the row: append-only like the row itself.
APPEND_ONLY_TABLES = ("audit_entry_site",)

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('global_admin', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        # Tokens issued before scopes existed could do everything: they keep that.
        batch_op.add_column(sa.Column('scopes', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=False, server_default='read scan upload'))
    # Plain ADD COLUMN (no table copy): the append-only triggers on these tables stay.
    op.add_column('audit_entry', sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=120),
                                           nullable=True))
    op.add_column('login_attempt', sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16),
                                             nullable=False, server_default='login'))
    op.add_column('label_revocation', sa.Column(
        'category', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))

    op.create_table('web_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('remote_addr', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_user_id'), ['user_id'], unique=False)

    op.create_table('audit_entry_site',
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['audit_entry.id'], ),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('entry_id', 'site_id')
    )
    with op.batch_alter_table('audit_entry_site', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_site_site_id'), ['site_id'], unique=False)

    for table in APPEND_ONLY_TABLES:
        _forbid_update_and_delete(table)


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _allow_update_and_delete(table)
    with op.batch_alter_table('audit_entry_site', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_site_site_id'))
    op.drop_table('audit_entry_site')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_user_id'))
    op.drop_table('web_session')
    op.drop_column('label_revocation', 'category')
    op.drop_column('login_attempt', 'kind')
    op.drop_column('audit_entry', 'via')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('scopes')
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('must_change_password')
        batch_op.drop_column('global_admin')


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
