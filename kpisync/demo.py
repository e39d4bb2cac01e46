"""`kpisync demo`: the whole loop against a built-in CRM emulator, no account needed.

Starts the emulator of the CRM asked for (HubSpot, Salesforce or Vtiger) on 127.0.0.1 with a
seeded synthetic org, writes a throwaway settings file and store, syncs, and prints what it did.
Later stages (KPIs, write-back) join when installed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select

from kpisync.connector import calls_in
from kpisync.context import AppContext, open_context
from kpisync.demo_crms import DEMO_CRMS, DemoCrm
from kpisync.registry import build_connector
from kpisync.sandbox.org import Org
from kpisync.sandbox.orggen import generate_org
from kpisync.store.models import ENTITY_MODELS
from kpisync.sync import SyncOptions, sync_source

# Neutral stage keys of the synthetic org that the demo's KPI roles name.
REQUIRED_STAGES = ("qualified_to_buy", "presentation_scheduled")
PROPOSAL_STAGES = ("contract_sent",)
TEAM_QUOTA = 60_000  # each team's quota for the demo's last full quarter, in USD


@dataclass(frozen=True)
class DemoRun:
    """One demo in progress: the CRM, its emulator serving `org`, and the store's context."""

    crm: DemoCrm
    emulator: Any
    org: Org
    context: AppContext
    folder: Path
    kept: bool  # the folder outlives the demo (--keep)


def toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def demo_settings(crm: DemoCrm, emulator: Any, store: Path) -> str:
    required = toml_list(crm.stage_name(emulator, key) for key in REQUIRED_STAGES)
    proposal = toml_list(crm.stage_name(emulator, key) for key in PROPOSAL_STAGES)
    teams = sorted({rep.team for rep in emulator.org.reps if rep.team})
    team_quotas = "".join(f'\n[[metrics.quotas]]\nperiod = "quarter"\nstart = "2026-07-01"\n'
                          f'amount = {TEAM_QUOTA}\nteam = "{team}"\n' for team in teams)
    return f"""
[kpisync]
store = "sqlite:///{store}"
timezone = "Europe/Warsaw"
currency = "USD"

[sources.{crm.source}]
{crm.source_settings(emulator)}

# The synthetic org keeps no exchange rates: these convert its EUR, GBP and PLN deals to USD.
[metrics]
currency_rates = {{ EUR = 1.08, GBP = 1.27, PLN = 0.25 }}

# What the synthetic org's fields mean for the KPIs: its margin is a share of the amount.
[metrics.roles]
margin = "fraction"
segment_field = "{crm.segment_field(emulator)}"
qualified_lead_statuses = {toml_list(crm.qualified_statuses(emulator))}
required_stages = {required}
proposal_stages = {proposal}

# Goals for the demo's last full quarter: `kpisync goals` and the report show their progress.
[[metrics.goals]]
name = "Q3 revenue"
kpi = "sales_volume"
period = "quarter"
start = "2026-07-01"
target = 120000

[[metrics.goals]]
name = "Q3 win rate"
kpi = "win_rate"
period = "quarter"
start = "2026-07-01"
target = 0.30

# Spend and quotas live outside the CRM; these give the demo's last full quarter a CAC and
# each team a quota.
[[metrics.spend]]
period = "quarter"
start = "2026-07-01"
amount = 45000
{team_quotas}"""


def run_demo(console: Console, *, crm: str, deals: int, seed: int, keep: Path | None) -> None:
    """Sync, compute and write back on the emulator of `crm`; the store lives in `keep`, else
    in a temporary folder removed at the end."""
    folder = keep or Path(tempfile.mkdtemp(prefix="kpisync-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        demo_in(console, DEMO_CRMS[crm], folder, deals=deals, seed=seed, kept=keep is not None)
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    console.print(f"store kept at {folder / 'kpisync.db'}" if keep else
                  "the temporary store is removed; --keep FOLDER keeps it")


def demo_in(console: Console, crm: DemoCrm, folder: Path, *, deals: int, seed: int,
            kept: bool) -> None:
    console.print(f"[bold]kpisync demo[/]: a synthetic org of {deals} deals (seed {seed}) "
                  f"served by the {crm.name} emulator")
    org = generate_org(seed=seed, deals=deals)
    with crm.serve(org) as emulator:
        settings_path = folder / "settings.toml"
        settings_path.write_text(demo_settings(crm, emulator, folder / "kpisync.db"), "utf-8")
        context = open_context(settings_path)
        try:
            source = context.settings.source(crm.source)
            connector = build_connector(source)
            with console.status("syncing from the emulator over HTTP …"):
                result = sync_source(context.engine, source.name, connector, SyncOptions())
            connector.close()
            console.print(f"synced in run {result.run_id}: {result.upserted} rows, "
                          f"{calls_in(result.api_calls)} API calls")
            console.print(store_summary(context.engine))
            run = DemoRun(crm, emulator, org, context, folder, kept)
            for stage in _later_stages():
                stage(console, run)
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
    """KPIs, write-back, then the report: each shows its part of the loop on the same emulator."""
    from kpisync.report.demo import demo_stage as report_stage
    from metrics.demo import demo_stage as kpi_stage
    from writeback.demo import demo_stage as writeback_stage

    return [kpi_stage, writeback_stage, report_stage]
