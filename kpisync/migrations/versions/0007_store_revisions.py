"""store_revisions and the inputs of each KPI computation: an unchanged store is not recomputed

Every write to a source's records raises that source's counter in store_revisions. A computation
records a fingerprint of its inputs (these counters, the metric settings, the engine's code, the
local date), and the next one reuses its values when nothing of that has moved.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kpisync.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_revisions",
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("changed_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source"),
    )
    with op.batch_alter_table("kpi_computations") as table:
        table.add_column(
            sa.Column("inputs", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        table.add_column(sa.Column("reused_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kpi_computations") as table:
        table.drop_column("reused_from")
        table.drop_column("inputs")
    op.drop_table("store_revisions")
