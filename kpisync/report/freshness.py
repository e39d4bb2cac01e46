"""How fresh each source's data is, from the sync run history (`sync_runs`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select

from kpisync.report.content import SourceFreshness
from kpisync.secrets import mask
from kpisync.store.models import SyncRun

RUNS = SyncRun.__table__  # type: ignore[attr-defined]


def source_freshness(
    engine: Engine, configured: list[str], now: datetime, stale_after_hours: float
) -> tuple[SourceFreshness, ...]:
    """Per source (configured or seen in the run history): last success, last run, staleness."""
    with engine.connect() as connection:
        seen = [row[0] for row in connection.execute(select(RUNS.c.source).distinct())]
        out = []
        for source in sorted(set(configured) | set(seen)):
            success = connection.execute(
                select(func.max(RUNS.c.finished_at)).where(
                    RUNS.c.source == source, RUNS.c.status == "succeeded"
                )
            ).scalar()
            last = connection.execute(
                select(RUNS.c.started_at, RUNS.c.status, RUNS.c.error)
                .where(RUNS.c.source == source)
                .order_by(RUNS.c.id.desc())
                .limit(1)
            ).first()
            age = (now - success).total_seconds() / 3600 if success else None
            out.append(
                SourceFreshness(
                    source=source,
                    last_success=success,
                    last_run_at=last.started_at if last else None,
                    last_status=last.status if last else None,
                    error=mask(last.error) if last and last.error else None,
                    age_hours=age,
                    stale=age is None
                    or age > stale_after_hours
                    or (last is not None and last.status == "failed"),
                )
            )
    return tuple(out)
