"""Reports people look at: one self-contained HTML page of KPI tiles, trends, goals, a leaderboard,
NPS and eNPS, PNG charts for slides, and the same report e-mailed on a schedule.

    build_report(settings, engine, now=...)   gather.py    the numbers, from the KPI engine's store
    draw_charts(report)                       figures.py   every chart once, as SVG (charts.py, bars.py)
    render_html(report, figures)              page.py      the page (templates/report.html), escaped
    export_pngs(charts, folder)               raster.py    the charts as PNG files
    send_report(settings, engine, now=...)    delivery.py  the report by SMTP ([report.email])
    delivery_schedule(settings)               options.py   when the scheduler should send it
"""

from kpisync.report.delivery import send_report
from kpisync.report.figures import draw_charts
from kpisync.report.gather import build_report
from kpisync.report.options import delivery_schedule, report_settings
from kpisync.report.page import inline_figures, render_html
from kpisync.report.raster import export_pngs

__all__ = [
    "build_report",
    "delivery_schedule",
    "draw_charts",
    "export_pngs",
    "inline_figures",
    "render_html",
    "report_settings",
    "send_report",
]
