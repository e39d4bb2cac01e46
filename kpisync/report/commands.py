"""CLI: `kpisync report [--period P] [--out report.html] [--png-dir DIR]` and `kpisync report send`.

`register(app)` adds them to a Typer app (kpisync.cli loads this module when one of them runs);
errors are kpisync errors, which the CLI's `friendly` wrapper, put around every command, turns
into one line and an exit code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from kpisync.cli_options import SETTINGS
from kpisync.context import open_context
from kpisync.errors import ConfigError
from kpisync.output import stdout_console
from kpisync.report.delivery import send_report
from kpisync.report.figures import draw_charts
from kpisync.report.gather import build_report
from kpisync.report.options import report_settings
from kpisync.report.page import inline_figures, render_html
from kpisync.report.raster import export_pngs

AS_OF = typer.Option(
    None, "--as-of", help="Report as of this date or instant (ISO 8601); default now."
)
PERIOD = typer.Option(
    None, "--period", help="week, month, quarter or year (default: report.period)"
)
OUT = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write.")
PNG_DIR = typer.Option(None, "--png-dir", help="Also write each chart as PNG into this folder.")
KINDS = ("week", "month", "quarter", "year")
console = stdout_console()


def register(app: typer.Typer) -> None:
    report_app = typer.Typer(
        help="The HTML report with charts, and its e-mail delivery.", invoke_without_command=True
    )
    app.add_typer(report_app, name="report")

    @report_app.callback()
    def report(
        ctx: typer.Context,
        period: str = PERIOD,
        out: Path = OUT,
        png_dir: Path = PNG_DIR,
        as_of: str = AS_OF,
        settings: Path = SETTINGS,
    ) -> None:
        """Write the report: one self-contained HTML file (and the charts as PNG)."""
        if ctx.invoked_subcommand is not None:
            return
        if period is not None and period not in KINDS:
            raise ConfigError(f"unknown period {period!r}", hint="use week, month, quarter or year")
        check_writable(out, png_dir)
        context = open_context(settings)
        now = instant(as_of, context.settings.core.timezone)
        built = build_report(
            context.settings, context.engine, now=now, period=period, latest_with_data=as_of is None
        )
        charts = draw_charts(built)
        out.write_text(render_html(built, inline_figures(charts)), encoding="utf-8")
        console.print(
            f"wrote {out} ({built.heading}{'; ' + built.chosen if built.chosen else ''}"
            f", {len(charts)} charts)"
        )
        if built.store_changed_at is not None:
            console.print(
                "note: the store changed after the KPIs were last computed; "
                "'kpisync compute' refreshes them"
            )
        if png_dir is not None:
            written = export_pngs(charts, png_dir)
            console.print(f"wrote {len(written)} PNG charts to {png_dir}")

    @report_app.command("send")
    def send(as_of: str = AS_OF, settings: Path = SETTINGS) -> None:
        """E-mail the report now, as report.email in settings.toml says."""
        context = open_context(settings)
        email = report_settings(context.settings).email
        send_report(
            context.settings, context.engine, now=instant(as_of, context.settings.core.timezone)
        )
        console.print(f"report e-mailed to {len(email.recipients) if email else 0} recipients")


def check_writable(out: Path, png_dir: Path | None) -> None:
    """Refuse, before any work, an output path that cannot be written."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder", hint="give a file name, e.g. report.html")
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError(
            f"--out {out}: the folder {folder} does not exist",
            hint="create it first, or write the report into an existing folder",
        )
    if png_dir is not None and png_dir.exists() and not png_dir.is_dir():
        raise ConfigError(f"--png-dir {png_dir} is a file", hint="give a folder for the charts")


def instant(text: str | None, timezone: str) -> datetime:
    """`text` (ISO date or date-time; naive means the org's zone) as an aware instant; now if None."""
    if text is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--as-of {text!r} is not an ISO 8601 date or date-time",
            hint="e.g. 2026-10-31 or 2026-10-31T18:00:00+01:00",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(timezone))
