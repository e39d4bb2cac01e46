"""kpi_snapshots indexed by computed_at, for dropping versions older than metrics.snapshot_days

Every computation deletes the superseded versions older than the retention; the index keeps that
from reading the whole table, which grows every day ("now" KPIs change daily for every account).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_kpi_snapshots_computed_at", "kpi_snapshots", ["computed_at"])


def downgrade() -> None:
    op.drop_index("ix_kpi_snapshots_computed_at", table_name="kpi_snapshots")
