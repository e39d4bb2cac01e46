"""`kpisync status`: per source, the last runs, what comes next, the budget and open alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from kpisync.alerts_ops import PAUSED
from kpisync.cli_options import JSON, SETTINGS
from kpisync.context import open_context
from kpisync.output import stdout_console
from kpisync.scheduler.report import instance_report, run_history
from kpisync.secrets import mask
from kpisync.status import manual_runs, source_status

console = stdout_console()


def register(app: typer.Typer) -> None:
    app.command()(status)


def status(
    settings: Path = SETTINGS,
    as_json: bool = JSON,
    runs: int = typer.Option(
        0,
        "--runs",
        min=0,
        help="Also list each source's last N "
        "runs, scheduled (kpisync run) and by hand (kpisync sync), "
        "with their stages and errors.",
    ),
) -> None:
    """Per source: last run, duration, counts, API usage, errors, next run, budget and alerts."""
    context = open_context(settings)
    scheduled = {row["source"]: row for row in instance_report(context.engine, context.settings)}
    report = [
        row
        | {
            key: scheduled[row["source"]].get(key)
            for key in (
                "next_run",
                "schedule",
                "budget",
                "alerts",
                "data_age_minutes",
                "writeback_paused",
                "writeback_control",
                "scheduled_run",
            )
        }
        | ({"runs": last_runs(context.engine, row["source"], runs)} if runs else {})
        for row in source_status(context.engine, sorted(context.settings.sources))
    ]
    if as_json:
        print(json.dumps(report, default=str, ensure_ascii=False))
        return
    table = Table(
        "source",
        "last sync",
        "status",
        "duration",
        "rows",
        "API calls",
        "next run",
        "budget today",
        "alerts / error",
    )
    for row in report:
        table.add_row(
            row["source"],
            _when(row["started_at"]),
            row["status"] or "",
            row["duration"] or "",
            str(row["rows"]),
            str(row["api_calls"]),
            next_run_cell(row),
            budget_spent(row["budget"]),
            escape(_trouble(row)),
        )
    console.print(table)
    for row in report if runs else ():
        print_runs(row["source"], row["runs"])


def last_runs(engine: Any, source: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` runs of `source`, scheduled (kpisync run) and by hand (kpisync sync)."""
    both = run_history(engine, source, limit) + manual_runs(engine, source, limit)
    return sorted(both, key=lambda run: run["started_at"] or run["due_at"], reverse=True)[:limit]


def print_runs(source: str, runs: list[dict[str, Any]]) -> None:
    table = Table(
        "started",
        "by",
        "status",
        "duration",
        "rows",
        "API calls",
        "stages / error",
        title=f"last runs of {source}",
        title_justify="left",
    )
    for run in runs:
        detail = run["error"] or "; ".join(
            f"{stage} {outcome}" for stage, outcome in run["stages"].items()
        )
        duration = f"{run['duration_seconds']}s" if run["duration_seconds"] is not None else ""
        by = "hand" if run["trigger"] == "manual" else run["trigger"] or "schedule"
        table.add_row(
            _when(run["started_at"] or run["due_at"]),
            by,
            run["status"],
            duration,
            str(run["upserted"] + run["deleted"]),
            str(sum(run["api_calls"].values())),
            escape(detail),
        )
    console.print(table if runs else f"{source}: no run yet")


def next_run_cell(row: dict[str, Any]) -> str:
    """The next run, with what the schedule says about the workers (none yet, one behind)."""
    schedule = row["schedule"] or ""
    if not row["next_run"]:
        return schedule
    note = schedule[schedule.index(" (") :] if " (" in schedule else ""
    return _when(row["next_run"]) + note


def _trouble(row: dict[str, Any]) -> str:
    """Open alerts and paused write-back fields; else the error of the last scheduled run, when
    a later stage failed it; else the last sync's."""
    parts = [alert for alert in row["alerts"] or [] if not alert.startswith(PAUSED)]
    if row["writeback_paused"]:  # named here, field by field, rather than as the alert
        parts.append(
            "write-back paused: "
            + ", ".join(row["writeback_paused"])
            + " (see 'kpisync fields plan')"
        )
    if row.get("writeback_control"):
        parts.append(row["writeback_control"])
    scheduled = row["scheduled_run"]
    if not parts and scheduled and scheduled["error"] and scheduled["status"] != "succeeded":
        parts.append(f"last scheduled run {scheduled['status']}: {scheduled['error']}")
    return "; ".join(parts) or mask(row["error"] or "")


def budget_spent(budget: dict[str, Any] | None) -> str:
    """Today's calls against the share; where the share is a part of the limit the CRM reports,
    what the CRM last said is left."""
    if not budget:
        return ""
    calls, share = budget.get("calls_today", 0), budget.get("share")
    left = budget.get("crm_remaining")
    if share:
        return f"{calls:,}/{share:,}"
    return f"{calls:,} (CRM: {left:,} left)" if left is not None else f"{calls:,}"


def _when(moment: Any) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}" if moment else "never"
