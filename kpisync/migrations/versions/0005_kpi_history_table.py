"""kpi_snapshots keeps only superseded versions: drop the copies of the current values

Until now every computation wrote each changed value twice: into kpi_values and into
kpi_snapshots. Now a version moves to kpi_snapshots only when a later computation replaces it, so
the snapshot rows that repeat the current value are removed; history reads both tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM kpi_snapshots WHERE EXISTS (SELECT 1 FROM kpi_values v "
        "WHERE v.kpi = kpi_snapshots.kpi AND v.period = kpi_snapshots.period "
        "AND v.period_start = kpi_snapshots.period_start AND v.grain = kpi_snapshots.grain "
        "AND v.key = kpi_snapshots.key AND v.computation_id = kpi_snapshots.computation_id)"
    )


def downgrade() -> None:
    op.execute(
        "INSERT INTO kpi_snapshots (computation_id, kpi, period, period_start, grain, key, value, "
        "count, excluded, reason, computed_at) SELECT computation_id, kpi, period, period_start, "
        "grain, key, value, count, excluded, reason, computed_at FROM kpi_values "
        "WHERE computation_id IS NOT NULL"
    )
