"""run_leases: exclusivity of runs that survives a database restart (kpisync.locks.Lease)

Session advisory locks were freed by a restart while their run went on; a lease row with a fencing
token checked in every guarded transaction is not.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kpisync.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC = kpisync.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "run_leases",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("acquired_at", UTC, nullable=True),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("run_leases")
