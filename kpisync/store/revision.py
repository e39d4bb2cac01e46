"""Store revisions: one counter per source, raised by every write to that source's records.

Raising it in the writer's own transaction means a reader that sees the new rows also sees the new
count, and a rolled-back page raises nothing. Writers: the sync's pages, the hard-delete check and
survey imports.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Table, select

from kpisync.store.models import StoreRevision
from kpisync.store.upsert import dialect_insert

REVISIONS: Table = StoreRevision.__table__  # type: ignore[attr-defined]


def raise_revision(connection: Connection, source: str, now: datetime) -> None:
    """Count one more change to `source`'s records (inside the caller's transaction)."""
    statement = dialect_insert(REVISIONS, connection.dialect.name).values(
        source=source, revision=1, changed_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[REVISIONS.c.source],
            set_={
                "revision": REVISIONS.c.revision + 1,
                "changed_at": statement.excluded.changed_at,
            },
        )
    )


def store_revisions(connection: Connection) -> dict[str, int]:
    """Every source's revision: equal between two reads means no record was written between them."""
    rows = connection.execute(select(REVISIONS.c.source, REVISIONS.c.revision))
    return {source: int(revision) for source, revision in rows}
