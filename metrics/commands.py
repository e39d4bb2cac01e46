"""CLI commands of the KPI engine: compute, kpis, goals, surveys import.

`register(app)` adds them to the kpisync Typer app. Errors are raised as kpisync.errors subclasses;
the CLI's `friendly` wrapper turns them into one line and an exit code.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kpisync.calendars import GREGORIAN, Calendar
from kpisync.cli_options import SETTINGS
from kpisync.context import open_context
from kpisync.errors import ConfigError
from kpisync.report.formats import period_label
from kpisync.texts import localized, translate
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.display import in_unit, kpi_title
from metrics.engine import compute_all
from metrics.goals import goal_statuses
from metrics.key_names import KeyNames, key_names
from metrics.options import metric_config
from metrics.periods import KINDS
from metrics.snapshots import current_values, latest_values, value_history
from metrics.survey_import import import_surveys

console = Console()


def register(app: typer.Typer) -> None:
    from kpisync.cli import friendly

    app.command("compute")(friendly(compute))
    app.command("kpis")(friendly(kpis))
    app.command("goals")(friendly(goals))
    surveys = typer.Typer(help="Survey answers (NPS, eNPS) from survey tools' exports.")
    surveys.command("import")(friendly(surveys_import))
    app.add_typer(surveys, name="surveys")


def compute(settings: Path = SETTINGS,
            force: bool = typer.Option(False, "--force",
                                       help="recompute even when no input changed")) -> None:
    """Compute every KPI now, store the values and send alerts for new crossings.

    When no record, setting or date moved since the last computation, its values stand.
    """
    context = open_context(settings)
    result = compute_all(context.engine, metric_config(context.settings), force=force)
    if result.reused_from is not None:
        console.print(f"inputs unchanged since computation {result.reused_from}: its "
                      f"{result.standing} values stand (--force recomputes); "
                      f"{len(result.alerts)} alerts sent")
        return
    console.print(f"computed {result.standing} values of {len(REGISTRY.names())} KPIs; "
                  f"{result.changed} changed; {len(result.alerts)} alerts sent")


def check_filters(kpi: str | None, period: str | None, grain: str | None) -> None:
    if kpi is not None and kpi not in REGISTRY:
        raise ConfigError(f"unknown KPI {kpi!r}", hint="known: " + ", ".join(REGISTRY.names()))
    if period is not None and period not in KINDS:
        raise ConfigError(f"unknown period {period!r}", hint="use week, month, quarter or year")
    grains = sorted({g for known in REGISTRY for g in known.grains})
    if grain is not None and grain not in grains:
        raise ConfigError(f"unknown grain {grain!r}", hint="use one of " + ", ".join(grains))
    if grain is not None and kpi is not None and grain not in REGISTRY[kpi].grains:
        raise ConfigError(f"{kpi} has no grain {grain!r}",
                          hint="its grains: " + ", ".join(REGISTRY[kpi].grains))


def kpis(settings: Path = SETTINGS,
         kpi: str | None = typer.Option(None, "--kpi", help="one KPI by name"),
         period: str | None = typer.Option(None, "--period", help="week, month, quarter, year"),
         grain: str | None = typer.Option(None, "--grain", help="org, team, rep, region …"),
         history: bool = typer.Option(False, "--history", help="every stored snapshot"),
         as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
         as_csv: bool = typer.Option(False, "--csv", help="CSV instead of a table")) -> None:
    """Show stored KPI values: the newest period of each KPI, or every period of one (--kpi)."""
    check_filters(kpi, period, grain)
    context = open_context(settings)
    if history:
        if kpi is None:
            raise ConfigError("--history needs --kpi", hint="e.g. kpisync kpis --kpi win_rate --history")
        rows = value_history(context.engine, kpi, period or "month", grain or "org")
    else:
        rows = current_values(context.engine, kpi, period or "month", grain)
        rows = newest_periods(rows) if kpi is None else rows
    if not rows and not (as_json or as_csv):
        console.print("no stored values match; 'kpisync compute' computes them from the store")
        return
    emit(rows, as_json=as_json, as_csv=as_csv, currency=context.settings.core.currency,
         names=key_names(context.engine, (v for _, v in rows)), show_computed_at=history,
         locale=context.settings.core.locale, calendar=metric_config(context.settings).calendar)


def newest_periods(rows: list[tuple[datetime, KpiValue]]) -> list[tuple[datetime, KpiValue]]:
    """Of each (kpi, grain, key), the value of its newest period."""
    newest: dict[tuple[str, str, str], tuple[datetime, KpiValue]] = {}
    for at, value in rows:
        slot = (value.kpi, value.grain, value.key)
        if slot not in newest or value.period_start > newest[slot][1].period_start:
            newest[slot] = (at, value)
    return list(newest.values())


def shown(value: KpiValue, currency: str = "", locale: str = "en") -> str:
    """The value with its unit (37.5%, 54,356 USD, 53.6 days), or "no data" and why; in Persian
    words and digits under locale fa (kpisync.texts)."""
    if value.value is None:
        return f"{translate('no data', locale)} ({translate(value.reason or '', locale)})"
    return localized(in_unit(value.kpi, value.value, currency), locale)


def emit(rows: Sequence[tuple[datetime | None, KpiValue]], *, as_json: bool, as_csv: bool,
         currency: str = "", names: KeyNames | None = None, show_computed_at: bool = False,
         locale: str = "en", calendar: Calendar = GREGORIAN) -> None:
    """The values as a table, JSON lines or CSV; a rep's or an account's key (the CRM's id) is
    shown by its name where `names` has one, and the machine forms carry both. The machine forms
    always carry when each value was computed; the table shows it with `show_computed_at`."""
    names = names or {}
    fields = ["kpi", "period", "period_start", "grain", "key", "value", "count", "excluded",
              "reason"]
    if as_json or as_csv:
        records = [{"computed_at": at.isoformat() if at else None,
                    **{f: getattr(v, f) for f in fields},
                    "period_start": v.period_start.isoformat(),
                    "name": names.get((v.grain, v.key))} for at, v in rows]
        if as_json:
            for record in records:
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(sys.stdout, fieldnames=["computed_at", *fields, "name"])
            writer.writeheader()
            writer.writerows(records)
        return
    table = Table("KPI", "period", "start", "grain", "key", "value", "records", "left out")
    if show_computed_at:
        table.add_column("computed at")
    for at, v in rows:
        start = (period_label(v.period_start, v.period, calendar, locale)
                 if calendar.system == "persian" else v.period_start.isoformat())
        cells = [translate(kpi_title(v.kpi), locale), translate(v.period, locale), start, v.grain,
                 escape(names.get((v.grain, v.key), v.key)),
                 escape(shown(v, currency, locale)),
                 localized(str(v.count or 0), locale),
                 localized(str(v.excluded or 0), locale)]
        computed = [at.isoformat(timespec="seconds") if at else ""] if show_computed_at else []
        table.add_row(*cells, *computed)
    console.print(table)


def goals(settings: Path = SETTINGS) -> None:
    """Progress, pace and status of every goal in settings.toml."""
    context = open_context(settings)
    config = metric_config(context.settings)
    if not config.metrics.goals:
        raise ConfigError("no goals configured", hint="add [[metrics.goals]] entries to settings.toml")
    now = datetime.now(UTC)
    statuses = goal_statuses(config, latest_values(context.engine), now)
    table = Table("goal", "KPI", "grain", "key", "period", "target", "actual", "progress", "pace",
                  "status")
    currency = context.settings.core.currency
    for s in statuses:
        g = s.goal
        table.add_row(escape(g.name), kpi_title(g.kpi), g.grain, escape(g.key),
                      period_label(s.period_start, g.period, config.calendar), in_unit(g.kpi, g.target, currency),
                      in_unit(g.kpi, s.actual, currency),
                      "-" if s.progress is None else f"{s.progress:.0%}",
                      in_unit(g.kpi, s.pace, currency),
                      s.status if not s.reason else f"{s.status} ({s.reason})")
    console.print(table)


FILE = typer.Argument(..., help="CSV or JSON export of a survey tool")


def surveys_import(file: Path = FILE,
                   source: str = typer.Option(..., "--source", help="the source the answers belong to"),
                   settings: Path = SETTINGS) -> None:
    """Import NPS/eNPS answers; bad rows are listed with their line number and reason."""
    context = open_context(settings)
    if source not in context.settings.sources:
        context.settings.source(source)  # raises the ConfigError naming the known sources
    report = import_surveys(context.engine, file, source=source,
                            timezone=context.settings.core.timezone,
                            calendar=context.settings.core.calendar)
    console.print(f"{report.imported} answers imported, {report.unchanged} already present, "
                  f"{report.duplicates} duplicate rows, {len(report.errors)} rows rejected")
    if report.read_by_setting:
        console.print(f"{report.read_by_setting} dates valid in both calendars were read as "
                      f"{context.settings.core.calendar}, as [kpisync] calendar says")
    for error in report.errors:
        console.print(f"  {error}", markup=False, highlight=False)
