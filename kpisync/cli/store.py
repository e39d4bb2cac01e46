"""`kpisync db upgrade|check|backup`: the store's schema, its health, a copy of it."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path

import typer

from kpisync.cli_options import JSON, SETTINGS
from kpisync.config import load_settings
from kpisync.context import open_context, store_url
from kpisync.errors import StateError
from kpisync.output import stdout_console
from kpisync.store.maintenance import (
    StoreCheck,
    backup_store,
    check_store,
    recovery_steps,
    sqlite_path,
)

console = stdout_console()


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The store: schema, check, backup.", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("check")(db_check)
    db_app.command("backup")(db_backup)
    app.add_typer(db_app, name="db")


def db_upgrade(settings: Path = SETTINGS) -> None:
    """Apply the store's migrations (also done automatically on first use)."""
    open_context(settings)
    console.print("store is at the newest schema")


def store_url_of(settings: Path) -> str:
    """The store's URL from the settings, without opening (or migrating) the store."""
    loaded = load_settings(settings)
    return store_url(loaded)


def db_check(settings: Path = SETTINGS, as_json: bool = JSON) -> None:
    """Verify the store: integrity, schema revision, rows per table; and how to recover."""
    url = store_url_of(settings)
    result = check_store(url)
    path = sqlite_path(url)
    steps = [] if result.sound else recovery_steps(result, str(path) if path else None)
    if as_json:
        print(
            json.dumps(
                asdict(result) | {"sound": result.sound, "recovery": steps}, ensure_ascii=False
            )
        )
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
        say(
            "integrity: "
            + (
                "ok"
                if not result.integrity
                else f"{len(result.integrity)} problem(s): " + "; ".join(result.integrity)
            )
        )
        state = (
            "newest"
            if result.revision == result.newest
            else f"older than this kpisync's {result.newest}"
        )
        say(f"schema: revision {result.revision or 'none'} ({state})")
        say("rows: " + ", ".join(f"{table} {count:,}" for table, count in result.counts.items()))
        if result.kept:
            say(
                "not rebuilt from the CRM: "
                + ", ".join(f"{table} {count:,}" for table, count in result.kept.items())
            )
    if steps:
        say("to recover:")
        for number, step in enumerate(steps, start=1):
            say(f"  {number}. {step}")


def db_backup(
    target: Path = typer.Argument(..., help="A new file for the copy."), settings: Path = SETTINGS
) -> None:
    """A consistent copy of the live store (SQLite's online backup, or pg_dump)."""
    console.print(
        backup_store(store_url_of(settings), target), markup=False, highlight=False, soft_wrap=True
    )
