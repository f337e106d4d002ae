"""foundation: organisations and identity

Revision ID: 0001
Revises:
Create Date: 2026-11-23 06:57:39.860223
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.core.database
from services.migrations import rls


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_attempts',
    sa.Column('email_key', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempts_address_at', ['address', 'at'], unique=False)
        batch_op.create_index('ix_login_attempts_email_key_at', ['email_key', 'at'], unique=False)

    op.create_table('organizations',
    sa.Column('kind', sa.Enum('client', 'provider', 'operator', name='orgkind', native_enum=False, length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('default_locale', sa.String(length=16), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations')),
    sa.UniqueConstraint('slug', name=op.f('uq_organizations_slug'))
    )
    op.create_table('api_clients',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scopes', sa.String(length=1000), nullable=False),
    sa.Column('created_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', services.core.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['organizations.id'], name=op.f('fk_api_clients_tenant_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_clients')),
    sa.UniqueConstraint('client_id', name=op.f('uq_api_clients_client_id'))
    )
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_clients_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('users',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', services.core.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['organizations.id'], name=op.f('fk_users_tenant_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('access_tokens',
    sa.Column('api_client_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.String(length=1000), nullable=False),
    sa.Column('issued_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', services.core.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['api_client_id'], ['api_clients.id'], name=op.f('fk_access_tokens_api_client_id_api_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['organizations.id'], name=op.f('fk_access_tokens_tenant_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_access_tokens_token_hash'))
    )
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_tokens_api_client_id'), ['api_client_id'], unique=False)
        batch_op.create_index('ix_access_tokens_expires_at', ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_tokens_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('memberships',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.Enum('client_admin', 'client_submitter', 'client_viewer', 'provider_admin', 'team_lead', 'agent', 'account_manager', 'platform_admin', name='role', native_enum=False, length=32), nullable=False),
    sa.Column('created_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['organizations.id'], name=op.f('fk_memberships_tenant_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
    sa.UniqueConstraint('tenant_id', 'user_id', 'role', name=op.f('uq_memberships_tenant_id_user_id_role'))
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_memberships_user_id'), ['user_id'], unique=False)

    op.create_table('portfolio_assignments',
    sa.Column('account_manager_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['account_manager_id'], ['users.id'], name=op.f('fk_portfolio_assignments_account_manager_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['organizations.id'], name=op.f('fk_portfolio_assignments_tenant_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portfolio_assignments')),
    sa.UniqueConstraint('tenant_id', 'account_manager_id', name=op.f('uq_portfolio_assignments_tenant_id_account_manager_id'))
    )
    with op.batch_alter_table('portfolio_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portfolio_assignments_account_manager_id'), ['account_manager_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_portfolio_assignments_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('web_sessions',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user_agent', sa.String(length=400), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['organizations.id'], name=op.f('fk_web_sessions_tenant_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_web_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_web_sessions_token_hash'))
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_web_sessions_expires_at', ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_sessions_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_sessions_user_id'), ['user_id'], unique=False)

    rls.create_functions()
    rls.protect("organizations", key="id", identity=True)
    for table in ("users", "memberships", "portfolio_assignments", "api_clients", "access_tokens", "web_sessions"):
        rls.protect(table, identity=True)


def downgrade() -> None:
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_user_id'))
        batch_op.drop_index(batch_op.f('ix_web_sessions_tenant_id'))
        batch_op.drop_index('ix_web_sessions_expires_at')

    op.drop_table('web_sessions')
    with op.batch_alter_table('portfolio_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portfolio_assignments_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_portfolio_assignments_account_manager_id'))

    op.drop_table('portfolio_assignments')
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memberships_user_id'))
        batch_op.drop_index(batch_op.f('ix_memberships_tenant_id'))

    op.drop_table('memberships')
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_tokens_tenant_id'))
        batch_op.drop_index('ix_access_tokens_expires_at')
        batch_op.drop_index(batch_op.f('ix_access_tokens_api_client_id'))

    op.drop_table('access_tokens')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_tenant_id'))

    op.drop_table('users')
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_clients_tenant_id'))

    op.drop_table('api_clients')
    op.drop_table('organizations')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_email_key_at')
        batch_op.drop_index('ix_login_attempts_address_at')

    op.drop_table('login_attempts')
    rls.drop_functions()
