"""`kpisync init` and `kpisync demo`: a starter settings.toml, and the whole loop on an emulator."""

from __future__ import annotations

from pathlib import Path

import typer

from kpisync import starter
from kpisync.demo import run_demo
from kpisync.demo_crms import DEMO_CRMS
from kpisync.errors import ConfigError
from kpisync.output import stdout_console
from kpisync.settings_file import SETTINGS_ENV
from kpisync.texts import LOCALES

console = stdout_console()


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(demo)


def init(
    path: Path = typer.Argument(Path("settings.toml"), envvar=SETTINGS_ENV),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a starter settings.toml."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it")
    path.write_text(starter.STARTER_SETTINGS, encoding="utf-8")
    console.print(
        f"wrote {path}; set the environment variables it names, then run 'kpisync check SOURCE'"
    )


def demo(
    deals: int = typer.Option(400, min=1, help="Size of the synthetic org."),
    seed: int = typer.Option(7, help="Seed of the synthetic org."),
    keep: Path = typer.Option(None, "--keep", help="Keep the store in this folder."),
    crm: str = typer.Option(
        "hubspot", "--crm", help="The CRM to emulate: hubspot, salesforce or vtiger."
    ),
    locale: str = typer.Option(
        "en",
        "--locale",
        help="en, or fa: Persian text and digits, Solar Hijri periods, a right-to-left report.",
    ),
) -> None:
    """Run the whole loop on a built-in CRM emulator: no account needed."""
    if crm.lower() not in DEMO_CRMS:
        raise ConfigError(
            f"--crm {crm!r}: no such demo CRM", hint=f"use one of {', '.join(DEMO_CRMS)}"
        )
    if locale not in LOCALES:
        raise ConfigError(f"--locale {locale!r}: no such locale", hint="use en or fa")
    run_demo(console, crm=crm.lower(), deals=deals, seed=seed, keep=keep, locale=locale)
