"""`kpisync demo`: the whole loop against the built-in HubSpot emulator, no account needed.

Starts the emulator on 127.0.0.1 with a seeded synthetic org, writes a throwaway settings file and
store, syncs, and prints what it did. Later stages (KPIs, write-back) join when installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select

from kpisync.config import load_settings
from kpisync.context import open_context
from kpisync.registry import build_connector
from kpisync.sandbox.hubspot import HubSpotEmulator
from kpisync.sandbox.orggen import generate_org
from kpisync.store.models import ENTITY_MODELS
from kpisync.sync import SyncOptions, sync_source

DEMO_TOKEN_ENV = "KPISYNC_DEMO_HUBSPOT_TOKEN"
DEMO_TOKEN = "pat-na1-demo-emulator"


def demo_settings(base_url: str, store: Path) -> str:
    return f"""
[kpisync]
store = "sqlite:///{store}"
timezone = "Europe/Warsaw"
currency = "USD"

[sources.demo_hubspot]
type = "hubspot"
host = "{base_url}"
token_env = "{DEMO_TOKEN_ENV}"
search_lag_seconds = 0
fast_retries = true
roles = {{ deal_type = "deal_category", competitor = "competitor", margin = "margin" }}
team_regions = {{ "Team Alpha" = "EMEA", "Team Beta" = "NA", "Team Gamma" = "APAC" }}

# What the synthetic org's fields mean for the KPIs: its margin is a share of the amount.
[metrics.roles]
margin = "fraction"
segment_field = "segment"
required_stages = ["qualifiedtobuy", "presentationscheduled"]
proposal_stages = ["contractsent"]

# Spend lives outside the CRM; this one gives the demo's last full quarter a CAC.
[[metrics.spend]]
period = "quarter"
start = "2026-07-01"
amount = 45000
"""


def run_demo(console: Console, *, deals: int, seed: int, keep: Path | None) -> None:
    """Sync, compute and write back on the emulator; the store lives in `keep`, else in a
    temporary folder removed at the end."""
    folder = keep or Path(tempfile.mkdtemp(prefix="kpisync-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        demo_in(console, folder, deals=deals, seed=seed)
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    console.print(f"store kept at {folder / 'kpisync.db'}" if keep else
                  "the temporary store is removed; --keep FOLDER keeps it")


def demo_in(console: Console, folder: Path, *, deals: int, seed: int) -> None:
    console.print(f"[bold]kpisync demo[/]: a synthetic org of {deals} deals (seed {seed}) "
                  f"served by the HubSpot emulator")
    org = generate_org(seed=seed, deals=deals)
    os.environ[DEMO_TOKEN_ENV] = DEMO_TOKEN
    with HubSpotEmulator(org, access_token=DEMO_TOKEN) as emulator:
        settings_path = folder / "settings.toml"
        settings_path.write_text(demo_settings(emulator.base_url, folder / "kpisync.db"), "utf-8")
        context = open_context(settings_path)
        try:
            source = load_settings(settings_path).source("demo_hubspot")
            connector = build_connector(source)
            with console.status("syncing from the emulator over HTTP …"):
                result = sync_source(context.engine, source.name, connector, SyncOptions())
            console.print(f"synced in run {result.run_id}: {result.upserted} rows, "
                          f"{sum(result.api_calls.values())} API calls")
            console.print(store_summary(context.engine))
            for stage in _later_stages():
                stage(console, context, connector, emulator)
            connector.close()
        finally:
            context.engine.dispose()


def store_summary(engine: Engine) -> Table:
    table = Table("entity", "rows", "deleted", title="the local store after the sync")
    with engine.connect() as connection:
        for entity, model in ENTITY_MODELS.items():
            t = model.__table__  # type: ignore[attr-defined]
            total = connection.execute(select(func.count()).select_from(t)).scalar()
            gone = connection.execute(
                select(func.count()).select_from(t).where(t.c.deleted_at.is_not(None))).scalar()
            table.add_row(entity, str(total), str(gone))
    return table


def _later_stages() -> list[Callable[..., None]]:
    """KPIs, then write-back: each shows its part of the loop on the same emulator."""
    from metrics.demo import demo_stage as kpi_stage
    from writeback.demo import demo_stage as writeback_stage

    return [kpi_stage, writeback_stage]
