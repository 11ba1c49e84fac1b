"""sequences: triggered campaigns (trigger, goal, step delays) and their enrolments

Revision ID: 0007_sequences
Revises: 0006_claimed_by (0006_claimed_by.py)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_store.columns

revision = '0007_sequences'
down_revision = '0006_claimed_by'
branch_labels = None
depends_on = None

_UTC = crm_store.columns.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('campaign_sequences',
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('trigger_kind', sa.String(length=8), nullable=False),
    sa.Column('trigger_value', sa.String(length=100), nullable=False),
    sa.Column('first_only', sa.Boolean(), nullable=False),
    sa.Column('max_age_hours', sa.Integer(), nullable=False),
    sa.Column('goal_event', sa.String(length=100), nullable=True),
    sa.Column('delays', crm_store.columns.JSONType, nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_sequences_campaign_id_campaigns'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_campaign_sequences'))
    )
    op.create_index('ix_campaign_sequences_trigger', 'campaign_sequences', ['trigger_kind', 'trigger_value'], unique=False)
    op.create_table('sequence_enrolments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('due_at', _UTC, nullable=True),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('enrolled_at', _UTC, nullable=False),
    sa.Column('ended_at', _UTC, nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_sequence_enrolments_campaign_id_campaigns'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_sequence_enrolments_customer_id_customers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequence_enrolments')),
    sa.UniqueConstraint('campaign_id', 'customer_id', name=op.f('uq_sequence_enrolments_campaign_id_customer_id'))
    )
    op.create_index('ix_sequence_enrolments_due', 'sequence_enrolments', ['status', 'due_at'], unique=False)
    op.create_index('ix_sequence_enrolments_customer', 'sequence_enrolments', ['customer_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sequence_enrolments_customer', table_name='sequence_enrolments')
    op.drop_index('ix_sequence_enrolments_due', table_name='sequence_enrolments')
    op.drop_table('sequence_enrolments')
    op.drop_index('ix_campaign_sequences_trigger', table_name='campaign_sequences')
    op.drop_table('campaign_sequences')
