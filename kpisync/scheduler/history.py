"""The run history of scheduled pipelines: claiming a slot, recording its end, settling the dead.

A slot (source, due_at) is claimed by inserting its row; the unique constraint lets exactly one
worker win, whatever the number of workers sharing the store. Rows a dead worker left open are
settled by the next run of the same instance, which holds the instance's lock and so knows nobody
else is running it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from kpisync.scheduler.models import (
    ABANDONED,
    CLAIMED,
    RUNNING,
    PipelineRun,
)
from kpisync.store.models import SyncRun

RUNS = PipelineRun.__table__  # type: ignore[attr-defined]
SYNC_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
STALE_CLAIM = timedelta(hours=1)


def now_utc() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


@dataclass
class RunRecord:
    """What a finished pipeline run stores on its row."""

    status: str
    sync_run_id: int | None = None
    upserted: int = 0
    deleted: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def claim(
    engine: Engine, source: str, due_at: datetime, *, trigger: str, worker: str
) -> int | None:
    """The new run's id, or None when another worker already claimed this slot."""
    try:
        with engine.begin() as connection:
            inserted = connection.execute(
                RUNS.insert().values(
                    source=source,
                    due_at=due_at,
                    trigger=trigger,
                    worker=worker,
                    status=CLAIMED,
                    claimed_at=now_utc(),
                    upserted=0,
                    deleted=0,
                    api_calls={},
                    stages={},
                )
            )
            key = inserted.inserted_primary_key
            assert key is not None
            return int(key[0])
    except IntegrityError:
        return None


def start(engine: Engine, run_id: int) -> datetime:
    started = now_utc()
    with engine.begin() as connection:
        connection.execute(
            update(RUNS).where(RUNS.c.id == run_id).values(status=RUNNING, started_at=started)
        )
    return started


def finish(engine: Engine, run_id: int, record: RunRecord) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status=record.status,
                finished_at=now_utc(),
                sync_run_id=record.sync_run_id,
                upserted=record.upserted,
                deleted=record.deleted,
                api_calls=record.api_calls,
                stages=record.stages,
                error=record.error,
            )
        )


def settle_abandoned(engine: Engine, source: str, current_run: int, since: datetime) -> int:
    """Close what a dead worker left open; the caller holds the instance's lock (taken at `since`).

    A row another worker started is dead: the lock says nobody else runs this instance. A row only
    claimed may belong to a worker still waiting for the lock, so it is settled only when old.
    """
    with engine.begin() as connection:
        settled = connection.execute(
            update(RUNS)
            .where(
                RUNS.c.source == source,
                RUNS.c.id != current_run,
                ((RUNS.c.status == RUNNING) & (RUNS.c.claimed_at < since))
                | ((RUNS.c.status == CLAIMED) & (RUNS.c.claimed_at < since - STALE_CLAIM)),
            )
            .values(
                status=ABANDONED,
                finished_at=now_utc(),
                error="its worker stopped without recording the end (killed, or paused or cut off "
                "from the store past its lease)",
            )
        ).rowcount
        connection.execute(
            update(SYNC_RUNS)
            .where(
                SYNC_RUNS.c.source == source,
                SYNC_RUNS.c.status == "running",
                SYNC_RUNS.c.started_at < since,
            )
            .values(
                status="interrupted",
                finished_at=now_utc(),
                error="its process stopped without recording the end (killed?)",
            )
        )
    return int(settled or 0)


def latest_runs(engine: Engine, source: str, limit: int = 20) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(RUNS).where(RUNS.c.source == source).order_by(RUNS.c.id.desc()).limit(limit)
            )
        )


def finished_statuses(engine: Engine, source: str, limit: int) -> list[tuple[str, str | None]]:
    """(status, error) of the newest runs that ended in success or failure, newest first."""
    with engine.connect() as connection:
        return [
            (r.status, r.error)
            for r in connection.execute(
                select(RUNS.c.status, RUNS.c.error)
                .where(RUNS.c.source == source, RUNS.c.status.in_(("succeeded", "failed")))
                .order_by(RUNS.c.id.desc())
                .limit(limit)
            )
        ]


def last_success(engine: Engine, source: str) -> datetime | None:
    """When the source's newest successful sync ended (manual or scheduled)."""
    with engine.connect() as connection:
        return connection.execute(
            select(SYNC_RUNS.c.finished_at)
            .where(
                SYNC_RUNS.c.source == source,
                SYNC_RUNS.c.kind == "sync",
                SYNC_RUNS.c.status == "succeeded",
            )
            .order_by(SYNC_RUNS.c.finished_at.desc())
            .limit(1)
        ).scalar()


def first_claim(engine: Engine, source: str) -> datetime | None:
    with engine.connect() as connection:
        return connection.execute(
            select(RUNS.c.claimed_at).where(RUNS.c.source == source).order_by(RUNS.c.id).limit(1)
        ).scalar()
