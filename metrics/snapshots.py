"""Storing computed values: current values upserted, a snapshot only where a value changed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from metrics.declaration import KpiValue
from metrics.models import KpiComputation, KpiSnapshot, KpiValueRecord

VALUES = KpiValueRecord.__table__  # type: ignore[attr-defined]
SNAPSHOTS = KpiSnapshot.__table__  # type: ignore[attr-defined]
COMPUTATIONS = KpiComputation.__table__  # type: ignore[attr-defined]
Key = tuple[str, str, date, str, str]


def key_of(value: KpiValue) -> Key:
    return (value.kpi, value.period, value.period_start, value.grain, value.key)


def content(value: Any) -> tuple[Any, ...]:
    number = None if value.value is None else round(float(value.value), 9)
    return (number, value.count, value.excluded, value.reason)


def store_values(engine: Engine, values: Sequence[KpiValue], *, as_of: datetime) -> tuple[int, int]:
    """Save one computation; returns (computation id, values that changed). Idempotent."""
    started = datetime.now(UTC)
    kpis = sorted({v.kpi for v in values})
    with engine.begin() as connection:
        inserted = connection.execute(COMPUTATIONS.insert().values(
            started_at=started, as_of=as_of, values=len(values), changed=0)).inserted_primary_key
        computation_id = int(inserted[0]) if inserted else 0
        existing = {
            (r.kpi, r.period, r.period_start, r.grain, r.key): content(r)
            for r in connection.execute(select(VALUES).where(VALUES.c.kpi.in_(kpis)))
        }
        fresh = {key_of(v): v for v in values}
        changed = [v for k, v in fresh.items() if existing.get(k) != content(v)]
        stale = [k for k in existing if k not in fresh]
        rows = [row_of(v, started, computation_id) for v in changed]
        upsert(connection, rows)
        for chunk in chunks(rows, 5000):
            connection.execute(SNAPSHOTS.insert(), [{k: v for k, v in row.items()} for row in chunk])
        for chunk in chunks(stale, 500):
            connection.execute(delete(VALUES).where(tuple_(
                VALUES.c.kpi, VALUES.c.period, VALUES.c.period_start, VALUES.c.grain, VALUES.c.key
            ).in_(chunk)))
        connection.execute(update(COMPUTATIONS).where(COMPUTATIONS.c.id == computation_id)
                           .values(changed=len(changed), finished_at=datetime.now(UTC)))
    return int(computation_id), len(changed)


def row_of(value: KpiValue, at: datetime, computation_id: int) -> dict[str, Any]:
    return {"kpi": value.kpi, "period": value.period, "period_start": value.period_start,
            "grain": value.grain, "key": value.key, "value": value.value, "count": value.count,
            "excluded": value.excluded, "reason": value.reason, "computed_at": at,
            "computation_id": computation_id}


def upsert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = connection.dialect.name
    insert = postgresql.insert(VALUES) if dialect == "postgresql" else sqlite.insert(VALUES)
    statement = insert.on_conflict_do_update(
        index_elements=[VALUES.c.kpi, VALUES.c.period, VALUES.c.period_start, VALUES.c.grain,
                        VALUES.c.key],
        set_={name: insert.excluded[name] for name in
              ("value", "count", "excluded", "reason", "computed_at", "computation_id")},
    )
    for chunk in chunks(rows, 5000):
        connection.execute(statement, chunk)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def latest_values(engine: Engine, kpi: str | None = None, period: str | None = None,
                  grain: str | None = None, key: str | None = None,
                  period_start: date | None = None) -> list[KpiValue]:
    """Stored current values, filtered by whatever is given, oldest period first."""
    query = select(VALUES)
    for column, wanted in (("kpi", kpi), ("period", period), ("grain", grain), ("key", key),
                           ("period_start", period_start)):
        if wanted is not None:
            query = query.where(VALUES.c[column] == wanted)
    query = query.order_by(VALUES.c.kpi, VALUES.c.period, VALUES.c.grain, VALUES.c.key,
                           VALUES.c.period_start)
    with engine.connect() as connection:
        return [as_value(r) for r in connection.execute(query)]


def value_history(engine: Engine, kpi: str, period: str, grain: str = "org",
                  key: str | None = None) -> list[tuple[datetime, KpiValue]]:
    """Every stored snapshot of a KPI: (when computed, value), by period then computation."""
    query = select(SNAPSHOTS).where(SNAPSHOTS.c.kpi == kpi, SNAPSHOTS.c.period == period,
                                    SNAPSHOTS.c.grain == grain)
    if key is not None:
        query = query.where(SNAPSHOTS.c.key == key)
    query = query.order_by(SNAPSHOTS.c.key, SNAPSHOTS.c.period_start, SNAPSHOTS.c.id)
    with engine.connect() as connection:
        return [(r.computed_at, as_value(r)) for r in connection.execute(query)]


def as_value(row: Any) -> KpiValue:
    return KpiValue(row.kpi, row.period, row.period_start, row.grain, row.key, row.value,
                    row.count, row.excluded, row.reason)
