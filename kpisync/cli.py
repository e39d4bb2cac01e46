"""The `kpisync` command line (Typer). Errors become one clear line and a non-zero exit code;
a traceback is shown only with --debug."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from kpisync import starter
from kpisync.alerts_ops import PAUSED
from kpisync.cli_options import JSON, SETTINGS
from kpisync.config import SETTINGS_ENV, SourceConfig, load_settings
from kpisync.connector import Page, calls_in
from kpisync.context import open_context, store_url
from kpisync.errors import (
    ConfigError,
    ConnectorError,
    Interrupted,
    KpisyncError,
    StateError,
)
from kpisync.locks import run_lock
from kpisync.logs import JsonUsageErrors, setup_logging
from kpisync.output import MODE, stderr_console, stdout_console
from kpisync.registry import build_connector
from kpisync.secrets import mask
from kpisync.status import manual_runs, source_status
from kpisync.store.database import require_writable, store_error
from kpisync.store.maintenance import (
    StoreCheck,
    backup_store,
    check_store,
    recovery_steps,
    sqlite_path,
)
from kpisync.sync import SyncOptions, sync_source
from kpisync.texts import LOCALES

app = typer.Typer(help="Sync CRM data, compute sales KPIs, write scores back.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=JsonUsageErrors)
db_app = typer.Typer(help="The store: schema, check, backup.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = stdout_console()
errors = stderr_console()
log = logging.getLogger("kpisync")
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
CHECK_TIMEOUT_SECONDS = 10.0
CHECK_DEADLINE_SECONDS = 20.0  # a check answers in this time, whatever its retries would do


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
         log_json: bool = typer.Option(False, "--log-json", help="Log as JSON lines."),
         verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
         settings: Path | None = typer.Option(
             None, "--settings", "-s",
             help=f"Path of settings.toml for the command (as its own --settings, or "
                  f"{SETTINGS_ENV}).")) -> None:
    MODE.debug, MODE.log_json = debug, log_json
    if settings is not None:
        # Read by every command's --settings as its default (click resolves them after this).
        os.environ[SETTINGS_ENV] = str(settings)
    setup_logging(level="DEBUG" if debug else "INFO" if verbose else "WARNING", json_lines=log_json)


def friendly(command: F) -> F:
    """Turn every failure into one line on stderr (a JSON line under --log-json) and the exit
    code of the README's table; --debug adds the traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KpisyncError as error:
            fail(error.message, error.hint, error.exit_code)
        except DBAPIError as error:  # the store itself failed: corrupt, read-only, full, gone
            problem = store_error(error)
            fail(problem.message, problem.hint, problem.exit_code)
        except BrokenPipeError:  # `kpisync kpis --csv | head -1`: the reader had enough
            quiet_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            fail("interrupted", "a sync carries on from its last committed page when run again",
                 Interrupted.exit_code)
        except Exception as error:  # a bug: still one line, the traceback with --debug
            fail(f"unexpected error: {type(error).__name__}: {error}",
                 "run again with --debug for the traceback, and report it", 1)

    return wrapper  # type: ignore[return-value]


def fail(message: str, hint: str | None, exit_code: int) -> NoReturn:
    """Print the failure (and with --debug the traceback being handled) and exit."""
    message = mask(message).strip().replace("\n", " ")
    trace = mask(traceback.format_exc()) if MODE.debug else None
    if MODE.log_json:
        json_line("error", message, fix=mask(hint) if hint else None, exit_code=exit_code,
                  **({"traceback": trace} if trace else {}))
    else:
        if trace:
            print(trace.rstrip(), file=sys.stderr)
        errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        if hint:
            errors.print(f"  fix: {mask(hint)}", markup=False, highlight=False)
    raise typer.Exit(exit_code)


def json_line(level: str, message: str, **fields: Any) -> None:
    """One record on stderr as --log-json writes them (kpisync.logs.JsonLines' fields)."""
    entry = {"time": datetime.now(UTC).isoformat(), "level": level, "logger": "kpisync.cli",
             "message": message, **fields}
    print(json.dumps(entry, ensure_ascii=False, default=str), file=sys.stderr, flush=True)


def quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@app.command()
@friendly
def init(path: Path = typer.Argument(Path("settings.toml"), envvar=SETTINGS_ENV),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")) -> None:
    """Write a starter settings.toml."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it")
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
        problems = answered_within(CHECK_DEADLINE_SECONDS, connector.check, source)
    if as_json:
        print(json.dumps([{"problem": p.what, "fix": p.fix} for p in problems], ensure_ascii=False))
    for problem in problems if not as_json else []:
        if MODE.log_json:
            json_line("error", mask(problem.what), fix=mask(problem.fix))
        else:
            errors.print(f"[red]✗[/] {escape(mask(problem.what))} — {escape(mask(problem.fix))}",
                         highlight=False)
    if problems:
        raise typer.Exit(3)
    if not as_json:
        console.print(f"[green]✓[/] {source}: credentials, reachability and permissions are "
                      f"fine{allowance_left(connector)}")


def answered_within(seconds: float, function: Callable[[], T], source: str) -> T:
    """`function()`, or a ConnectorError when it has not returned after `seconds` (a host that
    accepts the connection and never answers)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error

    worker = threading.Thread(target=run, name="kpisync-check", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise ConnectorError(f"{source}: no answer within {seconds:.0f} s: timed out (the host "
                             f"accepts connections but does not answer)",
                             hint="check the host setting and the network")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


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
    require_writable(context.engine, "sync")
    names = [source] if source else sorted(context.settings.sources)
    results = []
    stop = StopSignal()
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

        options = SyncOptions(full=full, purge_check_every=every, on_page=advance,
                              should_stop=stop.is_set)
        try:
            with run_lock(context.engine, f"source:{name}") as held:
                if not held:
                    raise StateError(f"{name} is being synced by another kpisync process",
                                     hint="wait for it to finish, or see 'kpisync status'")
                with progress, stop.installed():
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


class StopSignal:
    """Ctrl-C or SIGTERM during a sync: the first stops it after the page being written (the run
    is recorded as interrupted, as the worker records it); a second stops it at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        text = (f"{signal.Signals(signum).name}: stopping after the page being written "
                f"(again to stop at once)")
        if MODE.log_json:
            json_line("warning", text)
        else:
            errors.print(text, markup=False, highlight=False)

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        before = {signum: signal.signal(signum, self._handle)
                  for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in before.items():
                signal.signal(signum, handler)


@app.command()
@friendly
def status(settings: Path = SETTINGS, as_json: bool = JSON,
           runs: int = typer.Option(0, "--runs", min=0, help="Also list each source's last N "
                                    "runs, scheduled (kpisync run) and by hand (kpisync sync), "
                                    "with their stages and errors.")
           ) -> None:
    """Per source: last run, duration, counts, API usage, errors, next run, budget and alerts."""
    from kpisync.scheduler.report import instance_report

    context = open_context(settings)
    scheduled = {row["source"]: row for row in instance_report(context.engine, context.settings)}
    report = [row | {key: scheduled[row["source"]].get(key) for key in
                     ("next_run", "schedule", "budget", "alerts", "data_age_minutes",
                      "writeback_paused", "writeback_control", "scheduled_run")}
              | ({"runs": last_runs(context.engine, row["source"], runs)} if runs else {})
              for row in source_status(context.engine, sorted(context.settings.sources))]
    if as_json:
        print(json.dumps(report, default=str, ensure_ascii=False))
        return
    table = Table("source", "last sync", "status", "duration", "rows", "API calls", "next run",
                  "budget today", "alerts / error")
    for row in report:
        table.add_row(row["source"], _when(row["started_at"]), row["status"] or "",
                      row["duration"] or "", str(row["rows"]), str(row["api_calls"]),
                      next_run_cell(row),
                      budget_spent(row["budget"]), escape(_trouble(row)))
    console.print(table)
    for row in report if runs else ():
        print_runs(row["source"], row["runs"])


def last_runs(engine: Any, source: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` runs of `source`, scheduled (kpisync run) and by hand (kpisync sync)."""
    from kpisync.scheduler.report import run_history

    both = run_history(engine, source, limit) + manual_runs(engine, source, limit)
    return sorted(both, key=lambda run: run["started_at"] or run["due_at"], reverse=True)[:limit]


def print_runs(source: str, runs: list[dict[str, Any]]) -> None:
    table = Table("started", "by", "status", "duration", "rows", "API calls", "stages / error",
                  title=f"last runs of {source}", title_justify="left")
    for run in runs:
        detail = run["error"] or "; ".join(f"{stage} {outcome}"
                                           for stage, outcome in run["stages"].items())
        duration = f"{run['duration_seconds']}s" if run["duration_seconds"] is not None else ""
        by = "hand" if run["trigger"] == "manual" else run["trigger"] or "schedule"
        table.add_row(_when(run["started_at"] or run["due_at"]), by, run["status"], duration,
                      str(run["upserted"] + run["deleted"]), str(sum(run["api_calls"].values())),
                      escape(detail))
    console.print(table if runs else f"{source}: no run yet")


def next_run_cell(row: dict[str, Any]) -> str:
    """The next run, with what the schedule says about the workers (none yet, one behind)."""
    schedule = row["schedule"] or ""
    if not row["next_run"]:
        return schedule
    note = schedule[schedule.index(" ("):] if " (" in schedule else ""
    return _when(row["next_run"]) + note


def _trouble(row: dict[str, Any]) -> str:
    """Open alerts and paused write-back fields; else the error of the last scheduled run, when
    a later stage failed it; else the last sync's."""
    parts = [alert for alert in row["alerts"] or [] if not alert.startswith(PAUSED)]
    if row["writeback_paused"]:  # named here, field by field, rather than as the alert
        parts.append("write-back paused: " + ", ".join(row["writeback_paused"])
                     + " (see 'kpisync fields plan')")
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


def store_url_of(settings: Path) -> str:
    """The store's URL from the settings, without opening (or migrating) the store."""
    loaded = load_settings(settings)
    return store_url(loaded)


@db_app.command("check")
@friendly
def db_check(settings: Path = SETTINGS, as_json: bool = JSON) -> None:
    """Verify the store: integrity, schema revision, rows per table; and how to recover."""
    url = store_url_of(settings)
    result = check_store(url)
    path = sqlite_path(url)
    steps = [] if result.sound else recovery_steps(result, str(path) if path else None)
    if as_json:
        print(json.dumps(asdict(result) | {"sound": result.sound, "recovery": steps},
                         ensure_ascii=False))
    else:
        print_store_check(result, steps)
    if not result.sound:
        raise typer.Exit(StateError.exit_code)


def print_store_check(result: StoreCheck, steps: list[str]) -> None:
    say = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
    say(f"store: {result.url} ({result.backend})")
    if result.error:
        say(f"unreadable: {result.error}")
    else:
        say("integrity: " + ("ok" if not result.integrity else
                             f"{len(result.integrity)} problem(s): " + "; ".join(result.integrity)))
        state = ("newest" if result.revision == result.newest else
                 f"older than this kpisync's {result.newest}")
        say(f"schema: revision {result.revision or 'none'} ({state})")
        say("rows: " + ", ".join(f"{table} {count:,}" for table, count in result.counts.items()))
        if result.kept:
            say("not rebuilt from the CRM: " + ", ".join(
                f"{table} {count:,}" for table, count in result.kept.items()))
    if steps:
        say("to recover:")
        for number, step in enumerate(steps, start=1):
            say(f"  {number}. {step}")


@db_app.command("backup")
@friendly
def db_backup(target: Path = typer.Argument(..., help="A new file for the copy."),
              settings: Path = SETTINGS) -> None:
    """A consistent copy of the live store (SQLite's online backup, or pg_dump)."""
    console.print(backup_store(store_url_of(settings), target), markup=False, highlight=False,
                  soft_wrap=True)


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
