"""The `kpisync` command line (Typer). Errors become one clear line and a non-zero exit code;
a traceback is shown only with --debug.

The package, top to bottom: this module (the root app and its global options), `dispatch` (the
root group, which loads a command's module only when that command is chosen), `commands` (every
command's name, help line and module), `failure` (`friendly`: one line and an exit code).
The commands of the CLI's own: `sources` (check, discover, sync), `status`, `store` (db),
`start` (init, demo). The others live beside their features and register themselves:
metrics.commands, writeback.commands, kpisync.report.commands, kpisync.run_command,
kpisync.sandbox_command. None of them imports kpisync.cli (docs/decisions/cli-package.md)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from kpisync.cli.dispatch import LazyGroup
from kpisync.logs import setup_logging
from kpisync.output import MODE
from kpisync.settings_file import SETTINGS_ENV

app = typer.Typer(
    cls=LazyGroup,
    help="Sync CRM data, compute sales KPIs, write scores back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    log_json: bool = typer.Option(False, "--log-json", help="Log as JSON lines."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    settings: Path | None = typer.Option(
        None,
        "--settings",
        "-s",
        help=f"Path of settings.toml for the command (as its own --settings, or {SETTINGS_ENV}).",
    ),
) -> None:
    MODE.debug, MODE.log_json = debug, log_json
    if settings is not None:
        # Read by every command's --settings as its default (click resolves them after this).
        os.environ[SETTINGS_ENV] = str(settings)
    setup_logging(level="DEBUG" if debug else "INFO" if verbose else "WARNING", json_lines=log_json)
