"""deals.currency holds the CRM's text (up to 64 characters), not only a 3-letter code

A currency field mapped by role (Vtiger) may say "Euro": PostgreSQL refused the whole page for
it, and no later sync got past that page. Stored as it is, such a currency has no rate, so its
amounts are counted as left out, never summed raw.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deals") as table:
        table.alter_column(
            "currency",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=3),
            type_=sqlmodel.sql.sqltypes.AutoString(length=64),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("deals") as table:
        table.alter_column(
            "currency",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
            type_=sqlmodel.sql.sqltypes.AutoString(length=3),
            existing_nullable=True,
        )
