"""`kpisync check`, `discover` and `sync`: a source's credentials, its fields, its records."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kpisync import role_suggestions as rs
from kpisync.budget import reported_allowance
from kpisync.cli.failure import json_line
from kpisync.cli_options import JSON, SETTINGS
from kpisync.config import SourceConfig
from kpisync.connector import Page, calls_in
from kpisync.context import open_context
from kpisync.errors import ConnectorError, StateError
from kpisync.locks import run_lock
from kpisync.output import MODE, stderr_console, stdout_console
from kpisync.registry import build_connector
from kpisync.secrets import mask
from kpisync.store.database import require_writable
from kpisync.sync import SyncOptions, sync_source
from metrics.options import metric_config

console = stdout_console()
errors = stderr_console()
T = TypeVar("T")
CHECK_TIMEOUT_SECONDS = 10.0
CHECK_DEADLINE_SECONDS = 20.0  # a check answers in this time, whatever its retries would do


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command()(discover)
    app.command()(sync)


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
            errors.print(
                f"[red]✗[/] {escape(mask(problem.what))} — {escape(mask(problem.fix))}",
                highlight=False,
            )
    if problems:
        raise typer.Exit(3)
    if not as_json:
        console.print(
            f"[green]✓[/] {source}: credentials, reachability and permissions are "
            f"fine{allowance_left(connector)}"
        )


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
        raise ConnectorError(
            f"{source}: no answer within {seconds:.0f} s: timed out (the host "
            f"accepts connections but does not answer)",
            hint="check the host setting and the network",
        )
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])


def allowance_left(connector: Any) -> str:
    """'; the CRM allows N more API calls today (of M)', where the CRM says so."""
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


def discover(
    source: str,
    settings: Path = SETTINGS,
    as_json: bool = JSON,
    custom_only: bool = typer.Option(False, "--custom", help="Only custom fields."),
    roles_only: bool = typer.Option(
        False,
        "--roles",
        help=("Only the suggested fields for each role, with a roles = {...} line to paste."),
    ),
) -> None:
    """List the source's objects and fields, custom ones included, and suggest fields for roles."""
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
        roles = {
            "role_suggestions": [asdict(s) for s in suggestions],
            "roles_toml": line,
            "metrics_roles_toml": "\n".join(metric_lines),
        }
        listed = {"fields": [f.__dict__ | {"options": list(f.options)} for f in shown]}
        print(json.dumps(roles if roles_only else listed | roles, ensure_ascii=False))
        return
    if not roles_only:
        table = Table("object", "field", "label", "type", "custom", "writable")
        for f in shown:
            table.add_row(
                f.entity,
                escape(f.name),
                escape(f.label),
                f.type,
                "yes" if f.is_custom else "",
                "yes" if f.is_writable else "",
            )
        console.print(table)
    console.print(rs.suggestions_table(suggestions))
    console.print(f"# paste into [sources.{source}] of {settings}:", markup=False, highlight=False)
    console.print(line, markup=False, highlight=False, soft_wrap=True)
    if metric_lines:
        console.print(
            "\n".join(["# and, to count these values:", *metric_lines]),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def sync(
    source: str = typer.Argument(None, help="One source; all when omitted."),
    full: bool = typer.Option(False, "--full", help="Re-read everything and compare ids."),
    settings: Path = SETTINGS,
    as_json: bool = JSON,
) -> None:
    """Incrementally sync one source, or all of them."""
    context = open_context(settings)
    require_writable(context.engine, "sync")
    names = [source] if source else sorted(context.settings.sources)
    results = []
    stop = StopSignal()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.completed:,} rows, {task.fields[pages]} pages"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=as_json or not errors.is_terminal,
    )
    for name in names:
        source_config = context.settings.source(name)
        connector = build_connector(source_config)
        every = timedelta(hours=source_config.common.purge_check_hours)
        task = progress.add_task(f"syncing {name}", total=None, pages=0)

        def advance(page: Page, task: TaskID = task, name: str = name) -> None:
            progress.update(
                task,
                advance=len(page.records),
                pages=progress.tasks[task].fields["pages"] + 1,
                description=f"syncing {name}: {page.stream}",
            )

        options = SyncOptions(
            full=full, purge_check_every=every, on_page=advance, should_stop=stop.is_set
        )
        try:
            with run_lock(context.engine, f"source:{name}") as held:
                if not held:
                    raise StateError(
                        f"{name} is being synced by another kpisync process",
                        hint="wait for it to finish, or see 'kpisync status'",
                    )
                with progress, stop.installed():
                    results.append(sync_source(context.engine, name, connector, options))
        finally:
            connector.close()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "source": r.source,
                        "run": r.run_id,
                        "status": r.status,
                        "upserted": r.upserted,
                        "deleted": r.deleted,
                        "api_calls": calls_in(r.api_calls),
                    }
                    for r in results
                ]
            )
        )
        return
    for r in results:
        console.print(
            f"{r.source}: {r.status}, {r.upserted} rows written, {r.deleted} deleted, "
            f"{calls_in(r.api_calls)} API calls (run {r.run_id})",
            markup=False,
        )


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
        text = (
            f"{signal.Signals(signum).name}: stopping after the page being written "
            f"(again to stop at once)"
        )
        if MODE.log_json:
            json_line("warning", text)
        else:
            errors.print(text, markup=False, highlight=False)

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        before = {
            signum: signal.signal(signum, self._handle)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for signum, handler in before.items():
                signal.signal(signum, handler)
