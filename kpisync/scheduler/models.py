"""The bookkeeping of unattended runs, in the store (migration 0004).

PipelineRun   one scheduled slot of one connector instance: claimed by exactly one worker
              (unique source + due_at), then sync -> compute -> write-back; its outcome
ApiBudgetDay  per CRM org and day: the calls kpisync made (sync and write-back, every worker)
              and the allowance the CRM last said was left
OpsIncident   an operations alert (a connector failing N runs in a row, or stale data): open
              until the condition clears; `notified` once the webhook accepted the notice
JOBS_TABLE    APScheduler's job store table (its own schema, created here so Alembic owns it)
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from kpisync.store.types import UTCDateTime

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only
JOBS_TABLE = "kpisync_jobs"

# PipelineRun.status
CLAIMED, RUNNING = "claimed", "running"
SUCCEEDED, FAILED, INTERRUPTED = "succeeded", "failed", "interrupted"
BUDGET = "budget"  # stopped at a checkpoint: the org's API share is used; the next run resumes
SKIPPED = "skipped"  # another run of the instance was still going: coalesced into it
ABANDONED = "abandoned"  # its worker died without recording an end
LOST = "lost"  # it could no longer prove its lease (taken over, or the store went away): stopped
FINISHED = (SUCCEEDED, FAILED, INTERRUPTED, BUDGET, SKIPPED, ABANDONED, LOST)


class PipelineRun(SQLModel, table=True):
    __tablename__ = "pipeline_runs"
    __table_args__ = (UniqueConstraint("source", "due_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    source: str = Field(max_length=64, index=True)
    due_at: datetime = Field(sa_type=UTCDateTime)
    trigger: str = Field(default="schedule", max_length=16)  # schedule | once
    worker: str = Field(max_length=128)
    status: str = Field(default=CLAIMED, max_length=16)
    claimed_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sync_run_id: int | None = None
    upserted: int = 0
    deleted: int = 0
    api_calls: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # stage -> calls
    stages: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # stage -> outcome
    error: str | None = None


class ApiBudgetDay(SQLModel, table=True):
    __tablename__ = "api_budget_days"

    org: str = Field(primary_key=True, max_length=64)
    day: date = Field(primary_key=True)
    calls: int = 0
    remaining: int | None = None  # as the CRM last reported it
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OpsIncident(SQLModel, table=True):
    __tablename__ = "ops_incidents"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)  # failing | stale | writeback_paused
    opened_at: datetime = Field(sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    detail: str = ""
    notified: bool = False  # the webhook accepted the opening notice (or none is configured)
