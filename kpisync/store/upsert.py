"""Upserting many rows by (source, external_id): one executemany on SQLite, COPY on PostgreSQL.

SQLAlchemy's per-row parameter processing cost more than SQLite's own work on a sync's pages, so
the statement is compiled once per table and dialect and each row is bound by a short list of
converters; on SQLite the common types get converters that match SQLAlchemy's stored forms exactly.
On PostgreSQL a page is copied into a temporary table and upserted from there by one statement:
one INSERT ... ON CONFLICT per row in an executemany cost twice (docs/decisions/store-writer.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Date,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import JSON, TypeDecorator

from kpisync.store.types import UTCDateTime

log = logging.getLogger(__name__)
_NOT_UPDATED = {"id", "source", "external_id"}

Converter = Callable[[Any], Any]


def upsert_rows(
    connection: Connection, table: Table, rows: list[dict[str, Any]], *, only_changed: bool = False
) -> int:
    """Insert or update by (source, external_id); custom fields merge so vanished ones keep history.

    Each row carries every column but `id` (`writer.row_values` starts from the defaults). With
    `only_changed`, a stored row equal to the incoming one in everything but `synced_at` is left
    alone; returns the rows written (inserted or updated).
    """
    if not rows:
        return 0
    statement = _compiled_upsert(table, connection.dialect, only_changed)
    bound = statement.bind(_dedupe(rows))
    if statement.incoming is None:
        written = connection.exec_driver_sql(statement.sql, bound).rowcount
    else:
        written = _copy_then_upsert(connection, table, statement, bound)
    return written if only_changed else len(bound)


def _copy_then_upsert(
    connection: Connection, table: Table, statement: _Upsert, bound: list[tuple[Any, ...]]
) -> int:
    """PostgreSQL: COPY the rows into the session's incoming table, then one INSERT ... SELECT.

    The incoming table is made when missing (a creation rolled back with its transaction is made
    again), lives as long as the database session, and is emptied after each use, for a second
    call in the same transaction; each commit truncates it, so it never grows.
    """
    columns = ", ".join(map(connection.dialect.identifier_preparer.quote, statement.names))
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {statement.incoming} ON COMMIT DELETE ROWS AS "
        f"SELECT {columns} FROM {table.name} WITH NO DATA"
    )
    driver = connection.connection.driver_connection
    assert driver is not None
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {statement.incoming} ({columns}) FROM STDIN") as copy,
    ):
        for values in bound:
            copy.write_row(values)
    written = connection.exec_driver_sql(statement.sql).rowcount
    connection.exec_driver_sql(f"DELETE FROM {statement.incoming}")
    return written


def dialect_insert(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An INSERT on `table` that takes ON CONFLICT, for the store's dialect (PostgreSQL or SQLite)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def merged_json(table: Table, incoming: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return literal_column(
            f"(COALESCE({table.name}.custom::jsonb, '{{}}'::jsonb) || excluded.custom::jsonb)::json"
        )
    return func.json_patch(func.coalesce(table.c.custom, literal_column("'{}'")), incoming)


@dataclass(frozen=True)
class _Upsert:
    sql: str
    names: tuple[str, ...]  # the columns, in the order the statement (or the COPY) takes them
    converters: tuple[Converter | None, ...]
    incoming: str | None = None  # PostgreSQL: the temporary table `sql` upserts from

    def bind(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        take = itemgetter(*self.names)
        converted = [(i, convert) for i, convert in enumerate(self.converters) if convert]
        bound: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(take(row))
            for i, convert in converted:
                if values[i] is not None:
                    values[i] = convert(values[i])
            bound.append(tuple(values))
        return bound


_CACHE: dict[tuple[str, str, bool], _Upsert] = {}


def _compiled_upsert(table: Table, dialect: Dialect, only_changed: bool = False) -> _Upsert:
    key = (table.name, dialect.name, only_changed)
    if key not in _CACHE:
        _CACHE[key] = _compile(table, dialect, only_changed)
    return _CACHE[key]


def _compile(table: Table, dialect: Dialect, only_changed: bool) -> _Upsert:
    columns = [column.name for column in table.columns if column.name != "id"]
    if dialect.name == "postgresql":
        return _compile_from_incoming(table, dialect, columns, only_changed)
    insert = dialect_insert(table, dialect.name)
    changes = _changes(table, insert, dialect)
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.source, table.c.external_id],
        set_=changes,
        where=_differs(table, changes, dialect) if only_changed else None,
    )
    compiled = statement.compile(dialect=dialect, column_keys=columns)
    names = tuple(compiled.positiontup or ())  # SQLite's "?" parameters, in statement order
    if set(names) != set(columns):
        raise AssertionError(f"upsert on {table.name} binds {names}, expected its columns")
    return _Upsert(
        sql=compiled.string,
        names=names,
        converters=tuple(_column_converter(table.c[name], dialect) for name in names),
    )


def _compile_from_incoming(
    table: Table, dialect: Dialect, columns: list[str], only_changed: bool
) -> _Upsert:
    """INSERT ... SELECT from the temporary table a page is copied into (PostgreSQL)."""
    incoming = Table(
        f"kpisync_incoming_{table.name}",
        MetaData(),
        *(Column(name, table.c[name].type) for name in columns),
    )
    insert = postgresql.insert(table).from_select(columns, select(*incoming.c))
    changes = _changes(table, insert, dialect)
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.source, table.c.external_id],
        set_=changes,
        where=_differs(table, changes, dialect) if only_changed else None,
    )
    return _Upsert(
        sql=str(statement.compile(dialect=dialect)),
        names=tuple(columns),
        converters=tuple(_column_converter(table.c[name], dialect) for name in columns),
        incoming=incoming.name,
    )


def _changes(table: Table, insert: Any, dialect: Dialect) -> dict[str, Any]:
    """What a conflicting row takes from the incoming one: everything, custom fields merged."""
    changes: dict[str, Any] = {
        column.name: insert.excluded[column.name]
        for column in table.columns
        if column.name not in _NOT_UPDATED
    }
    changes["custom"] = merged_json(table, insert.excluded["custom"], dialect.name)
    return changes


def _differs(table: Table, changes: dict[str, Any], dialect: Dialect) -> ColumnElement[bool]:
    """The update's condition when equal rows are left alone: any column but `synced_at` would
    change (JSON compared as jsonb on PostgreSQL, which has no equality for json)."""
    compared = []
    for name, new in changes.items():
        if name == "synced_at":
            continue
        old: Any = table.c[name]
        if dialect.name == "postgresql" and isinstance(table.c[name].type, JSON):
            old = literal_column(f"{table.name}.{name}::jsonb")
            new = (
                literal_column(f"({new.compile(dialect=dialect)})::jsonb")
                if name == "custom"
                else literal_column(f"excluded.{name}::jsonb")
            )
        compared.append(old.is_distinct_from(new))
    return or_(*compared)


def _column_converter(column: Column[Any], dialect: Dialect) -> Converter | None:
    """How a value of `column` is bound. Amounts beyond the column are checked on every backend,
    so SQLite and PostgreSQL sum the same amounts; text is checked (NUL characters, length) only
    on PostgreSQL, which refuses such text, while SQLite stores it as given: a check on every
    text value of every row would cost SQLite's writer about a third more time."""
    convert = _converter(column.type, dialect)
    if isinstance(_underlying(column.type), String):
        if dialect.name != "postgresql":
            return convert
        convert = _without_nul if convert is None else _then(_without_nul, convert)
    return _bounded(column, convert)


def _converter(column_type: Any, dialect: Dialect) -> Converter | None:
    if isinstance(column_type, JSON):
        return _json  # the statement casts the text to JSON on PostgreSQL
    if dialect.name == "sqlite":
        if isinstance(column_type, UTCDateTime):
            return _sqlite_instant
        if isinstance(column_type, Date):
            return _sqlite_date
    processor: Converter | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _underlying(column_type: Any) -> Any:
    """The type a decorated type stores as (sqlmodel's AutoString wraps String)."""
    return column_type.impl_instance if isinstance(column_type, TypeDecorator) else column_type


def _then(first: Converter, second: Converter) -> Converter:
    return lambda value: second(first(value))


def _without_nul(value: Any) -> Any:
    """Text without NUL characters, which PostgreSQL cannot store."""
    return value.replace("\x00", "") if isinstance(value, str) and "\x00" in value else value


def _nul_free(value: Any) -> Any:
    if isinstance(value, str):
        return _without_nul(value)
    if isinstance(value, dict):
        return {_without_nul(k): _nul_free(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nul_free(item) for item in value]
    return value


def _bounded(column: Column[Any], convert: Converter | None) -> Converter | None:
    """For a nullable column of fixed size, a value it cannot hold (an amount of 10^16 or more in
    NUMERIC(20, 4), a reference longer than 64 characters) is written empty and logged:
    PostgreSQL would refuse the whole page, and one odd value in the CRM must not stop every
    sync. The record's raw payload keeps the value."""
    column_type = _underlying(column.type)
    if isinstance(column_type, Numeric) and column_type.precision is not None:
        limit = Decimal(10) ** (column_type.precision - (column_type.scale or 0))
        under = f"values under {limit}"

        def fits(value: Any) -> bool:
            try:
                return bool(abs(value) < limit)
            except (ArithmeticError, TypeError):  # NaN as a Decimal, or not a number at all
                return False
    elif isinstance(column_type, String) and column_type.length is not None:
        length: int = column_type.length
        under = f"{length} characters"

        def fits(value: Any) -> bool:
            return len(str(value)) <= length
    else:
        return convert
    if not column.nullable:
        return convert  # external ids and the like: a value that does not fit fails the page

    def within(value: Any) -> Any:
        if not fits(value):
            log.warning(
                "%s.%s: %.80r does not fit (the column holds %s); written empty, the "
                "raw payload keeps it",
                column.table.name,
                column.name,
                value,
                under,
            )
            return None
        return convert(value) if convert is not None else value

    return within


@lru_cache(maxsize=4096)  # every row of a page shares its synced_at; many share other instants
def _sqlite_instant(value: datetime) -> str:
    """SQLAlchemy's SQLite form of an instant: naive UTC with microseconds always written."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without its "+00:00"


def _sqlite_date(value: date) -> str:
    return value.isoformat()[:10]  # a datetime given to a date column keeps only its date


def _json(value: Any) -> str:
    """JSON text without NUL characters, on both backends (PostgreSQL's jsonb refuses them, and
    the custom fields are merged as jsonb). The escape is looked for in the encoded bytes, which
    costs next to nothing; a backslash written before "u0000" also matches, and only costs a
    second encoding."""
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits, which json still writes
        return json.dumps(_nul_free(value))
    if b"\\u0000" in encoded:
        encoded = orjson.dumps(_nul_free(value), option=orjson.OPT_NON_STR_KEYS)
    return encoded.decode()


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row per external id: one statement may not touch a row twice on PostgreSQL."""
    latest = {row["external_id"]: row for row in rows}
    return list(latest.values()) if len(latest) != len(rows) else rows
