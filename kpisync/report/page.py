"""The report as one self-contained HTML page, from the Jinja template `templates/report.html`.

Autoescaping is on for the whole template: every CRM string (deal, account, rep and team names,
error texts) is escaped on the way out, and is wrapped in `<bdi>` so right-to-left names are
isolated from the text around them. Charts arrive as markup already escaped by `svg.el`. The page
loads nothing: no script, no font, no stylesheet from elsewhere; its Content-Security-Policy
forbids scripts and network fetches, so even a mistake in escaping could not run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from kpisync.calendars import persian_digits, persian_ymd
from kpisync.formats import MINUS, period_label, show_value
from kpisync.report.charts import Chart, sparkline
from kpisync.report.content import Report, Series
from kpisync.texts import localized, translate, translations

ADDITIVE = {"money", "count", "hours"}  # a running period's total is not comparable yet


@cache
def environment(locale: str = "en") -> Environment:
    """The template's environment for `locale`: its texts from the message catalogue
    (kpisync.texts), its numbers in the locale's digits and separators."""
    env = Environment(
        loader=PackageLoader("kpisync", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]

    def shown(value: float | None, unit: str, currency: str = "") -> str:
        return localized(show_value(value, unit, currency), locale)

    env.globals.update(
        show_value=shown,
        sparkline=sparkline,
        name_cell=name_cell,
        change=change,
        age=age,
        when=when,
    )
    env.filters["num"] = lambda text: localized(str(text), locale)
    return env


def render_html(report: Report, figures: Mapping[str, Markup], *, sparklines: bool = True) -> str:
    """The page; `figures` maps each chart's name to the markup that shows it (SVG or <img>).

    Sparklines are inline SVG; mail bodies leave them out, as most mail clients show no SVG.
    """

    def label(start: date, kind: str) -> str:
        return period_label(start, kind, report.calendar, report.locale)

    def day(value: date | None) -> str:
        """A date as the org's calendar writes it (1404/02/20 under the Persian one)."""
        if value is None:
            return ""
        if report.calendar.system == "persian":
            year, month, number = persian_ymd(value)
            text = f"{year}/{month:02d}/{number:02d}"
        else:
            text = value.isoformat()
        return persian_digits(text) if report.locale == "fa" else text

    return (
        environment(report.locale)
        .get_template("report.html")
        .render(
            report=report,
            figures=figures,
            sparklines=sparklines,
            period_label=label,
            day=day,
            rtl=report.locale == "fa",
        )
    )


def inline_figures(charts: tuple[Chart, ...]) -> dict[str, Markup]:
    """Charts as inline SVG: the form for the self-contained file."""
    return {chart.name: chart.svg for chart in charts}


def change(series: Series, currency: str) -> tuple[str, str] | None:
    """(text, "good" | "bad" | "flat") comparing the current period with the one before."""
    current, previous = series.current, series.previous
    if (
        current is None
        or previous is None
        or current.value is None
        or previous.value is None
        or series.unit in ADDITIVE
    ):
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
    tooltip = text if len(text) <= NAME_TOOLTIP else text[: NAME_TOOLTIP - 1] + "…"
    return Markup('<bdi title="{}">{}…</bdi>').format(tooltip, text[: NAME_SHOWN - 1])


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
    """A local time; a Solar Hijri date under the Persian calendar, Persian digits under fa."""
    if moment is None:
        return translate("never", report.locale)
    local = moment.astimezone(report.generated_at.tzinfo)
    if report.calendar.system == "persian":
        year, month, day = persian_ymd(local.date())
        text = f"{year}/{month:02d}/{day:02d} {local:%H:%M}"
    else:
        text = local.strftime("%Y-%m-%d %H:%M")
    return persian_digits(text) if report.locale == "fa" else text
