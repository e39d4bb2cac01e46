"""Every chart of a report, drawn once as SVG: inline in the HTML file, as PNG for slides and mail."""

from __future__ import annotations

from kpisync.report.bars import enps_chart, goal_chart, nps_chart, rep_chart
from kpisync.report.charts import Chart, localized_chart, trend_chart
from kpisync.report.content import Report


def draw_charts(report: Report) -> tuple[Chart, ...]:
    """The report's charts in page order; their names are unique."""
    trends = tuple(
        trend_chart(series, report.period, report.currency, report.calendar, report.locale)
        for series in report.trends
    )
    charts = (
        *trends,
        goal_chart(report.goals, report.currency),
        rep_chart(report.leaderboard, report.currency),
        nps_chart(report.nps),
        enps_chart(report.enps, report.anonymity_minimum),
    )
    return tuple(localized_chart(chart, report.locale) for chart in charts)
