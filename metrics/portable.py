"""SQL pieces written once for SQLite and PostgreSQL: flags, date arithmetic, staging tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    Table,
    case,
    cast,
    func,
    literal,
)
from sqlalchemy.sql import CompoundSelect, Select
from sqlalchemy.sql.elements import ColumnElement


def flag(condition: Any) -> ColumnElement[int]:
    """1 where `condition` holds, else 0: summable on both backends (PostgreSQL cannot sum booleans)."""
    return case((condition, 1), else_=0)


def ratio(numerator: Any, denominator: Any, scale: float = 1.0) -> ColumnElement[Any]:
    """numerator / denominator as a float, NULL (never 0, never an error) when the denominator is 0."""
    return case(
        (func.coalesce(denominator, 0) == 0, None),
        else_=cast(numerator, Float) * scale / cast(denominator, Float),
    )


def days_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Days from date `earlier` to date `later` (both dates)."""
    if dialect == "postgresql":
        return cast(later - earlier, Float)
    return func.julianday(later) - func.julianday(earlier)


def hours_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Hours from instant `earlier` to instant `later`."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    seconds = func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)
    return seconds / 3600.0  # julianday is a float: rounding to milliseconds drops its noise


def add_days(dialect: str, day: ColumnElement[Any], days: int) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return day + literal(days, Integer)
    return func.date(day, f"{days:+d} days")


def lowered_in(column: Any, values: tuple[str, ...]) -> ColumnElement[bool]:
    """Case-insensitive membership; false (never NULL) for an empty list."""
    if not values:
        return literal(False)
    return func.lower(column).in_([value.lower() for value in values])


def stage(
    connection: Connection,
    name: str,
    columns: list[Column[Any]],
    select: Select[Any] | CompoundSelect[Any],
    *,
    index: tuple[str, ...] = (),
) -> Table:
    """A temporary table `name` filled from `select` on `connection`; dropped with the connection.

    `index` names columns to index once filled, for a table later joined on them: a temporary
    table has no statistics, so SQLite would otherwise join it by nested scans.
    """
    table = Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])
    table.drop(connection, checkfirst=True)
    table.create(connection)
    filled = [c.name for c in columns if c.computed is None]  # generated columns fill themselves
    connection.execute(table.insert().from_select(filled, select))
    if index:
        connection.exec_driver_sql(f"CREATE INDEX {name}_index ON {name} ({', '.join(index)})")
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {name}")
    return table


def num(name: str) -> Column[Any]:
    return Column(name, Float)


def int_(name: str) -> Column[Any]:
    return Column(name, Integer)
