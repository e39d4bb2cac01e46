"""`kpisync demo`: the whole loop against a built-in CRM emulator, no account needed.

Starts the emulator of the CRM asked for (HubSpot, Salesforce or Vtiger) on 127.0.0.1 with a
seeded synthetic org, writes a throwaway settings file and store, syncs, and prints what it did.
Then the KPIs, write-back and the report (kpisync.demo_stages). With `--keep FOLDER` the folder
keeps the store, the settings (write-back mapping included), the report and the emulator's
records (`FOLDER/sandbox`), which `kpisync sandbox serve --state FOLDER/sandbox` serves again.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select

from emulators.org.generate import generate_org
from emulators.state import save_state
from kpisync.connector import calls_in
from kpisync.context import open_context
from kpisync.demo_crms import DEMO_CRMS, DemoCrm
from kpisync.demo_stages import DemoRun, kpi_stage, report_stage, writeback_stage
from kpisync.registry import build_connector
from kpisync.sandbox_setup import (
    SandboxFolder,
    add_score_fields,
    exports,
    settings_text,
)
from kpisync.store.models import ENTITY_MODELS
from kpisync.sync import SyncOptions, sync_source

KEPT_SANDBOX = "sandbox"  # the kept folder's sub-folder holding the emulator's state


def demo_settings(crm: DemoCrm, emulator: Any, store: Path, locale: str = "en") -> str:
    """The demo's settings without a write-back mapping; the CRM's demo credentials go into
    this process's environment, where the settings name them."""
    os.environ.update(crm.credentials())
    return settings_text(crm, emulator, store, {}, locale)


def run_demo(
    console: Console, *, crm: str, deals: int, seed: int, keep: Path | None, locale: str = "en"
) -> None:
    """Sync, compute and write back on the emulator of `crm`; the store lives in `keep`, else
    in a temporary folder removed at the end."""
    folder = keep.resolve() if keep else Path(tempfile.mkdtemp(prefix="kpisync-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        demo_in(
            console,
            DEMO_CRMS[crm],
            folder,
            deals=deals,
            seed=seed,
            kept=keep is not None,
            locale=locale,
        )
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    console.print(
        f"store kept at {folder / 'kpisync.db'}"
        if keep
        else "the temporary store is removed; --keep FOLDER keeps it"
    )


def demo_in(
    console: Console,
    crm: DemoCrm,
    folder: Path,
    *,
    deals: int,
    seed: int,
    kept: bool,
    locale: str = "en",
) -> None:
    console.print(
        f"[bold]kpisync demo[/]: a synthetic org of {deals} deals (seed {seed}) "
        f"served by the {crm.name} emulator"
    )
    org = generate_org(seed=seed, deals=deals)
    state = folder / KEPT_SANDBOX
    os.environ.update(crm.credentials())  # this process's own commands use them
    with crm.serve(org, ca_folder=state if kept else None) as emulator:
        mapping = add_score_fields(crm, emulator)
        settings_path = folder / "settings.toml"
        settings_path.write_text(
            settings_text(crm, emulator, folder / "kpisync.db", mapping, locale), "utf-8"
        )
        context = open_context(settings_path)
        try:
            source = context.settings.source(crm.source)
            connector = build_connector(source)
            with console.status("syncing from the emulator over HTTP …"):
                result = sync_source(context.engine, source.name, connector, SyncOptions())
            connector.close()
            console.print(
                f"synced in run {result.run_id}: {result.upserted} rows, "
                f"{calls_in(result.api_calls)} API calls"
            )
            console.print(store_summary(context.engine))
            run = DemoRun(crm, emulator, org.now, context, folder, kept, mapping)
            for stage in (kpi_stage, writeback_stage, report_stage):
                stage(console, run)
            if kept:  # what was written to the emulator, for `kpisync sandbox serve --state`
                port = int(emulator.base_url.rsplit(":", 1)[1])
                SandboxFolder(crm.key, seed, deals, port, mapping).write(state)
                save_state(emulator, state)
        finally:
            context.engine.dispose()
    if kept:
        print_kept(console, crm, folder)


def print_kept(console: Console, crm: DemoCrm, folder: Path) -> None:
    """How to use the kept folder's commands that need the CRM, after the demo's emulator ended."""
    settings = shlex.quote(str(folder / "settings.toml"))
    lines = [
        (
            f"{folder}: settings.toml, kpisync.db, report.html and the emulator's records "
            f"({KEPT_SANDBOX}/). `kpisync status`, `kpis` and `report` work at once:"
        ),
        f"  kpisync --settings {settings} kpis",
        "The commands that talk to the CRM need its emulator back, in another terminal:",
        f"  kpisync sandbox serve --state {shlex.quote(str(folder / KEPT_SANDBOX))}",
        "and its demo credentials in the environment:",
        *(f"  {line}" for line in exports(crm).splitlines()),
        f"  kpisync --settings {settings} check {crm.source}",
    ]
    console.rule("the kept folder")
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def store_summary(engine: Engine) -> Table:
    table = Table("entity", "rows", "deleted", title="the local store after the sync")
    with engine.connect() as connection:
        for entity, model in ENTITY_MODELS.items():
            t = model.__table__  # type: ignore[attr-defined]
            total = connection.execute(select(func.count()).select_from(t)).scalar()
            gone = connection.execute(
                select(func.count()).select_from(t).where(t.c.deleted_at.is_not(None))
            ).scalar()
            table.add_row(entity, str(total), str(gone))
    return table
