"""exchange_rates and quotas: conversion rates and revenue quotas the CRM keeps

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kpisync.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def record_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    """The columns every synced entity has (kpisync.store.models.RecordBase)."""
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("modified_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("synced_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "exchange_rates",
        *record_columns(),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("rate", sa.Numeric(30, 9), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id"),
    )
    op.create_table(
        "quotas",
        *record_columns(),
        sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("period_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(20, 4), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id"),
    )


def downgrade() -> None:
    op.drop_table("quotas")
    op.drop_table("exchange_rates")
