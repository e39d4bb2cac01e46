"""What the conformance suite reads back from a store: rows, cursors, runs, duplicates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import col

from kpisync.store.models import ENTITY_MODELS, SyncRun, SyncState

Key = tuple[str, str]  # (entity, external id)


def stored_rows(engine: Engine, source: str) -> dict[Key, dict[str, Any]]:
    """Every row of `source`, deleted ones too, by (entity, external id); without the row id."""
    rows: dict[Key, dict[str, Any]] = {}
    with engine.connect() as connection:
        for entity, model in ENTITY_MODELS.items():
            table = model.__table__  # type: ignore[attr-defined]
            for row in connection.execute(select(table).where(table.c.source == source)):
                values = dict(row._mapping)
                values.pop("id")
                rows[entity, values["external_id"]] = values
    return rows


def without(rows: dict[Key, dict[str, Any]], *columns: str) -> dict[Key, dict[str, Any]]:
    return {
        key: {k: v for k, v in values.items() if k not in columns} for key, values in rows.items()
    }


def cursors(engine: Engine, source: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                select(SyncState.stream, SyncState.cursor).where(SyncState.source == source)  # type: ignore[call-overload]
            ).all()
        )


def last_run(engine: Engine, source: str) -> tuple[str, str | None]:
    """(status, error) of the source's latest sync run."""
    with engine.connect() as connection:
        row = connection.execute(
            select(SyncRun.status, SyncRun.error)  # type: ignore[call-overload]
            .where(SyncRun.source == source)
            .order_by(col(SyncRun.id).desc())
        ).first()
    assert row is not None, f"no sync run of {source} was recorded"
    return str(row[0]), row[1]


def assert_no_duplicates(engine: Engine) -> None:
    """No (source, external id) is stored twice in any entity table."""
    with engine.connect() as connection:
        for model in ENTITY_MODELS.values():
            table = model.__table__  # type: ignore[attr-defined]
            rows = connection.execute(select(func.count()).select_from(table)).scalar()
            keys = connection.execute(
                select(func.count()).select_from(
                    select(table.c.source, table.c.external_id).distinct().subquery()
                )
            ).scalar()
            assert rows == keys, f"{table.name}: {rows} rows for {keys} records (duplicates)"
