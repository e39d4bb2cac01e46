"""What `kpisync status` reports: per source, the last run, its counts, and the stream cursors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from kpisync.connector import calls_in
from kpisync.store.models import SyncRun, SyncState


def source_status(engine: Engine, sources: list[str]) -> list[dict[str, Any]]:
    runs = SyncRun.__table__  # type: ignore[attr-defined]
    states = SyncState.__table__  # type: ignore[attr-defined]
    report = []
    with engine.connect() as connection:
        for source in sources:
            last = connection.execute(
                select(runs).where(runs.c.source == source).order_by(runs.c.id.desc()).limit(1)
            ).mappings().first()
            streams = connection.execute(
                select(func.count()).select_from(states).where(states.c.source == source)).scalar()
            duration = None
            if last and last["finished_at"]:
                duration = f"{(last['finished_at'] - last['started_at']).total_seconds():.1f}s"
            report.append({
                "source": source,
                "run": last["id"] if last else None,
                "started_at": last["started_at"] if last else None,
                "status": last["status"] if last else None,
                "duration": duration,
                "rows": (last["upserted"] if last else 0),
                "api_calls": calls_in(last["api_calls"] or {}) if last else 0,
                "streams": streams,
                "error": last["error"] if last else None,
            })
    return report
