"""CLI commands of the KPI engine: compute, kpis, goals, surveys import.

`register(app)` adds them to a Typer app (kpisync.cli loads this module when one of them runs).
Errors are raised as kpisync.errors subclasses; the CLI's `friendly` wrapper, put around every
command by the CLI, turns them into one line and an exit code.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from difflib import get_close_matches
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from kpisync.calendars import GREGORIAN, Calendar
from kpisync.cli_options import JSON, SETTINGS
from kpisync.context import open_context
from kpisync.errors import ConfigError, RowsRejected
from kpisync.formats import period_label
from kpisync.logs import print_json_record
from kpisync.output import MODE, stderr_console, stdout_console
from kpisync.store.database import require_writable
from kpisync.texts import localized, translate
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.display import in_unit, kpi_title, shown
from metrics.engine import compute_all
from metrics.goals import goal_statuses
from metrics.key_names import KeyNames, key_names
from metrics.options import metric_config
from metrics.periods import KINDS, period_start, shift
from metrics.snapshots import current_values, latest_values, value_history
from metrics.survey_import import import_surveys

console = stdout_console()
errors = stderr_console()


def register(app: typer.Typer) -> None:
    app.command("compute")(compute)
    app.command("kpis")(kpis)
    app.command("goals")(goals)
    surveys = typer.Typer(help="Survey answers (NPS, eNPS) from survey tools' exports.")
    surveys.command("import")(surveys_import)
    app.add_typer(surveys, name="surveys")


def compute(
    settings: Path = SETTINGS,
    force: bool = typer.Option(False, "--force", help="recompute even when no input changed"),
    as_json: bool = JSON,
) -> None:
    """Compute every KPI now, store the values and send alerts for new crossings.

    When no record, setting or date moved since the last computation, its values stand.
    """
    context = open_context(settings)
    require_writable(context.engine, "compute")
    result = compute_all(context.engine, metric_config(context.settings), force=force)
    if as_json:
        print(
            json.dumps(
                {
                    "computation": result.computation_id,
                    "as_of": result.as_of.isoformat(),
                    "values": result.standing,
                    "changed": result.changed,
                    "reused_from": result.reused_from,
                    "recomputed": result.recomputed,
                    "alerts": len(result.alerts),
                }
            )
        )
        return
    if result.reused_from is not None:
        console.print(
            f"inputs unchanged since computation {result.reused_from}: its "
            f"{result.standing} values stand (--force recomputes); "
            f"{len(result.alerts)} alerts sent"
        )
        return
    if result.recomputed is not None:
        console.print(
            f"recomputed {result.recomputed} of {result.standing} values (the periods "
            f"whose records moved; --force recomputes all); {result.changed} changed; "
            f"{len(result.alerts)} alerts sent"
        )
        return
    console.print(
        f"computed {result.standing} values of {len(REGISTRY.names())} KPIs; "
        f"{result.changed} changed; {len(result.alerts)} alerts sent"
    )


def resolve_kpi(asked: str | None) -> str | None:
    """A KPI by its name or its title, whatever the case ("Win rate", "WIN_RATE", "win rate")."""
    if asked is None:
        return None
    wanted = " ".join(asked.replace("_", " ").split()).casefold()
    for known in REGISTRY:
        if wanted in (known.name.replace("_", " ").casefold(), known.title.casefold()):
            return known.name
    spellings = {known.title.casefold(): known.name for known in REGISTRY}
    spellings |= {known.name.replace("_", " "): known.name for known in REGISTRY}
    close = get_close_matches(wanted, list(spellings), n=1, cutoff=0.6)
    suggestion = (
        f"; did you mean {kpi_title(spellings[close[0]])!r} ({spellings[close[0]]})?"
        if close
        else ""
    )
    raise ConfigError(
        f"unknown KPI {asked!r}{suggestion}",
        hint="a KPI's name or its title; known: " + ", ".join(REGISTRY.names()),
    )


def check_filters(kpi: str | None, period: str | None, grain: str | None) -> None:
    if period is not None and period not in KINDS:
        raise ConfigError(f"unknown period {period!r}", hint="use week, month, quarter or year")
    grains = sorted({g for known in REGISTRY for g in known.grains})
    if grain is not None and grain not in grains:
        raise ConfigError(f"unknown grain {grain!r}", hint="use one of " + ", ".join(grains))
    if grain is not None and kpi is not None and grain not in REGISTRY[kpi].grains:
        raise ConfigError(
            f"{kpi} has no grain {grain!r}", hint="its grains: " + ", ".join(REGISTRY[kpi].grains)
        )


def one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise ConfigError(
            "--json and --csv are two formats for the same output", hint="give one of them"
        )


@dataclass(frozen=True)
class Shown:
    """The period a `kpis` table shows and how its title names it."""

    kind: str
    start: date
    running: bool
    calendar: Calendar = GREGORIAN
    locale: str = "en"

    @property
    def label(self) -> str:
        return period_label(self.start, self.kind, self.calendar, self.locale)

    def title(self, as_of: datetime | None) -> str:
        label = self.label
        if not self.running:
            return f"{label}, complete"
        return f"{label} to date" + (f", as of {as_of:%Y-%m-%d %H:%M} UTC" if as_of else "")


def chosen_period(
    kind: str, at: date | None, zone: str, calendar: Calendar = GREGORIAN, locale: str = "en"
) -> Shown:
    """The period holding `at`; without it the latest complete one (local calendar)."""
    today = datetime.now(ZoneInfo(zone)).date()
    current = period_start(today, kind, calendar)
    start = (
        period_start(at, kind, calendar) if at is not None else shift(current, kind, -1, calendar)
    )
    return Shown(kind, start, running=start >= current, calendar=calendar, locale=locale)


def kpis(
    settings: Path = SETTINGS,
    kpi: str | None = typer.Option(
        None, "--kpi", help='one KPI, by name or title (win_rate, "Win rate")'
    ),
    period: str | None = typer.Option(
        None, "--period", help="week, month, quarter, year (default month)"
    ),
    at: datetime | None = typer.Option(
        None,
        "--at",
        formats=["%Y-%m-%d"],
        help="the period holding this date (YYYY-MM-DD); default: the latest complete period",
    ),
    grain: str | None = typer.Option(None, "--grain", help="org, team, rep, region …"),
    history: bool = typer.Option(False, "--history", help="every stored snapshot"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
    as_csv: bool = typer.Option(False, "--csv", help="CSV instead of a table"),
) -> None:
    """Show stored KPI values of one period (the latest complete one unless --at), or every
    snapshot of one KPI (--history). Machine forms carry each value's unit."""
    one_format(as_json, as_csv)
    kpi = resolve_kpi(kpi)
    check_filters(kpi, period, grain)
    context = open_context(settings)
    currency = context.settings.core.currency
    locale, calendar = context.settings.core.locale, metric_config(context.settings).calendar
    if history:
        if kpi is None:
            raise ConfigError(
                "--history needs --kpi", hint="e.g. kpisync kpis --kpi win_rate --history"
            )
        rows = value_history(context.engine, kpi, period or "month", grain or "org")
        title = f"{kpi_title(kpi)}, every {period or 'month'} ({grain or 'org'}), each snapshot"
    else:
        shown_period = chosen_period(
            period or "month",
            at.date() if at else None,
            context.settings.core.timezone,
            calendar,
            locale,
        )
        rows = current_values(
            context.engine, kpi, shown_period.kind, grain, period_start=shown_period.start
        )
        title = shown_period.title(max((when for when, _ in rows), default=None))
        if not rows and not (as_json or as_csv):
            label = shown_period.label
            console.print(
                f"no stored values for {label}; 'kpisync compute' computes them from "
                f"the store, --at DATE shows another period",
                markup=False,
            )
            return
    if not rows and not (as_json or as_csv):
        console.print("no stored values match; 'kpisync compute' computes them from the store")
        return
    emit(
        rows,
        as_json=as_json,
        as_csv=as_csv,
        currency=currency,
        names=key_names(context.engine, (v for _, v in rows)),
        show_computed_at=history,
        title=title,
        locale=locale,
        calendar=calendar,
    )


def emit(
    rows: Sequence[tuple[datetime | None, KpiValue]],
    *,
    as_json: bool,
    as_csv: bool,
    currency: str = "",
    names: KeyNames | None = None,
    show_computed_at: bool = False,
    title: str | None = None,
    locale: str = "en",
    calendar: Calendar = GREGORIAN,
) -> None:
    """The values as a table, JSON lines or CSV; a rep's or an account's key (the CRM's id) is
    shown by its name where `names` has one, and the machine forms carry both, with the value's
    unit (and currency for money) and the value as the table shows it. The machine forms
    always carry when each value was computed; the table shows it with `show_computed_at`."""
    names = names or {}
    fields = [
        "kpi",
        "period",
        "period_start",
        "grain",
        "key",
        "value",
        "count",
        "excluded",
        "reason",
    ]
    if as_json or as_csv:
        records = [
            {
                "computed_at": at.isoformat() if at else None,
                **{f: getattr(v, f) for f in fields},
                "period_start": v.period_start.isoformat(),
                "name": names.get((v.grain, v.key)),
                "unit": unit_of(v.kpi),
                "currency": currency if unit_of(v.kpi) == "money" and currency else None,
                "shown": shown(v, currency),
            }
            for at, v in rows
        ]
        if as_json:
            for record in records:
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(
                sys.stdout, fieldnames=["computed_at", *fields, "name", "unit", "currency", "shown"]
            )
            writer.writeheader()
            writer.writerows(records)
        sys.stdout.flush()  # a closed pipe shows here, inside the command, not at exit
        return
    table = Table(
        "KPI",
        "period",
        "start",
        "grain",
        "key",
        "value",
        "records",
        "left out",
        title=title,
        title_justify="left",
    )
    if show_computed_at:
        table.add_column("computed at")
    for at, v in rows:
        start = (
            period_label(v.period_start, v.period, calendar, locale)
            if calendar.system == "persian"
            else v.period_start.isoformat()
        )
        cells = [
            translate(kpi_title(v.kpi), locale),
            translate(v.period, locale),
            start,
            v.grain,
            escape(names.get((v.grain, v.key), v.key)),
            escape(shown(v, currency, locale)),
            localized(str(v.count or 0), locale),
            localized(str(v.excluded or 0), locale),
        ]
        computed = [at.isoformat(timespec="seconds") if at else ""] if show_computed_at else []
        table.add_row(*cells, *computed)
    console.print(table)


def unit_of(kpi: str) -> str:
    return REGISTRY[kpi].unit if kpi in REGISTRY else ""


def goals(settings: Path = SETTINGS, as_json: bool = JSON) -> None:
    """Progress, pace and status of every goal in settings.toml."""
    context = open_context(settings)
    config = metric_config(context.settings)
    if not config.metrics.goals:
        raise ConfigError(
            "no goals configured", hint="add [[metrics.goals]] entries to settings.toml"
        )
    now = datetime.now(UTC)
    statuses = goal_statuses(config, latest_values(context.engine), now)
    currency = context.settings.core.currency
    if as_json:
        for s in statuses:
            g = s.goal
            sys.stdout.write(
                json.dumps(
                    {
                        "goal": g.name,
                        "kpi": g.kpi,
                        "grain": g.grain,
                        "key": g.key,
                        "period": g.period,
                        "period_start": s.period_start.isoformat(),
                        "unit": unit_of(g.kpi),
                        "currency": currency if unit_of(g.kpi) == "money" and currency else None,
                        "target": g.target,
                        "actual": s.actual,
                        "progress": s.progress,
                        "pace": s.pace,
                        "status": s.status,
                        "reason": s.reason,
                    },
                    ensure_ascii=False,
                    default=str,
                )
                + "\n"
            )
        return
    table = Table(
        "goal", "KPI", "grain", "key", "period", "target", "actual", "progress", "pace", "status"
    )
    for s in statuses:
        g = s.goal
        table.add_row(
            escape(g.name),
            kpi_title(g.kpi),
            g.grain,
            escape(g.key),
            period_label(s.period_start, g.period, config.calendar),
            in_unit(g.kpi, g.target, currency),
            in_unit(g.kpi, s.actual, currency),
            "-" if s.progress is None else f"{s.progress:.0%}",
            in_unit(g.kpi, s.pace, currency),
            s.status if not s.reason else f"{s.status} ({s.reason})",
        )
    console.print(table)


FILE = typer.Argument(..., help="CSV or JSON export of a survey tool (format above)")


def surveys_import(
    file: Path = FILE,
    source: str = typer.Option(..., "--source", help="the source the answers belong to"),
    recompute: bool = typer.Option(
        True,
        "--compute/--no-compute",
        help="recompute the KPIs after the import "
        "(with --no-compute they stay stale "
        "until 'kpisync compute')",
    ),
    settings: Path = SETTINGS,
    as_json: bool = JSON,
) -> None:
    """Import NPS/eNPS answers from a survey tool's export, then recompute the KPIs.

    \b
    The file: CSV (a header row; comma, semicolon or tab separated; UTF-8)
    or JSON (a list of objects, or {"responses": [...]}).
    Columns, in any case (invisible characters in names are dropped):
      score        0 to 10, a whole number (Persian or Arabic digits too)
      answered_at  or date: 2025-03-01, or 2025-03-01T10:00:00+01:00;
                   without an offset, in the settings' timezone
      kind         nps (the default) or enps
      respondent   or email. NPS: the contact's email or id.
                   eNPS: the employee's (used, never stored)
      account      NPS: the account it is about (default: the contact's)
      team         eNPS: the team (default: the employee's)
      id           the tool's response id (optional)
    score and answered_at are required. Importing a file again adds
    nothing twice. Each rejected row is listed with its line and reason,
    the other rows are imported, and the command exits 7.
    """
    context = open_context(settings)
    if source not in context.settings.sources:
        context.settings.source(source)  # raises the ConfigError naming the known sources
    require_writable(context.engine, "surveys import")
    report = import_surveys(
        context.engine,
        file,
        source=source,
        timezone=context.settings.core.timezone,
        calendar=context.settings.core.calendar,
    )
    say = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
    if as_json:  # the counts, the rejected rows and the notes as one object; messages on stderr
        say = functools.partial(errors.print, markup=False, highlight=False, soft_wrap=True)
        if MODE.log_json:  # stderr holds JSON lines only
            say = functools.partial(print_json_record, level="info")
        print(
            json.dumps(
                {
                    "imported": report.imported,
                    "unchanged": report.unchanged,
                    "duplicates": report.duplicates,
                    "notes": report.notes,
                    "rejected": [{"line": e.line, "reason": e.reason} for e in report.errors],
                },
                ensure_ascii=False,
            )
        )
    for note in report.notes if not as_json else ():
        say(f"note: {note}")
    if not as_json:
        say(
            f"{report.imported} answers imported, {report.unchanged} already present, "
            f"{report.duplicates} duplicate rows, {len(report.errors)} rows rejected"
        )
        if report.read_by_setting:
            say(
                f"{report.read_by_setting} dates valid in both calendars were read as "
                f"{context.settings.core.calendar}, as [kpisync] calendar says"
            )
        for error in report.errors:
            say(f"  {error}")
    if report.imported and recompute:
        result = compute_all(context.engine, metric_config(context.settings))
        say(f"KPIs recomputed ({result.changed} values changed), NPS and eNPS included")
    elif report.imported:
        say("the KPIs (NPS, eNPS, the report) are stale until 'kpisync compute'")
    if report.errors:
        raise RowsRejected(
            f"{len(report.errors)} of the file's rows were rejected (listed above); "
            f"the other rows were imported",
            hint="correct those rows and import the file again (rows already "
            "imported are not added twice)",
        )
