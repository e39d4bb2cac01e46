"""write-back: runs, outbox, audit, values last written, mapping pauses

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kpisync.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = kpisync.store.types.UTCDateTime(timezone=True)


def _text(length=None):
    return (
        sqlmodel.sql.sqltypes.AutoString(length=length)
        if length
        else sqlmodel.sql.sqltypes.AutoString()
    )


def _field_write_columns():
    """The columns an outbox item and its audit row share."""
    return [
        sa.Column("source", _text(64), nullable=False),
        sa.Column("entity", _text(64), nullable=False),
        sa.Column("external_id", _text(64), nullable=False),
        sa.Column("field", _text(128), nullable=False),
        sa.Column("score", _text(64), nullable=False),
        sa.Column("old_value", _text(), nullable=True),
        sa.Column("new_value", _text(), nullable=True),
        sa.Column("conflict", sa.Boolean(), nullable=False),
        sa.Column("person_value", _text(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "writeback_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", _text(64), nullable=False),
        sa.Column("kind", _text(16), nullable=False),
        sa.Column("reverts_run", sa.Integer(), nullable=True),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("as_of", UTC, nullable=True),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("written", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("not_found", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("write_calls", sa.Integer(), nullable=False),
        sa.Column("error", _text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("writeback_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_writeback_runs_source"), ["source"], unique=False)

    op.create_table(
        "writeback_outbox",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        *_field_write_columns(),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("sending_at", UTC, nullable=True),
        sa.Column("error", _text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "entity", "external_id", "field"),
    )
    with op.batch_alter_table("writeback_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_writeback_outbox_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            "ix_writeback_outbox_open", ["run_id", "status", "entity", "external_id"], unique=False
        )

    op.create_table(
        "writeback_audit",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", ROW_ID, nullable=False),
        *_field_write_columns(),
        sa.Column("result", _text(16), nullable=False),
        sa.Column("error", _text(), nullable=True),
        sa.Column("at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_id"),
    )
    with op.batch_alter_table("writeback_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_writeback_audit_run_id"), ["run_id"], unique=False)

    op.create_table(
        "writeback_state",
        sa.Column("source", _text(64), nullable=False),
        sa.Column("entity", _text(64), nullable=False),
        sa.Column("external_id", _text(64), nullable=False),
        sa.Column("field", _text(128), nullable=False),
        sa.Column("value", _text(), nullable=True),
        sa.Column("written_at", UTC, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("gone_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("source", "entity", "external_id", "field"),
    )
    op.create_table(
        "writeback_pauses",
        sa.Column("source", _text(64), nullable=False),
        sa.Column("entity", _text(64), nullable=False),
        sa.Column("field", _text(128), nullable=False),
        sa.Column("score", _text(64), nullable=False),
        sa.Column("reason", _text(), nullable=False),
        sa.Column("paused_at", UTC, nullable=False),
        sa.Column("checked_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("source", "entity", "field"),
    )


def downgrade() -> None:
    op.drop_table("writeback_pauses")
    op.drop_table("writeback_state")
    with op.batch_alter_table("writeback_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_writeback_audit_run_id"))
    op.drop_table("writeback_audit")
    with op.batch_alter_table("writeback_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_writeback_outbox_open")
        batch_op.drop_index(batch_op.f("ix_writeback_outbox_run_id"))
    op.drop_table("writeback_outbox")
    with op.batch_alter_table("writeback_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_writeback_runs_source"))
    op.drop_table("writeback_runs")
