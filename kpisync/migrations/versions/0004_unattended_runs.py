"""unattended runs: pipeline runs, API budget per org and day, ops incidents, APScheduler's jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kpisync.store.types

revision = "0004"
down_revision = "0003"
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


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("source", _text(64), nullable=False),
        sa.Column("due_at", UTC, nullable=False),
        sa.Column("trigger", _text(16), nullable=False),
        sa.Column("worker", _text(128), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("claimed_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("sync_run_id", sa.Integer(), nullable=True),
        sa.Column("upserted", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.JSON(), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("error", _text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "due_at"),
    )
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pipeline_runs_source"), ["source"], unique=False)

    op.create_table(
        "api_budget_days",
        sa.Column("org", _text(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("read_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("org", "day"),
    )
    op.create_table(
        "ops_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", _text(64), nullable=False),
        sa.Column("kind", _text(16), nullable=False),
        sa.Column("opened_at", UTC, nullable=False),
        sa.Column("closed_at", UTC, nullable=True),
        sa.Column("detail", _text(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ops_incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ops_incidents_source"), ["source"], unique=False)

    # APScheduler 3's SQLAlchemyJobStore schema, so the job store finds its table ready
    op.create_table(
        "kpisync_jobs",
        sa.Column("id", sa.Unicode(191), nullable=False),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kpisync_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_kpisync_jobs_next_run_time"), ["next_run_time"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("kpisync_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kpisync_jobs_next_run_time"))
    op.drop_table("kpisync_jobs")
    with op.batch_alter_table("ops_incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_incidents_source"))
    op.drop_table("ops_incidents")
    op.drop_table("api_budget_days")
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_runs_source"))
    op.drop_table("pipeline_runs")
