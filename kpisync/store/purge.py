"""Hard-delete detection: rows the CRM no longer lists at all are marked deleted.

The CRM's ids are streamed into a temporary table and compared in SQL, so memory stays flat.
Only rows synced before the listing began are judged, so a record created meanwhile is safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, Engine, MetaData, String, Table, exists, update

from kpisync.store.revision import raise_revision
from kpisync.store.writer import table_of


def mark_purged(engine: Engine, source: str, listing: Iterable[tuple[str, list[str]]],
                started: datetime) -> int:
    metadata = MetaData()
    live = Table("live_ids", metadata, Column("entity", String(64)), Column("external_id", String(64)),
                 prefixes=["TEMPORARY"])
    purged = 0
    with engine.begin() as connection:
        live.create(connection)
        entities: set[str] = set()
        for entity, ids in listing:
            entities.add(entity)
            if ids:
                connection.execute(live.insert(), [{"entity": entity, "external_id": i} for i in ids])
        for entity in sorted(entities):
            table = table_of(entity)
            still_there = exists().where(live.c.entity == entity, live.c.external_id == table.c.external_id)
            result = connection.execute(
                update(table)
                .where(table.c.source == source, table.c.deleted_at.is_(None))
                .where(table.c.synced_at < started)
                .where(~still_there)
                .values(deleted_at=started)
            )
            purged += result.rowcount
        live.drop(connection)
        if purged:
            raise_revision(connection, source, started)
    return purged
