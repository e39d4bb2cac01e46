"""Alembic environment: runs on the connection kpisync hands over (never on a URL from a file)."""

from alembic import context
from sqlmodel import SQLModel

import kpisync.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import metrics.models  # noqa: F401  (KPI snapshots, alert state, imported inputs)
import writeback.models  # noqa: F401  (outbox, audit, write runs, pauses)

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
