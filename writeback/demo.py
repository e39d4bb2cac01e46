"""The write-back stage of `kpisync demo`: fields, dry run, write, and one record before/after.

The demo's settings map the scores into fields made as the CRM's admin would make them (HubSpot's
are created here, through its API). The record shown is read back through the emulator's
HTTP API after the run, the way a rep's screen would see it; its values before are the ones the
run's outbox kept for a revert.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select

from kpisync import metadata
from kpisync.demo_run import DemoRun
from kpisync.registry import build_connector
from kpisync.sync import SyncOptions, sync_source
from writeback import outbox
from writeback.commands import print_report
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import run_writeback


def demo_stage(console: Console, run: DemoRun) -> None:
    crm, context = run.crm, run.context
    console.rule("write-back")
    mapping = run.mapping  # the fields the demo's admin added, named in its settings
    extra = dict(context.settings.extra or {})
    extra.setdefault("writeback", {crm.source: mapping})
    settings = replace(context.settings, extra=extra)
    source = settings.source(crm.source)
    provisioner = build_connector(source)
    steps = provision_fields(source_plan(settings, crm.source), provisioner,
                             apply=crm.provisions_fields)
    provisioner.close()
    created = sum(1 for s in steps if s.action == "create")
    if crm.provisions_fields:
        console.print(f"managed fields: {created} created in a 'kpisync' property group, "
                      f"{len(steps) - created} already there")
    else:
        console.print(f"managed fields: {len(steps)} custom fields added on the emulator, as an "
                      f"admin adds them in {crm.name}; `kpisync fields plan` lists them")
    metadata.forget(context.engine, crm.source)  # the next sync reads the fields just added
    fresh = build_connector(source)  # sees the new fields
    sync_source(context.engine, crm.source, fresh, SyncOptions())
    as_of = run.org.now + timedelta(hours=12)  # the synthetic org's "today"
    dry = run_writeback(context.engine, settings, crm.source, fresh, as_of=as_of, dry_run=True)
    console.print(f"dry run: {dry.planned} field values on {sum(dry.records.values())} records, "
                  f"{dry.write_calls} write calls")
    report = run_writeback(context.engine, settings, crm.source, fresh, as_of=as_of)
    print_report(console, report, rows=False)
    account, before = pick_account(context.engine, report.run_id, mapping["account"])
    if not account:
        console.print("no account received a score in this org")
        fresh.close()
        return
    after = crm.read_record(run.emulator, fresh, "account", account, mapping["account"].values())
    table = Table("score", "field", "before", "after", title=f"{crm.record_word['account']} "
                  f"{account}: after, read back through the emulator's API")
    for score, name in mapping["account"].items():
        table.add_row(score, name, shown(before.get(name)), shown(after.get(name)))
    console.print(table)
    fresh.close()


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "∅" if value is None or value == "" else str(value)


def pick_account(engine: Engine, run_id: int | None, fields: dict[str, str]
                 ) -> tuple[str, dict[str, str | None]]:
    """An account run `run_id` wrote an NPS onto, preferring an upsell candidate, with the
    values its fields held before (the outbox keeps them, for revert)."""
    o = outbox.OUTBOX
    with engine.connect() as connection:
        rows = connection.execute(select(o.c.external_id, o.c.field, o.c.old_value, o.c.new_value)
                                  .where(o.c.run_id == run_id, o.c.entity == "account")).all()
    scored = {r.external_id for r in rows if r.field == fields["nps_score"]}
    flagged = {r.external_id for r in rows
               if r.field == fields["upsell_flag"] and r.new_value == "true"}
    anyone = {r.external_id for r in rows}
    account = min(scored & flagged or scored or anyone or {""})  # "": none was written
    return account, {r.field: r.old_value for r in rows if r.external_id == account}
