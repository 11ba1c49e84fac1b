"""claimed_by: which live sender holds an outbox row, so a dead one's rows come back at once

Revision ID: 0006_claimed_by
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_claimed_by'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a nullable column: a plain ALTER TABLE ADD COLUMN on both stores, no table copy
    op.add_column('outbox', sa.Column('claimed_by', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')
