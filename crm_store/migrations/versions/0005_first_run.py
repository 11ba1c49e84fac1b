"""first run: one-time passwords that must be changed; queued replies found by recipient

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN (SQLite takes a constant default): no table copy, no free pages left behind
    op.add_column('agents', sa.Column('password_must_change', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index('ix_outbox_channel_recipient', 'outbox', ['channel', 'recipient', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_channel_recipient')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('password_must_change')
