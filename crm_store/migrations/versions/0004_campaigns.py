"""campaigns: consent history, segments, campaigns, runs, skips; campaign columns of the outbox

Revision ID: 0004
Revises: 0002 (the lead chains it after 0003 when merging)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_store.columns

revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None

_UTC = crm_store.columns.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('consent_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('agent_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', _UTC, nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_consent_events_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_consent_events_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_events'))
    )
    op.create_index('ix_consent_events_customer_id', 'consent_events', ['customer_id', 'created_at'], unique=False)
    op.create_table('segments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('rule', crm_store.columns.JSONType, nullable=True),
    sa.Column('created_at', _UTC, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments'))
    )
    op.create_table('segment_members',
    sa.Column('segment_id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_segment_members_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_members_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', 'customer_id', name=op.f('pk_segment_members'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('segment_id', sa.Uuid(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('spec', crm_store.columns.JSONType, nullable=False),
    sa.Column('next_fire_at', _UTC, nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', _UTC, nullable=False),
    sa.Column('updated_at', _UTC, nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['agents.id'], name=op.f('fk_campaigns_created_by_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_campaigns_segment_id_segments'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_index('ix_campaigns_next_fire_at', 'campaigns', ['next_fire_at'], unique=False)
    op.create_table('campaign_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('fire_key', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cursor', sa.Uuid(), nullable=True),
    sa.Column('started_at', _UTC, nullable=False),
    sa.Column('materialized_at', _UTC, nullable=True),
    sa.Column('finished_at', _UTC, nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_runs_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_runs')),
    sa.UniqueConstraint('campaign_id', 'fire_key', name=op.f('uq_campaign_runs_campaign_id_fire_key'))
    )
    op.create_table('campaign_skips',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('variant', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id'], name=op.f('fk_campaign_skips_run_id_campaign_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'customer_id', name=op.f('pk_campaign_skips'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('campaign_run_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('campaign_variant', sa.String(length=32), nullable=True))
    op.create_index('uq_outbox_campaign_run_customer', 'outbox', ['campaign_run_id', 'customer_id'], unique=True,
                    sqlite_where=sa.text('campaign_run_id IS NOT NULL'), postgresql_where=sa.text('campaign_run_id IS NOT NULL'))
    op.create_index('ix_outbox_campaign_customer', 'outbox', ['customer_id', 'created_at'], unique=False,
                    sqlite_where=sa.text('campaign_run_id IS NOT NULL'), postgresql_where=sa.text('campaign_run_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_outbox_campaign_customer', table_name='outbox')
    op.drop_index('uq_outbox_campaign_run_customer', table_name='outbox')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('campaign_variant')
        batch_op.drop_column('campaign_run_id')
    op.drop_table('campaign_skips')
    op.drop_table('campaign_runs')
    op.drop_index('ix_campaigns_next_fire_at', table_name='campaigns')
    op.drop_table('campaigns')
    op.drop_table('segment_members')
    op.drop_table('segments')
    op.drop_index('ix_consent_events_customer_id', table_name='consent_events')
    op.drop_table('consent_events')
