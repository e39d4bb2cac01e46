"""The field catalog: which fields each source has shown, since when, and which have vanished."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, select, update

from kpisync.connector import FieldInfo
from kpisync.store.models import FieldCatalog
from kpisync.store.upsert import dialect_insert


def record_fields(
    engine: Engine, source: str, fields: Sequence[FieldInfo], now: datetime
) -> list[str]:
    """Upsert what the CRM describes now; mark the rest removed. Returns newly seen custom fields."""
    table = FieldCatalog.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        known = {
            (row.entity, row.name)
            for row in connection.execute(
                select(table.c.entity, table.c.name).where(table.c.source == source)
            )
        }
        rows = [
            dict(
                source=source,
                entity=f.entity,
                name=f.name,
                label=f.label,
                type=f.type,
                is_custom=f.is_custom,
                is_writable=f.is_writable,
                first_seen_at=now,
                last_seen_at=now,
                removed_at=None,
            )
            for f in fields
        ]
        if rows:
            insert = dialect_insert(table, connection.dialect.name)
            keep = {"id", "source", "entity", "name", "first_seen_at"}
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[table.c.source, table.c.entity, table.c.name],
                    set_={
                        c.name: insert.excluded[c.name] for c in table.columns if c.name not in keep
                    },
                ),
                rows,
            )
        connection.execute(
            update(table)
            .where(
                table.c.source == source, table.c.last_seen_at < now, table.c.removed_at.is_(None)
            )
            .values(removed_at=now)
        )
    return sorted(
        f"{f.entity}.{f.name}" for f in fields if f.is_custom and (f.entity, f.name) not in known
    )
