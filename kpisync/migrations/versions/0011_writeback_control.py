"""write-back under the admin's control: fields held after a revert, the calls of each run

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import kpisync.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UTC = kpisync.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "writeback_holds",
        sa.Column("source", sa.String(length=64), primary_key=True),
        sa.Column("entity", sa.String(length=64), primary_key=True),
        sa.Column("field", sa.String(length=128), primary_key=True),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("held_at", UTC, nullable=False),
    )
    with op.batch_alter_table("writeback_runs") as batch:
        batch.add_column(sa.Column("api_calls", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("writeback_runs") as batch:
        batch.drop_column("api_calls")
    op.drop_table("writeback_holds")
