"""A source's metadata (field lists, owners, stages): read again only when due, kept in between.

Metadata changes rarely but cost a sync a call per object (and per page of owners) every run. A
run reads it when it is due: on `--full`, when none is kept, when the kept copy is older than
`every`, or when the connector cannot use it. The snapshot the connector hands back is kept in
the source's `metadata` sync_state row, whose `updated_at` is when it was read; it is saved only
after every stream of the run committed, so a failed run reads it again next time.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from kpisync.connector import Connector, metadata_keeper, metadata_mover
from kpisync.cursor import Cursor
from kpisync.store.models import SyncState
from kpisync.store.upsert import dialect_insert

METADATA = "metadata"  # the sync_state stream holding the kept snapshot
SNAPSHOT = "snapshot"  # its key in that row's cursor
STATE = SyncState.__table__  # type: ignore[attr-defined]


def restored(
    engine: Engine,
    source: str,
    connector: Connector,
    *,
    every: timedelta | None,
    full: bool,
    now: datetime,
) -> datetime | None:
    """When the kept metadata was read, if it is fresh and the connector took it (the run then
    skips reading it); None when the run must read it."""
    keeper = metadata_keeper(connector)
    if full or every is None or keeper is None:
        return None
    with engine.connect() as connection:
        kept = connection.execute(
            select(STATE.c.cursor, STATE.c.updated_at).where(
                STATE.c.source == source, STATE.c.stream == METADATA
            )
        ).first()
    if kept is None or kept.updated_at is None or now - kept.updated_at >= every:
        return None
    snapshot = (kept.cursor or {}).get(SNAPSHOT)
    return kept.updated_at if snapshot and keeper.restore_metadata(snapshot) else None


def moved(connector: Connector) -> bool:
    """Whether a connector that took kept metadata read it again during the run
    (Capability.METADATA_MOVES: e.g. records showed a field the kept field list lacks)."""
    mover = metadata_mover(connector)
    return mover is not None and bool(mover.metadata_moved())


def keep(engine: Engine, source: str, connector: Connector, read_at: datetime) -> None:
    """Keep what the connector read this run, if it can hand it back."""
    keeper = metadata_keeper(connector)
    if keeper is None:
        return
    # In a cursor's shape, as every sync_state row: decimals and instants as text.
    snapshot = keeper.metadata_snapshot()
    kept = {**Cursor().to_json(), SNAPSHOT: json.loads(json.dumps(snapshot, default=str))}
    with engine.begin() as connection:
        statement = dialect_insert(STATE, connection.dialect.name).values(
            source=source, stream=METADATA, cursor=kept, updated_at=read_at
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[STATE.c.source, STATE.c.stream],
                set_={
                    "cursor": statement.excluded.cursor,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )


def forget(engine: Engine, source: str) -> None:
    """Make the next run read the metadata again (e.g. after fields were created in the CRM)."""
    with engine.begin() as connection:
        connection.execute(
            delete(STATE).where(STATE.c.source == source, STATE.c.stream == METADATA)
        )
