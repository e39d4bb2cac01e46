"""Options every kpisync command spells the same way, whichever module defines the command.

Below the CLI package: the command modules beside their features import it, never kpisync.cli."""

from __future__ import annotations

import typer

from kpisync.settings_file import DEFAULT_PATH, SETTINGS_ENV

SETTINGS = typer.Option(
    DEFAULT_PATH, "--settings", "-s", envvar=SETTINGS_ENV, help="Path of settings.toml."
)
JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")
