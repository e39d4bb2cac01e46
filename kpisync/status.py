"""What `kpisync status` reports: per source, the last run, its counts, and the stream cursors;
and the syncs started by hand (`kpisync sync`), which `status --runs` lists beside the scheduled
runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, column, func, select, table

from kpisync.connector import calls_in
from kpisync.secrets import mask
from kpisync.store.database import current_tables
from kpisync.store.models import SyncRun, SyncState


def source_status(engine: Engine, sources: list[str]) -> list[dict[str, Any]]:
    runs = SyncRun.__table__  # type: ignore[attr-defined]
    states = SyncState.__table__  # type: ignore[attr-defined]
    report = []
    with engine.connect() as connection:
        for source in sources:
            last = (
                connection.execute(
                    select(runs).where(runs.c.source == source).order_by(runs.c.id.desc()).limit(1)
                )
                .mappings()
                .first()
            )
            streams = connection.execute(
                select(func.count()).select_from(states).where(states.c.source == source)
            ).scalar()
            duration = None
            if last and last["finished_at"]:
                duration = f"{(last['finished_at'] - last['started_at']).total_seconds():.1f}s"
            report.append(
                {
                    "source": source,
                    "run": last["id"] if last else None,
                    "started_at": last["started_at"] if last else None,
                    "status": last["status"] if last else None,
                    "duration": duration,
                    "rows": (last["upserted"] if last else 0),
                    "api_calls": calls_in(last["api_calls"] or {}) if last else 0,
                    "streams": streams,
                    "error": last["error"] if last else None,
                }
            )
    return report


def manual_runs(engine: Engine, source: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` syncs of `source` no scheduled run made (`kpisync sync`, the demo),
    newest first, shaped as a scheduled run's summary (scheduler.report.run_summary)."""
    runs = SyncRun.__table__  # type: ignore[attr-defined]
    query = select(runs).where(runs.c.source == source, runs.c.kind == "sync")
    if "pipeline_runs" in current_tables(engine):
        scheduled = table("pipeline_runs", column("sync_run_id"))
        query = query.where(
            runs.c.id.not_in(
                select(scheduled.c.sync_run_id).where(scheduled.c.sync_run_id.is_not(None))
            )
        )
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(runs.c.id.desc()).limit(limit)).mappings().all()
    return [
        {
            "due_at": None,
            "trigger": "manual",
            "status": row["status"],
            "started_at": row["started_at"],
            "duration_seconds": round((row["finished_at"] - row["started_at"]).total_seconds(), 1)
            if row["finished_at"]
            else None,
            "upserted": row["upserted"],
            "deleted": row["deleted"],
            "api_calls": {"sync": calls_in(row["api_calls"] or {})},
            "stages": {"sync": row["status"]},
            "error": mask(row["error"] or "") or None,
        }
        for row in rows
    ]
