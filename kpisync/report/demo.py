"""The report stage of `kpisync demo`: the HTML report of the synthetic org's last full quarter (the
one the KPI stage shows), written beside the kept store; a temporary store's report would be
removed with it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from rich.console import Console

from kpisync.demo_run import DemoRun
from kpisync.report.figures import draw_charts
from kpisync.report.gather import build_report
from kpisync.report.page import inline_figures, render_html


def demo_stage(console: Console, run: DemoRun) -> None:
    console.rule("report")
    if not run.kept:
        console.print("--keep FOLDER also writes the HTML report there")
        return
    now = run.org.now.astimezone(ZoneInfo(run.context.settings.core.timezone))
    this_quarter = datetime(now.year, 3 * ((now.month - 1) // 3) + 1, 1, tzinfo=now.tzinfo)
    as_of = this_quarter - timedelta(minutes=1)  # the last minute of the last full quarter
    built = build_report(run.context.settings, run.context.engine, now=as_of, period="quarter")
    charts = draw_charts(built)
    out = run.folder / "report.html"
    out.write_text(render_html(built, inline_figures(charts)), encoding="utf-8")
    console.print(f"wrote {out} ({built.heading}, {len(charts)} charts); `kpisync report "
                  f"--settings {run.folder / 'settings.toml'} --period quarter --as-of "
                  f"{as_of.isoformat(timespec='minutes')}` makes it again")
