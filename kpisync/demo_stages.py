"""The stages of `kpisync demo` after its sync, each showing its part of the loop on the same
emulator: the KPIs of the last full quarter, write-back (fields, dry run, write, one record before
and after, read back through the emulator's API), then the HTML report.

They sit above the features they show (docs/decisions/import-layers.md): the KPI engine, write-back
and the report know nothing of the demo.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select

from kpisync import metadata
from kpisync.context import AppContext
from kpisync.demo_crms import DemoCrm
from kpisync.formats import period_label
from kpisync.logs import muted
from kpisync.registry import build_connector
from kpisync.report import build_report, draw_charts, inline_figures, render_html
from kpisync.sandbox_setup import Mapping
from kpisync.sync import SyncOptions, sync_source
from kpisync.texts import localized, translate
from metrics import REGISTRY, compute_all, latest_values, metric_config, period_start, shown
from writeback import outbox, provision_fields, run_writeback, source_plan
from writeback.commands import print_report

ALERTS_LOGGER = "kpisync.metrics.alerts"  # the demo prints the KPI alerts itself


@dataclass(frozen=True)
class DemoRun:
    """One demo in progress: the CRM, its emulator serving the synthetic org, and the store's
    context."""

    crm: DemoCrm
    emulator: Any
    now: datetime  # the synthetic org's present
    context: AppContext
    folder: Path
    kept: bool  # the folder outlives the demo (--keep)
    mapping: Mapping  # entity -> score -> the field it is written into


def kpi_stage(console: Console, run: DemoRun) -> None:
    context = run.context
    console.rule("KPIs")
    now = run.now
    with console.status("computing every KPI of the catalogue …"), muted(ALERTS_LOGGER):
        result = compute_all(context.engine, metric_config(context.settings), now=now)
    console.print(f"computed {result.standing} KPI values (every KPI, period and grain)")
    config, locale = metric_config(context.settings), context.settings.core.locale
    this_quarter = period_start(now.astimezone(config.zone).date(), "quarter", config.calendar)
    quarterly = [
        v
        for v in latest_values(context.engine, period="quarter", grain="org")
        if v.period_start < this_quarter
    ]
    last = max((v.period_start for v in quarterly), default=None)
    title = (
        f"the whole org, {period_label(last, 'quarter', config.calendar, locale)}"
        if last
        else "the whole org"
    )
    table = Table("KPI", "value", "from", "left out", title=title)
    rows = [v for v in quarterly if v.period_start == last]
    for value in sorted(rows, key=lambda v: REGISTRY[v.kpi].title):
        table.add_row(
            translate(REGISTRY[value.kpi].title, locale),
            shown(value, context.settings.core.currency, locale),
            localized(count_text(value.count), locale),
            localized(count_text(value.excluded), locale),
        )
    console.print(table)
    for alert in result.alerts:  # a running worker logs them and posts them to the webhook
        console.print(f"alert: {alert.message}", markup=False)


def count_text(number: int | None) -> str:
    return "-" if number is None else str(number)


def writeback_stage(console: Console, run: DemoRun) -> None:
    crm, context = run.crm, run.context
    console.rule("write-back")
    mapping = run.mapping  # the fields the demo's admin added, named in its settings
    extra = dict(context.settings.extra or {})
    extra.setdefault("writeback", {crm.source: mapping})
    settings = replace(context.settings, extra=extra)
    source = settings.source(crm.source)
    provisioner = build_connector(source)
    steps = provision_fields(
        source_plan(settings, crm.source), provisioner, apply=crm.provisions_fields
    )
    provisioner.close()
    created = sum(1 for s in steps if s.action == "create")
    if crm.provisions_fields:
        console.print(
            f"managed fields: {created} created in a 'kpisync' property group, "
            f"{len(steps) - created} already there"
        )
    else:
        console.print(
            f"managed fields: {len(steps)} custom fields added on the emulator, as an "
            f"admin adds them in {crm.name}; `kpisync fields plan` lists them"
        )
    metadata.forget(context.engine, crm.source)  # the next sync reads the fields just added
    fresh = build_connector(source)  # sees the new fields
    sync_source(context.engine, crm.source, fresh, SyncOptions())
    as_of = run.now + timedelta(hours=12)  # the synthetic org's "today"
    dry = run_writeback(context.engine, settings, crm.source, fresh, as_of=as_of, dry_run=True)
    console.print(
        f"dry run: {dry.planned} field values on {sum(dry.records.values())} records, "
        f"{dry.write_calls} write calls"
    )
    report = run_writeback(context.engine, settings, crm.source, fresh, as_of=as_of)
    print_report(console, report, rows=False)
    account, before = pick_account(context.engine, report.run_id, mapping["account"])
    if not account:
        console.print("no account received a score in this org")
        fresh.close()
        return
    after = crm.read_record(run.emulator, fresh, "account", account, mapping["account"].values())
    table = Table(
        "score",
        "field",
        "before",
        "after",
        title=f"{crm.record_word['account']} "
        f"{account}: after, read back through the emulator's API",
    )
    for score, name in mapping["account"].items():
        table.add_row(score, name, field_text(before.get(name)), field_text(after.get(name)))
    console.print(table)
    fresh.close()


def field_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "∅" if value is None or value == "" else str(value)


def pick_account(
    engine: Engine, run_id: int | None, fields: dict[str, str]
) -> tuple[str, dict[str, str | None]]:
    """An account run `run_id` wrote an NPS onto, preferring an upsell candidate, with the
    values its fields held before (the outbox keeps them, for revert)."""
    o = outbox.OUTBOX
    with engine.connect() as connection:
        rows = connection.execute(
            select(o.c.external_id, o.c.field, o.c.old_value, o.c.new_value).where(
                o.c.run_id == run_id, o.c.entity == "account"
            )
        ).all()
    scored = {r.external_id for r in rows if r.field == fields["nps_score"]}
    flagged = {
        r.external_id for r in rows if r.field == fields["upsell_flag"] and r.new_value == "true"
    }
    anyone = {r.external_id for r in rows}
    account = min(scored & flagged or scored or anyone or {""})  # "": none was written
    return account, {r.field: r.old_value for r in rows if r.external_id == account}


def report_stage(console: Console, run: DemoRun) -> None:
    console.rule("report")
    if not run.kept:
        console.print("--keep FOLDER also writes the HTML report there")
        return
    now = run.now.astimezone(ZoneInfo(run.context.settings.core.timezone))
    this_quarter = datetime(now.year, 3 * ((now.month - 1) // 3) + 1, 1, tzinfo=now.tzinfo)
    as_of = this_quarter - timedelta(minutes=1)  # the last minute of the last full quarter
    built = build_report(run.context.settings, run.context.engine, now=as_of, period="quarter")
    charts = draw_charts(built)
    out = run.folder / "report.html"
    out.write_text(render_html(built, inline_figures(charts)), encoding="utf-8")
    console.print(
        f"wrote {out} ({built.heading}, {len(charts)} charts); `kpisync report "
        f"--settings {run.folder / 'settings.toml'} --period quarter --as-of "
        f"{as_of.isoformat(timespec='minutes')}` makes it again"
    )
