"""Write-back bookkeeping in the store: runs, the outbox, the audit, values last written, pauses.

WriteRun      one `kpisync writeback` (or revert) of one source: status and counts
OutboxItem    one planned field write, stored before it is sent; its status moves
              pending -> sending -> written | failed | not_found (| pending again after a
              crash whose in-flight batch could not be confirmed)
AuditEntry    one row per outbox item once its result is known: old, new, result, time;
              on a conflict `person_value` keeps what a person had typed over ours
WrittenValue  per (source, entity, record, field): the value kpisync last wrote and when;
              `gone_at` when the CRM said the record no longer exists
MappingPause  a mapping (source, entity, field) stopped by the target drift guard, and why
FieldHold     a field (source, entity, field) a revert put back, held until resumed
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from kpisync.store.types import UTCDateTime

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


class WriteRun(SQLModel, table=True):
    __tablename__ = "writeback_runs"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64, index=True)
    kind: str = Field(default="write", max_length=16)  # write | revert
    reverts_run: int | None = None
    # running | succeeded | partial | failed | planned | superseded
    status: str = Field(default="running", max_length=16)
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    as_of: datetime | None = Field(default=None, sa_type=UTCDateTime)
    planned: int = 0
    written: int = 0
    failed: int = 0
    not_found: int = 0
    conflicts: int = 0
    write_calls: int = 0
    api_calls: int = 0  # every call the run made, as it printed them
    error: str | None = None


class OutboxItem(SQLModel, table=True):
    __tablename__ = "writeback_outbox"
    __table_args__ = (
        UniqueConstraint("run_id", "entity", "external_id", "field"),
        Index("ix_writeback_outbox_open", "run_id", "status", "entity", "external_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    run_id: int = Field(index=True)
    source: str = Field(max_length=64)
    entity: str = Field(max_length=64)
    external_id: str = Field(max_length=64)
    field: str = Field(max_length=128)
    score: str = Field(max_length=64)
    old_value: str | None = None
    new_value: str | None = None
    conflict: bool = False
    person_value: str | None = None
    status: str = Field(default="pending", max_length=16)
    sending_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = None


class AuditEntry(SQLModel, table=True):
    __tablename__ = "writeback_audit"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    run_id: int = Field(index=True)
    outbox_id: int = Field(sa_type=ROW_ID, unique=True)
    source: str = Field(max_length=64)
    entity: str = Field(max_length=64)
    external_id: str = Field(max_length=64)
    field: str = Field(max_length=128)
    score: str = Field(max_length=64)
    old_value: str | None = None
    new_value: str | None = None
    conflict: bool = False
    person_value: str | None = None
    result: str = Field(max_length=16)  # written | failed | not_found
    error: str | None = None
    at: datetime = Field(sa_type=UTCDateTime)


class WrittenValue(SQLModel, table=True):
    __tablename__ = "writeback_state"

    source: str = Field(primary_key=True, max_length=64)
    entity: str = Field(primary_key=True, max_length=64)
    external_id: str = Field(primary_key=True, max_length=64)
    field: str = Field(primary_key=True, max_length=128)
    value: str | None = None
    written_at: datetime = Field(sa_type=UTCDateTime)
    run_id: int
    gone_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MappingPause(SQLModel, table=True):
    __tablename__ = "writeback_pauses"

    source: str = Field(primary_key=True, max_length=64)
    entity: str = Field(primary_key=True, max_length=64)
    field: str = Field(primary_key=True, max_length=128)
    score: str = Field(max_length=64)
    reason: str
    paused_at: datetime = Field(sa_type=UTCDateTime)
    checked_at: datetime = Field(sa_type=UTCDateTime)  # paused mappings are re-checked daily


class FieldHold(SQLModel, table=True):
    """A field a revert put back: not written again until `kpisync writeback resume`."""

    __tablename__ = "writeback_holds"

    source: str = Field(primary_key=True, max_length=64)
    entity: str = Field(primary_key=True, max_length=64)
    field: str = Field(primary_key=True, max_length=128)
    run_id: int  # the revert run that held it
    held_at: datetime = Field(sa_type=UTCDateTime)
