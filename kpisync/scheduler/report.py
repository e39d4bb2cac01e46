"""What `kpisync status` adds for unattended runs: per instance the last scheduled run, its
duration, counts, API calls per stage and error, the next run, today's API budget, open alerts
and the write-back fields that are paused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, column, select, table

from kpisync.alerts_ops import open_incidents
from kpisync.budget import budget_of, day_usage
from kpisync.config import Settings
from kpisync.scheduler.history import last_success, latest_runs
from kpisync.scheduler.models import JOBS_TABLE
from kpisync.scheduler.triggers import next_fire, trigger_for
from kpisync.secrets import mask
from kpisync.stages import paused_writeback, writeback_control
from kpisync.store.database import current_tables


def stored_next_runs(engine: Engine) -> dict[str, datetime | None]:
    """Next run per source as the workers' job store holds it."""
    if JOBS_TABLE not in current_tables(engine):
        return {}
    jobs = table(JOBS_TABLE, column("id"), column("next_run_time"))
    with engine.connect() as connection:
        rows = connection.execute(select(jobs.c.id, jobs.c.next_run_time)).all()
    return {
        job_id.removeprefix("pipeline:"): (datetime.fromtimestamp(ts, UTC) if ts else None)
        for job_id, ts in rows
        if job_id.startswith("pipeline:")
    }


def instance_report(
    engine: Engine, settings: Settings, now: datetime | None = None
) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    stored = stored_next_runs(engine)
    report = []
    for source in sorted(settings.sources):
        last = last_run(engine, source)
        report.append(
            {
                "source": source,
                **last,
                **next_run(settings, source, stored, now, never_run=last["scheduled_run"] is None),
                **budget_today(engine, settings, source, now),
                "data_age_minutes": data_age(engine, source, now),
                "alerts": [
                    f"{row.kind} since {row.opened_at:%Y-%m-%d %H:%M}"
                    for row in open_incidents(engine, source)
                ],
                "writeback_paused": paused_writeback(engine, settings, source),
                "writeback_control": writeback_control(engine, settings, source),
            }
        )
    return report


def last_run(engine: Engine, source: str) -> dict[str, Any]:
    """The newest scheduled run, flat (`last_*`), and whole as `scheduled_run`."""
    runs = latest_runs(engine, source, limit=1)
    if not runs:
        return {
            "last_run": None,
            "last_status": None,
            "last_duration": None,
            "upserted": 0,
            "deleted": 0,
            "api_calls": {},
            "last_error": None,
            "scheduled_run": None,
        }
    summary = run_summary(runs[0])
    return {
        "last_run": summary["started_at"] or runs[0].claimed_at,
        "last_status": summary["status"],
        "last_duration": summary["duration_seconds"],
        "upserted": summary["upserted"],
        "deleted": summary["deleted"],
        "api_calls": summary["api_calls"],
        "last_error": summary["error"],
        "scheduled_run": summary,
    }


def run_history(engine: Engine, source: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` scheduled runs of `source`, newest first, for `kpisync status --runs`."""
    return [run_summary(run) for run in latest_runs(engine, source, limit=limit)]


def run_summary(run: Any) -> dict[str, Any]:
    """One `pipeline_runs` row as `kpisync status` shows it, its error masked."""
    duration = None
    if run.started_at and run.finished_at:
        duration = round((run.finished_at - run.started_at).total_seconds(), 1)
    return {
        "due_at": run.due_at,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at,
        "duration_seconds": duration,
        "upserted": run.upserted,
        "deleted": run.deleted,
        "api_calls": dict(run.api_calls or {}),
        "stages": dict(run.stages or {}),
        "error": mask(run.error or "") or None,
    }


def next_run(
    settings: Settings,
    source: str,
    stored: dict[str, datetime | None],
    now: datetime,
    *,
    never_run: bool = False,
) -> dict[str, Any]:
    trigger = trigger_for(source, settings.source(source).schedule, settings.core.timezone)
    if trigger is None:
        return {"next_run": None, "schedule": "not scheduled"}
    if never_run:  # a worker runs it as soon as it starts (scheduler.worker.first_slots)
        return {
            "next_run": now,
            "schedule": f"{trigger} (never run yet: it runs as soon as a worker starts)",
        }
    # from the settings: triggers are anchored, so every worker computes the same slots; the job
    # store only tells whether a worker has taken the schedule and kept up with it
    waiting, note = stored.get(source), "" if source in stored else " (no worker has run yet)"
    if waiting is not None and waiting < now:
        note = f" (a run due {waiting:%Y-%m-%d %H:%M} UTC has not started: is a worker running?)"
    return {"next_run": next_fire(trigger, now), "schedule": f"{trigger}{note}"}


def budget_today(engine: Engine, settings: Settings, source: str, now: datetime) -> dict[str, Any]:
    budget = budget_of(settings, source)
    if budget is None:
        return {"budget": None}
    calls, remaining = day_usage(engine, budget.org, now.astimezone(budget.zone).date())
    s = budget.settings
    share = int(s.daily_share * s.daily_allowance) if s.daily_allowance else None
    return {
        "budget": {
            "org": budget.org,
            "calls_today": calls,
            "share": share,
            "crm_remaining": remaining,
        }
    }


def data_age(engine: Engine, source: str, now: datetime) -> float | None:
    fresh = last_success(engine, source)
    return round((now - fresh).total_seconds() / 60, 1) if fresh else None
