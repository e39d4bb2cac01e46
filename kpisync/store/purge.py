"""Hard-delete detection: rows the CRM no longer lists at all are marked deleted.

The CRM's ids are streamed into a temporary table and compared in SQL, so memory stays flat.
Only rows synced before the listing began are judged, so a record created meanwhile is safe.
A connector may `explain` rows missing from its listing that the CRM still holds in another
state (a Vtiger lead hidden by its conversion): those get the explained values, not a delete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Engine, MetaData, String, Table, exists, select, update

from kpisync.store.revision import raise_revision
from kpisync.store.writer import table_of

# (entity, ids missing from the listing) -> id -> column values for rows the CRM still holds
Explain = Callable[[str, list[str]], dict[str, dict[str, Any]]]


def mark_purged(
    engine: Engine,
    source: str,
    listing: Iterable[tuple[str, list[str]]],
    started: datetime,
    explain: Explain | None = None,
) -> int:
    metadata = MetaData()
    live = Table(
        "live_ids",
        metadata,
        Column("entity", String(64)),
        Column("external_id", String(64)),
        prefixes=["TEMPORARY"],
    )
    purged = changed = 0
    with engine.begin() as connection:
        live.create(connection)
        entities: set[str] = set()
        for entity, ids in listing:
            entities.add(entity)
            if ids:
                connection.execute(
                    live.insert(), [{"entity": entity, "external_id": i} for i in ids]
                )
        for entity in sorted(entities):
            table = table_of(entity)
            still_there = exists().where(
                live.c.entity == entity, live.c.external_id == table.c.external_id
            )
            if explain is not None:  # rows explained once (a converted lead) stay as they are
                done = table.c.is_converted if "is_converted" in table.c else None
                rows = connection.execute(
                    select(table.c.external_id, *(() if done is None else (done,))).where(
                        table.c.source == source,
                        table.c.deleted_at.is_(None),
                        table.c.synced_at < started,
                        ~still_there,
                    )
                ).all()
                explained = (
                    explain(entity, [r[0] for r in rows if len(r) == 1 or not r[1]]) if rows else {}
                )
                for external_id, values in explained.items():
                    connection.execute(
                        update(table)
                        .where(table.c.source == source, table.c.external_id == external_id)
                        .values(**values)
                    )
                changed += len(explained)
                kept = [r[0] for r in rows if r[0] in explained or (len(r) > 1 and r[1])]
                if kept:
                    connection.execute(
                        live.insert(), [{"entity": entity, "external_id": i} for i in kept]
                    )
            result = connection.execute(
                update(table)
                .where(table.c.source == source, table.c.deleted_at.is_(None))
                .where(table.c.synced_at < started)
                .where(~still_there)
                .values(deleted_at=started)
            )
            purged += result.rowcount
        live.drop(connection)
        if purged or changed:
            raise_revision(connection, source, started)
    return purged
