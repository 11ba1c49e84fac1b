"""insights: event ids and items, customer keys, scores, recommendations, clusters, item catalogue

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crm_store.columns

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('customer_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('items', JSON, nullable=True))
        batch_op.create_unique_constraint(op.f('uq_customer_events_external_id'), ['external_id'])

    op.create_table('customer_keys',
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_keys_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('external_id', name=op.f('pk_customer_keys'))
    )
    op.create_index(op.f('ix_customer_keys_customer_id'), 'customer_keys', ['customer_id'], unique=False)

    op.create_table('customer_scores',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('recency_days', sa.Float(), nullable=True),
    sa.Column('frequency', sa.Integer(), nullable=True),
    sa.Column('monetary', sa.Float(), nullable=True),
    sa.Column('rfm_r', sa.Integer(), nullable=True),
    sa.Column('rfm_f', sa.Integer(), nullable=True),
    sa.Column('rfm_m', sa.Integer(), nullable=True),
    sa.Column('rfm_cell', sa.String(length=32), nullable=True),
    sa.Column('p_alive', sa.Float(), nullable=True),
    sa.Column('expected_purchases_90d', sa.Float(), nullable=True),
    sa.Column('expected_spend', sa.Float(), nullable=True),
    sa.Column('clv', sa.Float(), nullable=True),
    sa.Column('churn_risk', sa.Float(), nullable=True),
    sa.Column('cluster', sa.Integer(), nullable=True),
    sa.Column('lead_score', sa.Float(), nullable=True),
    sa.Column('informational_value', sa.Float(), nullable=True),
    sa.Column('growth_value', sa.Float(), nullable=True),
    sa.Column('updated_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_scores_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_scores'))
    )
    op.create_index(op.f('ix_customer_scores_rfm_cell'), 'customer_scores', ['rfm_cell'], unique=False)

    op.create_table('customer_recommendations',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_recommendations_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'rank', name=op.f('pk_customer_recommendations'))
    )
    op.create_table('catalogue_items',
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('sku', name=op.f('pk_catalogue_items'))
    )
    op.create_table('customer_clusters',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('updated_at', crm_store.columns.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_clusters'))
    )


def downgrade() -> None:
    op.drop_table('customer_clusters')
    op.drop_table('catalogue_items')
    op.drop_table('customer_recommendations')
    op.drop_index(op.f('ix_customer_scores_rfm_cell'), table_name='customer_scores')
    op.drop_table('customer_scores')
    op.drop_index(op.f('ix_customer_keys_customer_id'), table_name='customer_keys')
    op.drop_table('customer_keys')
    with op.batch_alter_table('customer_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_customer_events_external_id'), type_='unique')
        batch_op.drop_column('items')
        batch_op.drop_column('external_id')
