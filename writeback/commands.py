"""CLI: `kpisync fields plan|apply SOURCE`, `kpisync writeback [--dry-run]`, `... revert RUN`, `... runs`.

`register(app)` adds them to a Typer app (kpisync.cli loads this module when one of them runs and
wraps each in its `friendly` error handling)."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from kpisync import metadata
from kpisync.cli_options import JSON, SETTINGS
from kpisync.context import open_context
from kpisync.errors import ConfigError, ConflictError, WritebackError, WritesFailed
from kpisync.output import stdout_console
from kpisync.registry import build_connector
from writeback.guard import lift_pauses
from writeback.options import mapped_sources, source_plan
from writeback.provision import FieldStep, provision_fields
from writeback.records import RecordLabel, record_labels
from writeback.runs import (
    SAMPLE,
    PlannedRow,
    RunReport,
    approve_plan,
    latest_runs,
    resume_fields,
    resume_hint,
    revert_run,
    run_source,
    run_writeback,
)

ARROW = "→"
console = stdout_console()


def parse_instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--as-of: {text!r} is not an ISO date or instant",
            hint="e.g. 2026-10-31 or 2026-10-31T12:00:00Z",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class WritebackGroup(TyperGroup):
    """`kpisync writeback NAME` reads like `sync NAME` and `check NAME`; write-back takes the
    source as --source (its words are subcommands), so say that rather than "No such command"."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in self.commands:
            # `writeback run NAME`: the first word was meant as a verb and NAME is the source
            source = args[1] if len(args) > 1 and not args[1].startswith("-") else name
            ctx.fail(
                f"no write-back command {name!r} (its commands: "
                f"{', '.join(sorted(self.commands))}); to write one source's scores: "
                f"kpisync writeback --source {source}; every mapped source's: "
                "kpisync writeback"
            )
        return super().resolve_command(ctx, args)


def register(app: typer.Typer) -> None:  # noqa: C901 (the sum of its nested commands)
    fields_app = typer.Typer(help="The CRM fields write-back manages.", no_args_is_help=True)
    writeback_app = typer.Typer(
        help="Write scores onto CRM records.", invoke_without_command=True, cls=WritebackGroup
    )
    app.add_typer(fields_app, name="fields")
    app.add_typer(writeback_app, name="writeback")

    @fields_app.command("plan")
    def fields_plan(source: str, settings: Path = SETTINGS, as_json: bool = JSON) -> None:
        """Show which managed fields exist, which would be created, which need a person."""
        steps = provision(source, settings, apply=False)
        if as_json:
            print(json.dumps([asdict(step) for step in steps], ensure_ascii=False))
            return
        print_steps(console, source, steps, applied=False)

    @fields_app.command("apply")
    def fields_apply(source: str, settings: Path = SETTINGS) -> None:
        """Create the missing managed fields where the CRM's API allows it."""
        steps = provision(source, settings, apply=True)
        print_steps(console, source, steps, applied=True)
        unready = [s for s in steps if s.action == "manual" or s.problem is not None]
        if unready:
            raise WritebackError(
                f"{len(unready)} managed field(s) of {source} are not ready: "
                + ", ".join(f"{s.entity}.{s.field}" for s in unready),
                hint=f"do what the table says for each, then check with 'kpisync fields plan "
                f"{source}'; until then write-back skips their scores",
            )

    @writeback_app.callback()
    def writeback(
        ctx: typer.Context,
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan, write nothing."),
        source: str = typer.Option(None, "--source", help="One source; all mapped when omitted."),
        as_of: str = typer.Option(None, "--as-of", help="Compute scores as of this instant."),
        settings: Path = SETTINGS,
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
        show_all: bool = typer.Option(
            False, "--all", help=f"Every planned change, not the first {SAMPLE}."
        ),
        as_csv: bool = typer.Option(
            False, "--csv", help="Every planned change as CSV, one per line."
        ),
    ) -> None:
        """Write changed scores onto CRM records (only the mapped fields, only what changed)."""
        if ctx.invoked_subcommand is not None:
            return
        if as_json and as_csv:
            raise ConfigError("--json and --csv together: choose one output")
        context = open_context(settings)
        names = [source] if source else mapped_sources(context.settings)
        if not names:
            raise ConfigError(
                "no [writeback.<source>] mapping in settings",
                hint="map scores to CRM fields, e.g. [writeback.hubspot_main.account]",
            )
        reports, labels = [], {}
        for name in names:
            connector = build_connector(context.settings.source(name))
            try:
                report = run_writeback(
                    context.engine,
                    context.settings,
                    name,
                    connector,
                    as_of=parse_instant(as_of),
                    dry_run=dry_run,
                    sample=None if show_all or as_csv else SAMPLE,
                )
                reports.append(report)
                labels[name] = record_labels(
                    context.engine,
                    name,
                    [(r.entity, r.external_id) for r in report.sample],
                    connector,
                )
            finally:
                connector.close()
        if as_csv:
            print_csv(reports, labels)
        for report in reports:
            if as_json:
                print_json(report)
            elif not as_csv:
                print_report(console, report, labels=labels[report.source])
        raise_failures(reports)

    @writeback_app.command("revert")
    def revert(
        run: int = typer.Argument(..., help="The run whose writes to undo."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan, write nothing."),
        settings: Path = SETTINGS,
    ) -> None:
        """Restore the values a run replaced, where nobody changed them since."""
        context = open_context(settings)
        source = run_source(context.engine, run)
        if source is None:
            raise WritebackError(
                f"no write-back run {run}", hint="'kpisync writeback runs' lists them"
            )
        connector = build_connector(context.settings.source(source))
        try:
            report = revert_run(context.engine, context.settings, run, connector, dry_run=dry_run)
        finally:
            connector.close()
        print_report(console, report)
        raise_failures([report])

    @writeback_app.command("approve")
    def approve(
        plan: int = typer.Argument(..., help="The plan to send (its run id)."),
        settings: Path = SETTINGS,
    ) -> None:
        """Send exactly a plan made in approve mode, refusing changes whose CRM value changed."""
        context = open_context(settings)
        source = run_source(context.engine, plan)
        if source is None:
            raise WritebackError(
                f"no write-back plan {plan}",
                hint="'kpisync writeback runs' lists plans as status planned",
            )
        connector = build_connector(context.settings.source(source))
        try:
            report = approve_plan(context.engine, context.settings, plan, connector)
        finally:
            connector.close()
        print_report(console, report)
        raise_failures([report])
        if report.refused:
            named = "; ".join(f"{r.entity} {r.external_id} {r.field}" for r in report.refused[:5])
            more = len(report.refused) - 5
            raise ConflictError(
                f"plan {plan}: {len(report.refused)} change(s) refused, their CRM value changed "
                f"since the plan ({named}" + (f" and {more} more" if more > 0 else "") + ")",
                hint=f"make a new plan from the CRM's values: kpisync writeback --source {source}",
            )

    @writeback_app.command("resume")
    def resume(
        source: str = typer.Option(None, "--source", help="One source; all when omitted."),
        field: str = typer.Option(None, "--field", help="One CRM field; all when omitted."),
        settings: Path = SETTINGS,
    ) -> None:
        """Write again the fields a revert put back (held until resumed)."""
        context = open_context(settings)
        lifted = resume_fields(context.engine, source, field)
        if not lifted:
            console.print(
                "no field is held"
                + (f" for {source}" if source else "")
                + (f" named {field}" if field else "")
            )
            return
        for name, entity, crm_field in lifted:
            console.print(f"resumed {name} {entity}.{crm_field}: the next run writes it again")

    @writeback_app.command("runs")
    def runs(
        source: str = typer.Option(None, "--source"),
        settings: Path = SETTINGS,
        as_json: bool = JSON,
    ) -> None:
        """The latest write-back runs with their counts."""
        context = open_context(settings)
        if as_json:
            print(
                json.dumps(
                    [
                        {
                            "run": r.id,
                            "source": r.source,
                            "kind": r.kind,
                            "reverts_run": r.reverts_run,
                            "status": r.status,
                            "started_at": r.started_at.isoformat(),
                            "planned": r.planned,
                            "written": r.written,
                            "failed": r.failed,
                            "gone": r.not_found,
                            "conflicts": r.conflicts,
                            "write_calls": r.write_calls,
                            "api_calls": r.api_calls,
                        }
                        for r in latest_runs(context.engine, source)
                    ],
                    ensure_ascii=False,
                )
            )
            return
        table = Table(
            "run",
            "source",
            "kind",
            "status",
            "started",
            "planned",
            "written",
            "failed",
            "gone",
            "conflicts",
            "write calls",
            "API calls",
        )
        for r in latest_runs(context.engine, source):
            kind = r.kind if r.reverts_run is None else f"revert {r.reverts_run}"
            table.add_row(
                str(r.id),
                r.source,
                kind,
                r.status,
                f"{r.started_at:%Y-%m-%d %H:%M}",
                str(r.planned),
                str(r.written),
                str(r.failed),
                str(r.not_found),
                str(r.conflicts),
                str(r.write_calls),
                str(r.api_calls),
            )
        console.print(table)


def raise_failures(reports: list[RunReport]) -> None:
    """A run with failed writes ends the command with WritesFailed (exit 7), after every report
    is printed."""
    failures = [e for e in (r.failure_error() for r in reports) if e is not None]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise WritesFailed("; ".join(e.message for e in failures), hint=failures[0].hint)


def provision(source: str, settings: Path, *, apply: bool) -> list[FieldStep]:
    context = open_context(settings)
    plan = source_plan(context.settings, source)
    if not plan.targets:
        raise ConfigError(
            f"writeback.{source}: no scores are mapped to fields",
            hint=f'add e.g. [writeback.{source}.account] nps_score = "kpisync_nps_score"',
        )
    connector = build_connector(context.settings.source(source))
    try:
        steps = provision_fields(plan, connector, apply=apply)
    finally:
        connector.close()
    if apply:  # a paused mapping whose field is fine now resumes at once, not at its daily check
        metadata.forget(context.engine, source)  # the next sync reads the new fields
        lift_pauses(
            context.engine,
            source,
            [(s.entity, s.field) for s in steps if s.action != "manual" and s.problem is None],
        )
    return steps


def print_steps(console: Console, source: str, steps: list[FieldStep], *, applied: bool) -> None:
    table = Table(
        "object", "field", "score", "action", "detail", title=f"managed fields of {source}"
    )
    for s in steps:
        action = {"create": "created" if applied else "to create", "manual": "needs a person"}.get(
            s.action, s.action
        )
        detail = escape(s.detail) if s.problem is None else f"[red]{escape(s.problem)}[/]"
        table.add_row(s.entity, s.field, s.score, action, detail)
    console.print(table)
    manual = [s for s in steps if s.action == "manual"]
    if manual and not applied:
        console.print(
            f"{len(manual)} field(s) need a person in the CRM first; until then "
            "write-back skips their scores."
        )


def show(value: str | None) -> str:
    return "∅" if value is None else value if len(value) <= 40 else value[:39] + "…"


def print_report(
    console: Console,
    report: RunReport,
    *,
    rows: bool = True,
    labels: dict[tuple[str, str], RecordLabel] | None = None,
) -> None:
    if report.status == "off":
        console.print(
            f"{report.source}: write-back is off (writeback.{report.source}.mode = "
            '"off"): nothing planned, nothing written'
        )
        return
    title = f"{report.source}: {'dry run' if report.dry_run else f'run {report.run_id}'}"
    if report.kind == "revert":
        title += " (revert)"
    if report.resumed_runs:
        console.print(
            f"finished interrupted run(s) {', '.join(map(str, report.resumed_runs))} first"
        )
    if report.sample and rows:
        print_sample(console, report, title, labels or {})
    counts = Table("object", "field", "writes", title="writes per field")
    for (entity, name), n in sorted(report.counts.items()):
        counts.add_row(entity, name, str(n))
    if report.counts:
        console.print(counts)
    print_totals(console, report)
    print_held_and_failed(console, report)


def print_sample(
    console: Console, report: RunReport, title: str, labels: dict[tuple[str, str], RecordLabel]
) -> None:
    """The first planned rows, one per field value, with the record's name where known."""
    linked = any(label.link for label in labels.values())
    table = Table(
        "object",
        "record",
        "field",
        f"current {ARROW} new",
        "note",
        *(["link"] if linked else []),
        title=title,
    )
    for row in report.sample:
        label = labels.get((row.entity, row.external_id), RecordLabel(None, None))
        record = row.external_id if label.name is None else f"{label.name} ({row.external_id})"
        table.add_row(
            row.entity,
            escape(record),
            escape(row.field),
            escape(f"{show(row.old)} {ARROW} {show(row.new)}"),
            note_of(row),
            *([escape(label.link or "")] if linked else []),
        )
    console.print(table)
    if report.planned + report.skipped > len(report.sample):
        console.print(
            f"(first {len(report.sample)} of {report.planned + report.skipped} "
            "shown; --all for every one, --csv for a file)"
        )


def print_totals(console: Console, report: RunReport) -> None:
    records = sum(report.records.values())
    if report.status == "planned":
        console.print(
            f"plan {report.run_id}: {report.planned} field value(s) on {records} "
            f'record(s), not sent (writeback.{report.source}.mode = "approve"); '
            f"send it: kpisync writeback approve {report.run_id}"
        )
    elif report.dry_run:
        console.print(
            f"would write {report.planned} field value(s) on {records} record(s) in "
            f"{report.write_calls} write call(s)"
        )
    else:
        console.print(
            f"{report.status}: sent {report.planned} field value(s) on {records} "
            f"record(s) in {report.write_calls} write call(s); {report.api_calls} API "
            f"call(s) in all"
        )
        console.print(
            f"written {report.written}, failed {report.failed}, "
            f"gone from the CRM {report.not_found}, conflicts {report.conflicts}"
        )
    if report.skipped:
        console.print(f'{report.skipped} conflict(s) left alone (on_conflict = "skip")')
    if report.unchanged_since:
        console.print(f"{report.unchanged_since} field(s) changed since that run: left alone")


def print_held_and_failed(console: Console, report: RunReport) -> None:
    for (entity, name), reason in report.paused.items():
        console.print(f"[yellow]paused[/] {entity}.{name}: {escape(reason)}")
    for (entity, name), run in sorted(report.held.items()):
        if report.kind == "revert":
            verb = "would hold" if report.dry_run else "held"
            console.print(
                f"[yellow]{verb}[/] {entity}.{name}: the next runs leave it as "
                f"reverted until {resume_hint(report.source, name)}"
            )
        else:
            console.print(
                f"[yellow]held[/] {entity}.{name} (reverted by run {run}): not "
                f"written until {resume_hint(report.source, name)}"
            )
    for row in report.refused:
        console.print(
            f"[red]refused[/] {escape(f'{row.entity} {row.external_id} {row.field}')}: "
            f"{escape(row.error or '')}"
        )
    for entity, name in report.resumed:
        console.print(f"resumed {entity}.{name}: its field accepts values again")
    for row in report.failures:
        why = "gone from the CRM" if row.status == "not_found" else row.error or row.status
        failure = f"{row.entity} {row.external_id} {row.field}: {why}"
        console.print(f"[red]not written[/] {escape(failure)}")
    if report.failed > len([r for r in report.failures if r.status == "failed"]):
        console.print(f"(the first {len(report.failures)} shown; every one is in the run's audit)")


def note_of(row: PlannedRow) -> str:
    if row.status == "skipped":
        return "conflict: left alone"
    return "conflict: a person changed it" if row.conflict else ""


CSV_COLUMNS = ("source", "object", "record", "name", "link", "field", "current", "new", "note")


def print_csv(
    reports: list[RunReport], labels: dict[str, dict[tuple[str, str], RecordLabel]]
) -> None:
    """Every planned change of every report, one CSV line each; empty cells for unknown values."""
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for report in reports:
        for row in report.sample:
            label = labels[report.source].get(
                (row.entity, row.external_id), RecordLabel(None, None)
            )
            out.writerow(
                (
                    report.source,
                    row.entity,
                    row.external_id,
                    label.name or "",
                    label.link or "",
                    row.field,
                    row.old or "",
                    row.new or "",
                    note_of(row),
                )
            )


def print_json(report: RunReport) -> None:
    data: dict[str, Any] = {
        "source": report.source,
        "run": report.run_id,
        "dry_run": report.dry_run,
        "planned": report.planned,
        "records": report.records,
        "write_calls": report.write_calls,
        "status": report.status,
        "api_calls": report.api_calls,
        "written": report.written,
        "failed": report.failed,
        "not_found": report.not_found,
        "conflicts": report.conflicts,
        "skipped": report.skipped,
        "paused": {f"{e}.{f}": r for (e, f), r in report.paused.items()},
        "held": {f"{e}.{f}": run for (e, f), run in report.held.items()},
        "refused": [
            {"object": r.entity, "record": r.external_id, "field": r.field, "why": r.error}
            for r in report.refused
        ],
        "writes": {f"{e}.{f}": n for (e, f), n in report.counts.items()},
        "failures": [
            {
                "object": r.entity,
                "record": r.external_id,
                "field": r.field,
                "result": r.status,
                "error": r.error,
            }
            for r in report.failures
        ],
    }
    print(json.dumps(data, ensure_ascii=False))
