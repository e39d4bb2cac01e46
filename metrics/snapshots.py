"""Storing computed values: the current value of each key, and the versions it superseded.

`kpi_values` holds the newest value of each key; when a computation changes a value (or no longer
produces it), the version it replaces moves to `kpi_snapshots` first. A first computation therefore
writes each value once, and recomputing unchanged data writes nothing. The values of one
computation (half a million at a million deals) are bulk-loaded into a temporary table (COPY on
PostgreSQL, one executemany on SQLite); comparing, archiving, upserting and removing stale values
are then set-based statements, so no stored value passes through Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)

from kpisync.store.types import UTCDateTime
from kpisync.store.upsert import dialect_insert
from metrics.declaration import KpiValue, Scope
from metrics.models import KpiComputation, KpiSnapshot, KpiValueRecord
from metrics.portable import stage

VALUES = KpiValueRecord.__table__  # type: ignore[attr-defined]
SNAPSHOTS = KpiSnapshot.__table__  # type: ignore[attr-defined]
COMPUTATIONS = KpiComputation.__table__  # type: ignore[attr-defined]
KEY = ("kpi", "period", "period_start", "grain", "key")
CONTENT = ("value", "count", "excluded", "reason")
VERSION = ("computation_id", "computed_at")
TOLERANCE = 1e-9  # relative: float sums may differ in their last bits between two runs


def fresh_columns() -> list[Column[Any]]:
    return [
        Column("kpi", String),
        Column("period", String),
        Column("period_start", Date),
        Column("grain", String),
        Column("key", String),
        Column("value", Float),
        Column("count", Integer),
        Column("excluded", Integer),
        Column("reason", String),
    ]


def store_values(
    engine: Engine,
    values: Sequence[KpiValue],
    *,
    as_of: datetime,
    inputs: str | None = None,
    scope: Scope | None = None,
) -> tuple[int, int]:
    """Save one computation; returns (computation id, values that changed). Idempotent.

    `inputs` is the computation's fingerprint (metrics.reuse), kept so the next one can reuse it.
    Without `scope` the values replace every stored value of their KPIs; with one (an incremental
    computation, metrics.incremental) only the stored values inside it, the rest stand.
    """
    started = datetime.now(UTC)
    kpis = sorted({v.kpi for v in values})
    with engine.begin() as connection:
        inserted = connection.execute(
            COMPUTATIONS.insert().values(
                started_at=started, as_of=as_of, values=len(values), changed=0, inputs=inputs
            )
        ).inserted_primary_key
        computation_id = int(inserted[0]) if inserted else 0
        fresh = load_fresh(connection, values)
        changed = stage(connection, "kpi_changed", fresh_columns(), changed_query(fresh))
        count = connection.execute(select(func.count()).select_from(changed)).scalar_one()
        temporary = [fresh, changed]
        gone = ~exists().where(same_key(fresh, VALUES))
        if scope is None:
            stale = and_(VALUES.c.kpi.in_(kpis), gone) if kpis else None
        else:  # driven from the slices, so the key index finds the few stored values they cover
            slices = load_slices(connection, scope)
            ids = stage(
                connection,
                "kpi_stale",
                [Column("id", Integer)],
                union_all(
                    select(VALUES.c.id)
                    .select_from(
                        slices.join(
                            VALUES,
                            and_(
                                *[
                                    slices.c[name] == VALUES.c[name]
                                    for name in ("kpi", "period", "period_start")
                                ]
                            ),
                        )
                    )
                    .where(gone),
                    select(VALUES.c.id).where(VALUES.c.kpi.in_(sorted(scope.whole)), gone),
                ),
            )
            temporary += [slices, ids]
            stale = VALUES.c.id.in_(select(ids.c.id))
        superseded = VALUES.c.id.in_(
            select(VALUES.c.id).select_from(  # driven from the few
                changed.join(VALUES, same_key(changed, VALUES))
            )
        )  # changed, by the key index
        archive(connection, superseded)
        if stale is not None:
            archive(connection, stale)
        upsert(
            connection, changed, [literal(computation_id, Integer), literal(started, UTCDateTime())]
        )
        if stale is not None:
            connection.execute(delete(VALUES).where(stale))
        standing = (
            len(values)
            if scope is None
            else connection.execute(
                select(func.count()).where(VALUES.c.kpi.in_(sorted(scope.kpis)))
            ).scalar_one()
        )
        connection.execute(
            update(COMPUTATIONS)
            .where(COMPUTATIONS.c.id == computation_id)
            .values(changed=count, values=standing, finished_at=datetime.now(UTC))
        )
        for table in temporary:
            table.drop(connection)
    return computation_id, int(count)


def load_slices(connection: Connection, scope: Scope) -> Table:
    """A temporary table of the (KPI, period kind, period start) an incremental computation covers."""
    table = Table(
        "kpi_slices",
        MetaData(),
        Column("kpi", String),
        Column("period", String),
        Column("period_start", Date),
        prefixes=["TEMPORARY"],
    )
    table.drop(connection, checkfirst=True)
    table.create(connection)
    if scope.sliced:
        connection.execute(
            table.insert(),
            [{"kpi": k, "period": p, "period_start": s} for k, p, s in sorted(scope.sliced)],
        )
    connection.exec_driver_sql(
        "CREATE INDEX kpi_slices_key ON kpi_slices (kpi, period, period_start)"
    )
    return table


def record_reuse(engine: Engine, kept: int, *, as_of: datetime, inputs: str) -> tuple[int, int]:
    """Record a computation that kept computation `kept`'s values; returns its id and how many
    values stand."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        values = connection.execute(
            select(COMPUTATIONS.c["values"]).where(COMPUTATIONS.c.id == kept)
        ).scalar_one()
        inserted = connection.execute(
            COMPUTATIONS.insert().values(
                started_at=now,
                finished_at=now,
                as_of=as_of,
                values=values,
                changed=0,
                inputs=inputs,
                reused_from=kept,
            )
        ).inserted_primary_key
    return (int(inserted[0]) if inserted else 0), int(values)


def stored_values(engine: Engine, kpis: set[str]) -> list[KpiValue]:
    """The current stored values of `kpis`, in no particular order."""
    columns = [VALUES.c[name] for name in (*KEY, *CONTENT)]  # KpiValue's fields, in its order
    with engine.connect() as connection:
        return [
            KpiValue(*row)
            for row in connection.execute(select(*columns).where(VALUES.c.kpi.in_(kpis)))
        ]


def prune_snapshots(engine: Engine, *, older_than: datetime) -> int:
    """Drop the superseded versions computed before `older_than`; returns how many.

    Without it the table grows for as long as kpisync runs: "now" KPIs such as days since the
    last touch change every day for every account, whether or not the CRM changed.
    """
    with engine.begin() as connection:
        result = connection.execute(delete(SNAPSHOTS).where(SNAPSHOTS.c.computed_at < older_than))
    return int(result.rowcount or 0)


def same_key(table: Table, other: Table) -> Any:
    return and_(*[table.c[name] == other.c[name] for name in KEY])


def archive(connection: Connection, which: Any) -> None:
    """Move the current versions matching `which` into the snapshots (before they are replaced)."""
    columns = (*KEY, *CONTENT, *VERSION)
    connection.execute(
        SNAPSHOTS.insert().from_select(
            columns, select(*[VALUES.c[name] for name in columns]).where(which)
        )
    )


def load_fresh(connection: Connection, values: Sequence[KpiValue]) -> Table:
    """A temporary table of `values` (the last one of each key wins), indexed by key."""
    rows = {
        (v.kpi, v.period, v.period_start, v.grain, v.key): (v.value, v.count, v.excluded, v.reason)
        for v in values
    }
    table = Table("kpi_fresh", MetaData(), *fresh_columns(), prefixes=["TEMPORARY"])
    table.drop(connection, checkfirst=True)
    table.create(connection)
    columns = ", ".join(c.name for c in table.columns)
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY kpi_fresh ({columns}) FROM STDIN") as copy,
        ):
            for key, content in rows.items():
                copy.write_row(key + content)
    else:
        marks = ", ".join("?" for _ in table.columns)
        connection.exec_driver_sql(
            f"INSERT INTO kpi_fresh ({columns}) VALUES ({marks})",
            [(k[0], k[1], k[2].isoformat(), k[3], k[4], *c) for k, c in rows.items()],
        )
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE kpi_fresh")  # PostgreSQL hash-joins it: no index
    else:
        connection.exec_driver_sql(
            "CREATE UNIQUE INDEX kpi_fresh_key ON kpi_fresh (kpi, period, period_start, grain, key)"
        )
    return table


def changed_query(fresh: Table) -> Any:
    """The fresh values whose stored twin is missing or holds something else."""
    f, v = fresh.c, VALUES.c
    different_number = or_(
        f.value.is_(None) != v.value.is_(None),
        func.abs(f.value - v.value) > TOLERANCE * (1 + func.abs(v.value)),
    )
    return (
        select(*[f[name] for name in (*KEY, *CONTENT)])
        .select_from(fresh.outerjoin(VALUES, and_(*[f[name] == v[name] for name in KEY])))
        .where(
            or_(
                v.id.is_(None),
                different_number,
                *[f[name].is_distinct_from(v[name]) for name in ("count", "excluded", "reason")],
            )
        )
    )


def upsert(connection: Connection, changed: Table, stamp: list[Any]) -> None:
    """Insert or overwrite the changed values, stamped with this computation."""
    insert = dialect_insert(VALUES, connection.dialect.name)
    # Key order keeps the unique index's inserts at its right edge: far fewer page splits.
    rows = (
        select(*[changed.c[name] for name in (*KEY, *CONTENT)], *stamp)
        .where(literal(True))
        .order_by(*[changed.c[name] for name in KEY])
    )
    statement = insert.from_select([*KEY, *CONTENT, *VERSION], rows)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[VALUES.c[name] for name in KEY],
            set_={name: statement.excluded[name] for name in (*CONTENT, *VERSION)},
        )
    )


def latest_values(
    engine: Engine,
    kpi: str | None = None,
    period: str | None = None,
    grain: str | None = None,
    key: str | None = None,
    period_start: date | None = None,
) -> list[KpiValue]:
    """Stored current values, filtered by whatever is given, oldest period first."""
    return [value for _, value in current_values(engine, kpi, period, grain, key, period_start)]


def current_values(
    engine: Engine,
    kpi: str | None = None,
    period: str | None = None,
    grain: str | None = None,
    key: str | None = None,
    period_start: date | None = None,
) -> list[tuple[datetime, KpiValue]]:
    """As latest_values, each with when it was computed."""
    query = select(VALUES)
    for column, wanted in (
        ("kpi", kpi),
        ("period", period),
        ("grain", grain),
        ("key", key),
        ("period_start", period_start),
    ):
        if wanted is not None:
            query = query.where(VALUES.c[column] == wanted)
    query = query.order_by(
        VALUES.c.kpi, VALUES.c.period, VALUES.c.grain, VALUES.c.key, VALUES.c.period_start
    )
    with engine.connect() as connection:
        return [(r.computed_at, as_value(r)) for r in connection.execute(query)]


def value_history(
    engine: Engine, kpi: str, period: str, grain: str = "org", key: str | None = None
) -> list[tuple[datetime, KpiValue]]:
    """Every version of a KPI's values: (when computed, value), by key, period, then time."""
    columns = (*KEY, *CONTENT, *VERSION)
    parts = []
    for table in (SNAPSHOTS, VALUES):
        query = select(*[table.c[name] for name in columns]).where(
            table.c.kpi == kpi, table.c.period == period, table.c.grain == grain
        )
        parts.append(query if key is None else query.where(table.c.key == key))
    versions = union_all(*parts).subquery("versions")
    query = select(versions).order_by(
        versions.c.key, versions.c.period_start, versions.c.computed_at, versions.c.computation_id
    )
    with engine.connect() as connection:
        return [(r.computed_at, as_value(r)) for r in connection.execute(query)]


def as_value(row: Any) -> KpiValue:
    return KpiValue(
        row.kpi,
        row.period,
        row.period_start,
        row.grain,
        row.key,
        row.value,
        row.count,
        row.excluded,
        row.reason,
    )


def last_computed_at(engine: Engine) -> datetime | None:
    """When the last computation finished (aware UTC), or None before the first."""
    with engine.connect() as connection:
        found = connection.execute(select(func.max(COMPUTATIONS.c.finished_at))).scalar()
    return found
