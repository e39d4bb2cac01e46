"""The `kpisync` command line (Typer). Errors become one clear line and a non-zero exit code;
a traceback is shown only with --debug."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kpisync import starter
from kpisync.alerts_ops import PAUSED
from kpisync.cli_options import JSON, SETTINGS
from kpisync.config import SETTINGS_ENV, SourceConfig
from kpisync.connector import Page, calls_in
from kpisync.context import open_context
from kpisync.errors import ConfigError, KpisyncError, StateError
from kpisync.locks import run_lock
from kpisync.logs import setup_logging
from kpisync.registry import build_connector
from kpisync.secrets import mask
from kpisync.status import source_status
from kpisync.sync import SyncOptions, sync_source
from kpisync.texts import LOCALES

app = typer.Typer(help="Sync CRM data, compute sales KPIs, write scores back.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
errors = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("kpisync")
F = TypeVar("F", bound=Callable[..., Any])
_debug = False
CHECK_TIMEOUT_SECONDS = 15.0


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
         log_json: bool = typer.Option(False, "--log-json", help="Log as JSON lines."),
         verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
         settings: Path | None = typer.Option(
             None, "--settings", "-s",
             help=f"Path of settings.toml for the command (as its own --settings, or "
                  f"{SETTINGS_ENV}).")) -> None:
    global _debug
    _debug = debug
    if settings is not None:
        # Read by every command's --settings as its default (click resolves them after this).
        os.environ[SETTINGS_ENV] = str(settings)
    setup_logging(level="DEBUG" if debug else "INFO" if verbose else "WARNING", json_lines=log_json)


def friendly(command: F) -> F:
    """Turn kpisync errors into one line on stderr and the error's exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KpisyncError as error:
            if _debug:
                raise
            errors.print(f"[bold red]error:[/] {escape(mask(error.message))}", highlight=False)
            if error.hint:
                errors.print(f"  fix: {mask(error.hint)}", markup=False, highlight=False)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            errors.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@friendly
def init(path: Path = typer.Argument(Path("settings.toml"), envvar=SETTINGS_ENV),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")) -> None:
    """Write a starter settings.toml."""
    if path.exists() and not force:
        raise KpisyncError(f"{path} already exists", hint="use --force to overwrite it")
    path.write_text(starter.STARTER_SETTINGS, encoding="utf-8")
    console.print(f"wrote {path}; set the environment variables it names, then run "
                  f"'kpisync check SOURCE'")


@app.command()
@friendly
def check(source: str, settings: Path = SETTINGS, as_json: bool = JSON) -> None:
    """Pre-flight a source: auth, reachability, permissions, allowance."""
    context = open_context(settings)
    connector = build_connector(quick_probe(context.settings.source(source)))
    with errors.status(f"checking {source} …"):
        problems = connector.check()
    if as_json:
        print(json.dumps([{"problem": p.what, "fix": p.fix} for p in problems], ensure_ascii=False))
    for problem in problems if not as_json else []:
        errors.print(f"[red]✗[/] {escape(mask(problem.what))} — {escape(mask(problem.fix))}",
                     highlight=False)
    if problems:
        raise typer.Exit(3)
    if not as_json:
        console.print(f"[green]✓[/] {source}: credentials, reachability and permissions are "
                      f"fine{allowance_left(connector)}")


def allowance_left(connector: Any) -> str:
    """'; the CRM allows N more API calls today (of M)', where the CRM says so."""
    from kpisync.budget import reported_allowance

    allowance = reported_allowance(connector)
    if allowance.daily_remaining is None:
        return ""
    of = f" (of {allowance.daily_limit:,})" if allowance.daily_limit else ""
    return f"; the CRM allows {allowance.daily_remaining:,} more API calls today{of}"


def quick_probe(config: SourceConfig) -> SourceConfig:
    """The source as `check` talks to it: the sync's retry decisions with tiny waits and a shorter
    timeout, so a wrong host or a CRM that is down is reported in seconds, not after the minute
    an unattended sync spends riding out a blip."""
    options = {**config.options, "fast_retries": True}
    timeout = options.get("timeout_seconds", CHECK_TIMEOUT_SECONDS)
    if isinstance(timeout, int | float):  # anything else is for the connector to refuse
        options["timeout_seconds"] = min(timeout, CHECK_TIMEOUT_SECONDS)
    return replace(config, options=options)


@app.command()
@friendly
def discover(source: str, settings: Path = SETTINGS, as_json: bool = JSON,
             custom_only: bool = typer.Option(False, "--custom", help="Only custom fields."),
             roles_only: bool = typer.Option(False, "--roles", help=(
                 "Only the suggested fields for each role, with a roles = {...} line to paste."))
             ) -> None:
    """List the source's objects and fields, custom ones included, and suggest fields for roles."""
    from dataclasses import asdict

    from kpisync import role_suggestions as rs
    from metrics.options import metric_config

    context = open_context(settings)
    config = context.settings.source(source)
    fields = build_connector(config).discover()
    source_roles = {str(k): str(v) for k, v in (config.options.get("roles") or {}).items()}
    metric_roles = metric_config(context.settings).metrics.roles
    values = {s.key: tuple(getattr(metric_roles, s.key)) for s in rs.SPECS if s.of_values}
    suggestions = rs.suggest_roles(config.type, fields, source_roles, values)
    line = rs.roles_line(suggestions, source_roles)
    metric_lines = rs.metric_roles_lines(suggestions, values)
    shown = [f for f in fields if f.is_custom or not custom_only]
    if as_json:
        roles = {"role_suggestions": [asdict(s) for s in suggestions], "roles_toml": line,
                 "metrics_roles_toml": "\n".join(metric_lines)}
        listed = {"fields": [f.__dict__ | {"options": list(f.options)} for f in shown]}
        print(json.dumps(roles if roles_only else listed | roles, ensure_ascii=False))
        return
    if not roles_only:
        table = Table("object", "field", "label", "type", "custom", "writable")
        for f in shown:
            table.add_row(f.entity, escape(f.name), escape(f.label), f.type,
                          "yes" if f.is_custom else "",
                          "yes" if f.is_writable else "")
        console.print(table)
    console.print(rs.suggestions_table(suggestions))
    console.print(f"# paste into [sources.{source}] of {settings}:", markup=False, highlight=False)
    console.print(line, markup=False, highlight=False, soft_wrap=True)
    if metric_lines:
        console.print("\n".join(["# and, to count these values:", *metric_lines]), markup=False,
                      highlight=False, soft_wrap=True)


@app.command()
@friendly
def sync(source: str = typer.Argument(None, help="One source; all when omitted."),
         full: bool = typer.Option(False, "--full", help="Re-read everything and compare ids."),
         settings: Path = SETTINGS, as_json: bool = JSON) -> None:
    """Incrementally sync one source, or all of them."""
    context = open_context(settings)
    names = [source] if source else sorted(context.settings.sources)
    results = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=None),
                        TextColumn("{task.completed:,} rows, {task.fields[pages]} pages"),
                        TimeElapsedColumn(), console=errors, transient=True,
                        disable=as_json or not errors.is_terminal)
    for name in names:
        source_config = context.settings.source(name)
        connector = build_connector(source_config)
        every = timedelta(hours=source_config.common.purge_check_hours)
        task = progress.add_task(f"syncing {name}", total=None, pages=0)

        def advance(page: Page, task: TaskID = task, name: str = name) -> None:
            progress.update(task, advance=len(page.records),
                            pages=progress.tasks[task].fields["pages"] + 1,
                            description=f"syncing {name}: {page.stream}")

        options = SyncOptions(full=full, purge_check_every=every, on_page=advance)
        try:
            with run_lock(context.engine, f"source:{name}") as held:
                if not held:
                    raise StateError(f"{name} is being synced by another kpisync process",
                                     hint="wait for it to finish, or see 'kpisync status'")
                with progress:
                    results.append(sync_source(context.engine, name, connector, options))
        finally:
            connector.close()
    if as_json:
        print(json.dumps([{"source": r.source, "run": r.run_id, "status": r.status,
                           "upserted": r.upserted, "deleted": r.deleted,
                           "api_calls": calls_in(r.api_calls)} for r in results]))
        return
    for r in results:
        console.print(f"{r.source}: {r.status}, {r.upserted} rows written, {r.deleted} deleted, "
                      f"{calls_in(r.api_calls)} API calls (run {r.run_id})", markup=False)


@app.command()
@friendly
def status(settings: Path = SETTINGS, as_json: bool = JSON,
           runs: int = typer.Option(0, "--runs", min=0, help="Also list each source's last N "
                                    "scheduled runs (kpisync run), with their stages and errors.")
           ) -> None:
    """Per source: last run, duration, counts, API usage, errors, next run, budget and alerts."""
    from kpisync.scheduler.report import instance_report, run_history

    context = open_context(settings)
    scheduled = {row["source"]: row for row in instance_report(context.engine, context.settings)}
    report = [row | {key: scheduled[row["source"]].get(key) for key in
                     ("next_run", "schedule", "budget", "alerts", "data_age_minutes",
                      "writeback_paused", "scheduled_run")}
              | ({"runs": run_history(context.engine, row["source"], runs)} if runs else {})
              for row in source_status(context.engine, sorted(context.settings.sources))]
    if as_json:
        print(json.dumps(report, default=str, ensure_ascii=False))
        return
    table = Table("source", "last sync", "status", "duration", "rows", "API calls", "next run",
                  "budget today", "alerts / error")
    for row in report:
        table.add_row(row["source"], _when(row["started_at"]), row["status"] or "",
                      row["duration"] or "", str(row["rows"]), str(row["api_calls"]),
                      _when(row["next_run"]) if row["next_run"] else (row["schedule"] or ""),
                      budget_spent(row["budget"]), escape(_trouble(row)))
    console.print(table)
    for row in report if runs else ():
        print_runs(row["source"], row["runs"])


def print_runs(source: str, runs: list[dict[str, Any]]) -> None:
    table = Table("slot", "status", "duration", "rows", "API calls", "stages / error",
                  title=f"last scheduled runs of {source}")
    for run in runs:
        detail = run["error"] or "; ".join(f"{stage} {outcome}"
                                           for stage, outcome in run["stages"].items())
        duration = f"{run['duration_seconds']}s" if run["duration_seconds"] is not None else ""
        table.add_row(_when(run["due_at"]), run["status"], duration,
                      str(run["upserted"] + run["deleted"]), str(sum(run["api_calls"].values())),
                      escape(detail))
    console.print(table if runs else f"{source}: no scheduled run yet")


def _trouble(row: dict[str, Any]) -> str:
    """Open alerts and paused write-back fields; else the error of the last scheduled run, when
    a later stage failed it; else the last sync's."""
    parts = [alert for alert in row["alerts"] or [] if not alert.startswith(PAUSED)]
    if row["writeback_paused"]:  # named here, field by field, rather than as the alert
        parts.append("write-back paused: " + ", ".join(row["writeback_paused"])
                     + " (see 'kpisync fields plan')")
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


@app.command()
@friendly
def demo(deals: int = typer.Option(400, min=1, help="Size of the synthetic org."),
         seed: int = typer.Option(7, help="Seed of the synthetic org."),
         keep: Path = typer.Option(None, "--keep", help="Keep the store in this folder."),
         crm: str = typer.Option("hubspot", "--crm", help="The CRM to emulate: hubspot, "
                                 "salesforce or vtiger."),
         locale: str = typer.Option("en", "--locale", help="en, or fa: Persian text and digits, "
                                    "Solar Hijri periods, a right-to-left report.")) -> None:
    """Run the whole loop on a built-in CRM emulator: no account needed."""
    from kpisync.demo import run_demo
    from kpisync.demo_crms import DEMO_CRMS

    if crm.lower() not in DEMO_CRMS:
        raise ConfigError(f"--crm {crm!r}: no such demo CRM",
                          hint=f"use one of {', '.join(DEMO_CRMS)}")
    if locale not in LOCALES:
        raise ConfigError(f"--locale {locale!r}: no such locale", hint="use en or fa")
    run_demo(console, crm=crm.lower(), deals=deals, seed=seed, keep=keep, locale=locale)


@db_app.command("upgrade")
@friendly
def db_upgrade(settings: Path = SETTINGS) -> None:
    """Apply the store's migrations (also done automatically on first use)."""
    open_context(settings)
    console.print("store is at the newest schema")


def _register_command_modules() -> None:
    """The KPI, write-back, scheduler and report commands live beside their own code."""
    from kpisync import run_command, sandbox_command
    from kpisync.report import commands as report_commands
    from metrics import commands as metric_commands
    from writeback import commands as writeback_commands

    for module in (metric_commands, writeback_commands, run_command, report_commands,
                   sandbox_command):
        module.register(app)


_register_command_modules()

if __name__ == "__main__":
    sys.exit(app())
