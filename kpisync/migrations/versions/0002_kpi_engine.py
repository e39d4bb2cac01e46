"""kpi engine: values, snapshots, computations, alert state; indexes the KPI queries use

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kpisync.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, index name, columns): the dates KPIs put records in periods by, and the joins they make.
INDEXES = [
    ("deals", "ix_deals_close_date", ["close_date"]),
    ("deals", "ix_deals_created_at", ["created_at"]),
    ("deals", "ix_deals_source_account", ["source", "account_id"]),
    ("deals", "ix_deals_source_owner", ["source", "owner_id"]),
    ("deal_stage_changes", "ix_deal_stage_changes_history", ["source", "deal_id", "entered_at"]),
    ("leads", "ix_leads_created_at", ["created_at"]),
    ("leads", "ix_leads_source_converted_account", ["source", "converted_account_id"]),
    ("contacts", "ix_contacts_source_account", ["source", "account_id"]),
    ("activities", "ix_activities_occurred_at", ["occurred_at"]),
    ("activities", "ix_activities_source_lead", ["source", "lead_id"]),
    ("activities", "ix_activities_source_account", ["source", "account_id"]),
    ("line_items", "ix_line_items_source_deal", ["source", "deal_id"]),
    ("survey_responses", "ix_survey_responses_answered_at", ["answered_at"]),
    ("survey_responses", "ix_survey_responses_source_contact", ["source", "contact_id"]),
    ("survey_responses", "ix_survey_responses_source_account", ["source", "account_id"]),
]


def value_columns() -> list[sa.Column]:
    return [
        sa.Column("kpi", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("grain", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("excluded", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("computed_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "kpi_computations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("as_of", kpisync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("values", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "kpi_values",
        sa.Column("id", sa.Integer(), nullable=False),
        *value_columns(),
        sa.Column("computation_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kpi", "period", "period_start", "grain", "key"),
    )
    op.create_table(
        "kpi_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("computation_id", sa.Integer(), nullable=False),
        *value_columns(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_kpi_snapshots_lookup",
        "kpi_snapshots",
        ["kpi", "period", "grain", "key", "period_start"],
        unique=False,
    )
    op.create_table(
        "kpi_alert_state",
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("crossed", sa.Boolean(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("changed_at", kpisync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule", "key"),
    )
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for table, name, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("kpi_alert_state")
    op.drop_index("ix_kpi_snapshots_lookup", table_name="kpi_snapshots")
    op.drop_table("kpi_snapshots")
    op.drop_table("kpi_values")
    op.drop_table("kpi_computations")
