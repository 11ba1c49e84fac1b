"""agents console: teams, routing settings, SLAs, labels, canned responses, audit, sessions, login failures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crm_store.columns

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('canned_responses',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('shortcut', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_responses')),
    sa.UniqueConstraint('shortcut', name=op.f('uq_canned_responses_shortcut'))
    )
    op.create_table('login_failures',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('created_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_address', ['address', 'created_at'], unique=False)
        batch_op.create_index('ix_login_failures_email', ['email', 'created_at'], unique=False)

    op.create_table('sla_policies',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=True),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('first_response_seconds', sa.Integer(), nullable=True),
    sa.Column('resolution_seconds', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policies')),
    sa.UniqueConstraint('team', 'priority', name=op.f('uq_sla_policies_team_priority'))
    )
    op.create_table('teams',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('name', name=op.f('uq_teams_name'))
    )
    op.create_table('agent_settings',
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('presence', sa.String(length=16), nullable=False),
    sa.Column('max_chats', sa.Integer(), nullable=False),
    sa.Column('updated_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_settings_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_agent_settings'))
    )
    op.create_table('console_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_console_sessions_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_agent_id'), ['agent_id'], unique=False)

    op.create_table('team_members',
    sa.Column('team_id', sa.Uuid(), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('last_assigned_at', crm_store.columns.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_team_members_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_team_members_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('team_id', 'agent_id', name=op.f('pk_team_members'))
    )
    with op.batch_alter_table('team_members', schema=None) as batch_op:
        batch_op.create_index('ix_team_members_agent_id', ['agent_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('conversation_id', sa.Uuid(), nullable=True),
    sa.Column('agent_id', sa.Uuid(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_audit_events_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_audit_events_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_conversation_id', ['conversation_id', 'id'], unique=False)

    op.create_table('conversation_labels',
    sa.Column('conversation_id', sa.Uuid(), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_labels_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'label', name=op.f('pk_conversation_labels'))
    )
    with op.batch_alter_table('conversation_labels', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_labels_label', ['label'], unique=False)

    op.create_table('conversation_sla',
    sa.Column('conversation_id', sa.Uuid(), nullable=False),
    sa.Column('handed_off_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_response_due_at', crm_store.columns.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution_due_at', crm_store.columns.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_sla_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_conversation_sla'))
    )


def downgrade() -> None:
    op.drop_table('conversation_sla')
    with op.batch_alter_table('conversation_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_labels_label')

    op.drop_table('conversation_labels')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_conversation_id')

    op.drop_table('audit_events')
    with op.batch_alter_table('team_members', schema=None) as batch_op:
        batch_op.drop_index('ix_team_members_agent_id')

    op.drop_table('team_members')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_agent_id'))

    op.drop_table('console_sessions')
    op.drop_table('agent_settings')
    op.drop_table('teams')
    op.drop_table('sla_policies')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_email')
        batch_op.drop_index('ix_login_failures_address')

    op.drop_table('login_failures')
    op.drop_table('canned_responses')
