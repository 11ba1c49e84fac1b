"""Alembic environment: migrations run on a connection the caller supplies."""

from __future__ import annotations

from alembic import context

import crm_store.insight_tables  # noqa: F401,E402 - registers the insights tables on Base
from crm_store import campaign_tables, sequence_tables  # noqa: F401 - their tables join Base.metadata
from crm_store import segment_sizes  # noqa: F401 - its table joins Base.metadata
from crm_store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `dangol db upgrade`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
