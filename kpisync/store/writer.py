"""Writing one page: upserts, deletes, merges and the stream's cursor, in ONE transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, and_, select, update

from kpisync.connector import Deleted, Merged, Page
from kpisync.cursor import Cursor
from kpisync.store.models import ENTITY_MODELS, RecordBase, Row, SyncState
from kpisync.store.revision import raise_revision
from kpisync.store.upsert import dialect_insert, upsert_rows


def table_of(entity: str) -> Table:
    table: Table = ENTITY_MODELS[entity].__table__  # type: ignore[attr-defined]
    return table


def write_page(
    connection: Connection, source: str, page: Page, now: datetime, *, only_changed: bool = False
) -> tuple[int, int]:
    """Apply `page` on `connection` (the caller owns the transaction); returns (upserted, deleted).

    With `only_changed` (a stream read whole), rows equal to the stored ones are not written nor
    counted."""
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in page.records:
        by_entity[record.entity].append(row_values(record, source, now))
    upserted = sum(
        upsert_rows(connection, table_of(entity), rows, only_changed=only_changed)
        for entity, rows in by_entity.items()
    )
    deleted = mark_deleted(connection, source, page.deleted, now)
    for merge in page.merged:
        apply_merge(connection, source, merge, now)
    if upserted or deleted or page.merged:
        raise_revision(connection, source, now)
    if page.cursor is not None:
        save_cursor(connection, source, page.stream, page.cursor, now)
    return upserted, deleted


def row_values(record: Row | RecordBase, source: str, now: datetime) -> dict[str, Any]:
    """All columns of one row to write: defaults, then the record's values, then bookkeeping."""
    values = dict(_defaults(record.entity))
    if isinstance(record, Row):
        values.update(record.values)
    else:
        values.update((name, getattr(record, name)) for name in values)
    values.update(source=source, synced_at=now, deleted_at=None)
    return values


@cache
def _defaults(entity: str) -> dict[str, Any]:
    return ENTITY_MODELS[entity].column_defaults()


def mark_deleted(
    connection: Connection, source: str, deleted: Sequence[Deleted], now: datetime
) -> int:
    by_entity: dict[str, list[Deleted]] = defaultdict(list)
    for item in deleted:
        by_entity[item.entity].append(item)
    count = 0
    for entity, items in by_entity.items():
        table = table_of(entity)
        for chunk in _chunks(items, 500):
            result = connection.execute(
                update(table)
                .where(table.c.source == source)
                .where(table.c.external_id.in_([item.external_id for item in chunk]))
                .where(table.c.deleted_at.is_(None))
                .values(deleted_at=now)
            )
            count += result.rowcount
    return count


def apply_merge(connection: Connection, source: str, merge: Merged, now: datetime) -> None:
    loser = table_of(merge.entity)
    connection.execute(
        update(loser)
        .where(and_(loser.c.source == source, loser.c.external_id == merge.loser_id))
        .values(deleted_at=now)
    )
    for model in ENTITY_MODELS.values():
        for column, target in model.reference_columns.items():
            if target != merge.entity:
                continue
            table = model.__table__  # type: ignore[attr-defined]
            connection.execute(
                update(table)
                .where(table.c.source == source)
                .where(table.c[column] == merge.loser_id)
                .values({column: merge.survivor_id})
            )


def save_cursor(
    connection: Connection, source: str, stream: str, cursor: Cursor, now: datetime
) -> None:
    table = SyncState.__table__  # type: ignore[attr-defined]
    statement = dialect_insert(table, connection.dialect.name).values(
        source=source, stream=stream, cursor=cursor.to_json(), updated_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.source, table.c.stream],
            set_={"cursor": statement.excluded.cursor, "updated_at": statement.excluded.updated_at},
        )
    )


def load_cursor(connection: Connection, source: str, stream: str) -> Cursor:
    table = SyncState.__table__  # type: ignore[attr-defined]
    row = connection.execute(
        select(table.c.cursor).where(table.c.source == source, table.c.stream == stream)
    ).first()
    return Cursor.from_json(row[0] if row else None)


def load_state(connection: Connection, source: str, stream: str) -> datetime | None:
    """When the stream's state row was last written, or None if it has none."""
    table = SyncState.__table__  # type: ignore[attr-defined]
    return connection.execute(
        select(table.c.updated_at).where(table.c.source == source, table.c.stream == stream)
    ).scalar()


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
