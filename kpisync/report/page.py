"""The report as one self-contained HTML page, from the Jinja template `templates/report.html`.

Autoescaping is on for the whole template: every CRM string (deal, account, rep and team names,
error texts) is escaped on the way out, and is wrapped in `<bdi>` so right-to-left names are
isolated from the text around them. Charts arrive as markup already escaped by `svg.el`. The page
loads nothing: no script, no font, no stylesheet from elsewhere; its Content-Security-Policy
forbids scripts and network fetches, so even a mistake in escaping could not run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from kpisync.report.charts import Chart, sparkline
from kpisync.report.content import Report, Series
from kpisync.report.formats import MINUS, period_label, show_value

ADDITIVE = {"money", "count", "hours"}  # a running period's total is not comparable yet


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("kpisync", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(show_value=show_value, period_label=period_label, sparkline=sparkline,
                       name_cell=name_cell,
                       change=change, age=age, when=when)
    return env


def render_html(report: Report, figures: Mapping[str, Markup], *, sparklines: bool = True) -> str:
    """The page; `figures` maps each chart's name to the markup that shows it (SVG or <img>).

    Sparklines are inline SVG; mail bodies leave them out, as most mail clients show no SVG.
    """
    return environment().get_template("report.html").render(report=report, figures=figures,
                                                            sparklines=sparklines)


def inline_figures(charts: tuple[Chart, ...]) -> dict[str, Markup]:
    """Charts as inline SVG: the form for the self-contained file."""
    return {chart.name: chart.svg for chart in charts}


def change(series: Series, currency: str) -> tuple[str, str] | None:
    """(text, "good" | "bad" | "flat") comparing the current period with the one before."""
    current, previous = series.current, series.previous
    if (current is None or previous is None or current.value is None or previous.value is None
            or series.unit in ADDITIVE):
        return None
    delta = current.value - previous.value
    if series.unit == "ratio":
        text = f"{delta * 100:+.1f} pts"
    else:
        text = show_value(delta, series.unit, currency)
        text = text if text.startswith((MINUS, "+")) else "+" + text
    text = text.replace("-", MINUS)
    if abs(delta) < 1e-9 or series.direction == "neutral":
        return text, "flat"
    better = delta > 0 if series.direction == "higher" else delta < 0
    return text, "good" if better else "bad"


NAME_SHOWN, NAME_TOOLTIP = 120, 1000  # characters of a name in a cell, and in its tooltip


def name_cell(text: str) -> Markup:
    """A record's name for a table cell: isolated (right-to-left names), shortened past
    NAME_SHOWN characters with the full text, itself capped, in a tooltip."""
    if len(text) <= NAME_SHOWN:
        return Markup("<bdi>{}</bdi>").format(text)
    tooltip = text if len(text) <= NAME_TOOLTIP else text[:NAME_TOOLTIP - 1] + "…"
    return Markup('<bdi title="{}">{}…</bdi>').format(tooltip, text[:NAME_SHOWN - 1])


def age(hours: float | None) -> str:
    if hours is None:
        return "never"
    if hours < 1 / 60:
        return "just now"
    if hours < 1:
        return f"{hours * 60:.0f} min ago"
    if hours < 48:
        return f"{hours:.0f} h ago"
    return f"{hours / 24:.0f} days ago"


def when(moment: datetime | None, report: Report) -> str:
    if moment is None:
        return "never"
    local = moment.astimezone(report.generated_at.tzinfo)
    return local.strftime("%Y-%m-%d %H:%M")
