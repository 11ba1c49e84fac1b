"""segment sizes over time: each segment's member count per UTC day, recorded by the scoring runs

Revision ID: 0008_segment_sizes
Revises: 0007_sequences (0007_sequences.py)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_store.columns

revision = '0008_segment_sizes'
down_revision = '0007_sequences'
branch_labels = None
depends_on = None

_UTC = crm_store.columns.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('segment_sizes',
    sa.Column('segment_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('counted_at', _UTC, nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_sizes_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', 'day', name=op.f('pk_segment_sizes'))
    )


def downgrade() -> None:
    op.drop_table('segment_sizes')
