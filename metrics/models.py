"""Bookkeeping tables of the KPI engine: computations, current values, snapshots, alert state.

`kpi_values` holds the newest value of each (kpi, period, period start, grain, key);
`kpi_snapshots` keeps every version a later computation replaced (or stopped producing), so a
value's history is its snapshots plus its current row, recomputing unchanged data adds nothing and
`kpisync kpis --history` shows how values moved. `kpi_alert_state` remembers which alerts are
crossed, so each crossing is sent once.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from kpisync.store.types import UTCDateTime


class KpiComputation(SQLModel, table=True):
    __tablename__ = "kpi_computations"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    as_of: datetime = Field(sa_type=UTCDateTime)
    values: int = 0
    changed: int = 0
    inputs: str | None = Field(default=None, max_length=64)  # metrics.reuse.fingerprint
    reused_from: int | None = None  # set when the inputs were unchanged and no value was recomputed


class KpiValueRecord(SQLModel, table=True):
    __tablename__ = "kpi_values"
    __table_args__ = (UniqueConstraint("kpi", "period", "period_start", "grain", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    kpi: str = Field(max_length=64)
    period: str = Field(max_length=8)
    period_start: date
    grain: str = Field(max_length=16)
    key: str = Field(max_length=128)
    value: float | None = None
    count: int | None = None
    excluded: int | None = None
    reason: str | None = None
    computed_at: datetime = Field(sa_type=UTCDateTime)
    computation_id: int | None = None


class KpiSnapshot(SQLModel, table=True):
    __tablename__ = "kpi_snapshots"
    __table_args__ = (
        Index("ix_kpi_snapshots_lookup", "kpi", "period", "grain", "key", "period_start"),
        Index("ix_kpi_snapshots_computed_at", "computed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    computation_id: int
    kpi: str = Field(max_length=64)
    period: str = Field(max_length=8)
    period_start: date
    grain: str = Field(max_length=16)
    key: str = Field(max_length=128)
    value: float | None = None
    count: int | None = None
    excluded: int | None = None
    reason: str | None = None
    computed_at: datetime = Field(sa_type=UTCDateTime)


class AlertState(SQLModel, table=True):
    __tablename__ = "kpi_alert_state"

    rule: str = Field(primary_key=True, max_length=128)
    key: str = Field(primary_key=True, max_length=128)
    crossed: bool = False
    delivered: bool = False  # the webhook accepted the notice of the current crossing
    period_start: date | None = None
    value: float | None = None
    changed_at: datetime = Field(sa_type=UTCDateTime)
