"""Recomputing only the values whose inputs moved since the computation the store holds.

Every staged fact table (metrics.staging) is a function of the store, the settings, the code and
the local date. A computation keeps a copy of its staged facts (`kpi_base_<table>`); the next one,
under the same settings, code, day and served inputs, stages afresh and compares: a staged row
that appeared, vanished or changed (a deal moved to another period or owner, an account to another
region, a rate that converts its amount differently, a merge that moved a reference) names the
periods it sits in, old and new. A Ratio, Total or Median value of a period depends only on the
staged rows of that period, so only those periods are aggregated again, every grain of them, and
the rest of the stored values stand. Custom and derived KPIs, whose values reach across periods and
tables, are recomputed whole. Anything else (settings, code, a new day, a subset computation in
between, a failed store) falls back to a full computation.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    inspect,
    select,
    tuple_,
    update,
)

from metrics.declaration import KpiValue
from metrics.models import KpiComputation, KpiValueRecord
from metrics.options import MetricConfig
from metrics.periods import KINDS
from metrics.reuse import code_digest, settings_digest

BASE = "kpi_base_"  # + a staged table's name: its copy from the last computation
STATE = Table(
    "kpi_base_state",
    MetaData(),
    Column("computation_id", Integer),
    Column("inputs", String),
    Column("token", String),
)
COMPUTATIONS: Table = KpiComputation.__table__  # type: ignore[attr-defined]
VALUES: Table = KpiValueRecord.__table__  # type: ignore[attr-defined]


def base_inputs(config: MetricConfig, now: datetime, missing: Mapping[str, str]) -> str:
    """A digest of what staged facts and values depend on besides the records (`missing`: the
    inputs no source holds, with why)."""
    inputs = {
        "settings": settings_digest(config),
        "code": code_digest(),
        "today": now.astimezone(config.zone).date().isoformat(),
        "missing": sorted(missing.items()),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def ready(connection: Connection, inputs: str) -> bool:
    """Whether the kept staged facts are those of the computation whose values the store holds,
    under the same settings, code, day and served inputs."""
    if not inspect(connection).has_table(STATE.name):
        return False
    kept = connection.execute(select(STATE.c.computation_id, STATE.c.inputs)).all()
    if len(kept) != 1 or kept[0].inputs != inputs or kept[0].computation_id is None:
        return False
    last = connection.execute(
        select(COMPUTATIONS.c.id, COMPUTATIONS.c.reused_from)
        .where(COMPUTATIONS.c.finished_at.is_not(None))
        .order_by(COMPUTATIONS.c.id.desc())
        .limit(1)
    ).first()
    return last is not None and kept[0].computation_id in (last.id, last.reused_from)


def moved(
    connection: Connection, staged: dict[str, Table]
) -> dict[tuple[str, str], set[date]] | None:
    """Per (staged table, period column), the period starts of the staged rows that differ from
    the kept copy (rows counted with their multiplicity); None when a copy is missing or shaped
    differently."""
    quote = connection.dialect.identifier_preparer.quote
    tables = inspect(connection)
    out: dict[tuple[str, str], set[date]] = {}
    for name, table in staged.items():
        names = [c.name for c in table.columns]
        if not tables.has_table(BASE + name) or sorted(
            c["name"] for c in tables.get_columns(BASE + name)
        ) != sorted(names):
            return None
        periods = [
            c.name
            for c in table.columns
            if isinstance(c.type, Date) and c.name.split("_")[-1] in KINDS
        ]
        columns = ", ".join(quote(n) for n in names)
        sql = (
            f"SELECT {', '.join(quote(p) for p in periods)} FROM ("
            f"SELECT {columns}, 1 AS w_ FROM {quote(name)} UNION ALL "
            f"SELECT {columns}, -1 AS w_ FROM {quote(BASE + name)}) AS both_ "
            f"GROUP BY {columns} HAVING sum(w_) <> 0"
        )
        for row in connection.exec_driver_sql(sql):
            for column, start in zip(periods, row, strict=True):
                if start is not None:
                    out.setdefault((name, column), set()).add(as_date(start))
    return out


def keep_base(connection: Connection, staged: dict[str, Table], inputs: str) -> str:
    """Keep a copy of this computation's staged facts, pending until its values are stored;
    returns the token that confirms it (a computation running beside this one replaces it)."""
    quote = connection.dialect.identifier_preparer.quote
    STATE.create(connection, checkfirst=True)
    connection.execute(delete(STATE))
    for name, table in staged.items():
        columns = ", ".join(quote(c.name) for c in table.columns)
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(BASE + name)}")
        connection.exec_driver_sql(
            f"CREATE TABLE {quote(BASE + name)} AS SELECT {columns} FROM {quote(name)}"
        )
    token = uuid.uuid4().hex
    connection.execute(STATE.insert().values(computation_id=None, inputs=inputs, token=token))
    return token


def confirm(engine: Engine, computation_id: int, token: str) -> None:
    """The kept staged facts `token` are those of computation `computation_id`, now stored."""
    with engine.begin() as connection:
        connection.execute(
            update(STATE).where(STATE.c.token == token).values(computation_id=computation_id)
        )


def standing_values(connection: Connection, wanted: set[tuple[str, str]]) -> list[KpiValue]:
    """The stored values of the (KPI, grain) pairs `wanted`."""
    columns = [
        VALUES.c[n]
        for n in (
            "kpi",
            "period",
            "period_start",
            "grain",
            "key",
            "value",
            "count",
            "excluded",
            "reason",
        )
    ]
    query = select(*columns).where(tuple_(VALUES.c.kpi, VALUES.c.grain).in_(sorted(wanted)))
    return [KpiValue(r[0], r[1], as_date(r[2]), *r[3:]) for r in connection.execute(query)]


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
