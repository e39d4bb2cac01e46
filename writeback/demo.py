"""The write-back stage of `kpisync demo`: provision, dry run, write, and one record before/after.

The demo's settings have no `[writeback]` table, so this stage brings its own mapping. The record
shown is read back from the emulator through its HTTP API, the way a rep's browser would see it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from kpisync.context import AppContext
from kpisync.registry import build_connector
from kpisync.sync import SyncOptions, sync_source
from writeback.commands import print_report
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import run_writeback

SOURCE = "demo_hubspot"
TOKEN_ENV = "KPISYNC_DEMO_HUBSPOT_TOKEN"
MAPPING: dict[str, dict[str, str]] = {
    "account": {"nps_score": "kpisync_nps_score", "nps_category": "kpisync_nps_category",
                "nps_last_answer": "kpisync_nps_last_answer", "upsell_flag": "kpisync_upsell_flag",
                "upsell_reason": "kpisync_upsell_reason"},
    "contact": {"nps_score": "kpisync_nps_score", "nps_category": "kpisync_nps_category",
                "nps_last_answer": "kpisync_nps_last_answer"},
    "deal": {"days_in_stage": "kpisync_days_in_stage", "stalled": "kpisync_stalled"},
}


def demo_stage(console: Console, context: AppContext, connector: Any, emulator: Any) -> None:
    extra = dict(context.settings.extra or {})
    extra.setdefault("writeback", {SOURCE: MAPPING})
    settings = replace(context.settings, extra=extra)
    source = settings.source(SOURCE)
    plan = source_plan(settings, SOURCE)
    console.rule("write-back")
    steps = provision_fields(plan, build_connector(source), apply=True)
    created = sum(1 for s in steps if s.action == "create")
    console.print(f"managed fields: {created} created in a 'kpisync' property group, "
                  f"{len(steps) - created} already there")
    fresh = build_connector(source)  # sees the new properties
    sync_source(context.engine, SOURCE, fresh, SyncOptions(streams=("companies",)))
    as_of = emulator.org.now + timedelta(hours=12)  # the synthetic org's "today"
    dry = run_writeback(context.engine, settings, SOURCE, fresh, as_of=as_of, dry_run=True)
    console.print(f"dry run: {dry.planned} field values on {sum(dry.records.values())} records, "
                  f"{dry.write_calls} write calls")
    account = pick_account(context.engine, dry)
    before = read_company(emulator.base_url, account, MAPPING["account"].values())
    report = run_writeback(context.engine, settings, SOURCE, fresh, as_of=as_of)
    print_report(console, report, rows=False)
    after = read_company(emulator.base_url, account, MAPPING["account"].values())
    table = Table("property", "before", "after",
                  title=f"company {account}, read back from the emulator's API")
    for name in MAPPING["account"].values():
        table.add_row(name, str(before.get(name) or "∅"), str(after.get(name) or "∅"))
    console.print(table)
    fresh.close()


def pick_account(engine: Any, report: Any) -> str:
    """An account the run writes an NPS onto, preferring an upsell candidate."""
    rows = [r for r in report.sample if r.entity == "account"]
    flagged = [r.external_id for r in rows if r.field.endswith("upsell_flag") and r.new == "true"]
    scored = [r.external_id for r in rows if r.field.endswith("nps_score")]
    return (flagged or scored or [r.external_id for r in rows] or ["1"])[0]


def read_company(base_url: str, company_id: str, names: Any) -> dict[str, Any]:
    token = os.environ.get(TOKEN_ENV, "")
    response = httpx.get(f"{base_url}/crm/v3/objects/companies/{company_id}",
                         params={"properties": ",".join(names)},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
    response.raise_for_status()
    return dict(response.json().get("properties") or {})
