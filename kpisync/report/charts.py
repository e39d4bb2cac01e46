"""Trend charts: a KPI's org values over the latest periods as an SVG line chart, and sparklines.

A period without a value ("no data") is a gap in the line, never a zero. The current period is
still running, so its point is drawn hollow and its tooltip says "to date".
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup, escape

from kpisync.calendars import GREGORIAN, Calendar
from kpisync.formats import period_label, period_tick, show_axis, show_value
from kpisync.report.content import Point, Series
from kpisync.report.svg import document, el, label
from kpisync.texts import localized, translate

LINE = "#2563eb"
GRID = "#e2e8f0"
MUTED = "#64748b"
Place = Callable[[int], float]  # index of a period -> x
Scale = Callable[[float], float]  # value -> y


@dataclass(frozen=True)
class Chart:
    """One drawn chart: `name` is also its PNG file name; `svg` is standalone markup."""

    name: str
    title: str
    svg: Markup


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def value_range(points: tuple[Point, ...]) -> tuple[float, float]:
    values = [p.value for p in points if p.value is not None]
    low, high = min(values, default=0.0), max(values, default=1.0)
    return min(low, 0.0), max(high, 0.0)


def trend_chart(
    series: Series, kind: str, currency: str, calendar: Calendar = GREGORIAN, locale: str = "en"
) -> Chart:
    width, height = 480, 220
    left, right, top, bottom = 56, 16, 34, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = nice_ticks(*value_range(series.points))
    low, high = ticks[0], ticks[-1]
    n = max(len(series.points), 1)

    def x(index: int) -> float:
        return left + (plot_w * (index + 0.5) / n)

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / ((high - low) or 1.0))

    parts: list[Markup] = [label(12, 20, series.title, size=14, fill="#0f172a", weight="600")]
    for tick in ticks:
        parts.append(el("line", x1=left, x2=width - right, y1=y(tick), y2=y(tick), stroke=GRID))
        parts.append(
            label(
                left - 6,
                y(tick) + 4,
                show_axis(tick, series.unit),
                anchor="end",
                size=10,
                fill=MUTED,
            )
        )
    every = max(1, math.ceil(n / 8))
    for index, point in enumerate(series.points):
        if (n - 1 - index) % every == 0:
            name = period_tick(point.start, kind, calendar, locale)
            parts.append(label(x(index), height - 10, name, anchor="middle", size=10, fill=MUTED))
    parts.append(
        el(
            "path",
            d=line_path(series.points, x, y),
            fill="none",
            stroke=LINE,
            stroke_width=2.5,
            stroke_linejoin="round",
            class_="series",
        )
    )
    parts += markers(series, kind, currency, x, y, calendar)
    drawn = sum(1 for p in series.points if p.value is not None)
    if not drawn:
        parts.append(
            label(
                left + plot_w / 2,
                top + plot_h / 2,
                "no data in these periods",
                anchor="middle",
                size=12,
                fill=MUTED,
            )
        )
    return Chart(
        f"trend-{series.kpi}",
        series.title,
        document(
            width,
            height,
            *parts,
            name=f"trend-{series.kpi}",
            title=f"{series.title} by {kind}",
            data_points=drawn,
        ),
    )


def line_path(points: tuple[Point, ...], x: Place, y: Scale) -> str:
    """Path data joining consecutive values; a missing value breaks the line."""
    commands, pen_down = [], False
    for index, point in enumerate(points):
        if point.value is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{x(index):.1f},{y(point.value):.1f}")
        pen_down = True
    return " ".join(commands) or "M0,0"


def markers(
    series: Series, kind: str, currency: str, x: Place, y: Scale, calendar: Calendar = GREGORIAN
) -> list[Markup]:
    out = []
    for index, point in enumerate(series.points):
        if point.value is None:
            continue
        when = period_label(point.start, kind, calendar) + (" (to date)" if point.partial else "")
        tip = f"{when}: {show_value(point.value, series.unit, currency)}"
        out.append(
            el(
                "circle",
                el("title", tip),
                cx=x(index),
                cy=y(point.value),
                r=4 if point.partial else 3,
                stroke=LINE,
                stroke_width=2,
                fill="#ffffff" if point.partial else LINE,
                class_="point",
                data_value=f"{point.value:.6g}",
            )
        )
    return out


def sparkline(series: Series) -> Markup:
    """A small line of the tile's history (no axes): a glance at the direction."""
    width, height, pad = 120, 32, 3
    values = [p.value for p in series.points]
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return Markup("")
    low, high = min(known), max(known)
    span = (high - low) or 1.0

    def x(index: int) -> float:
        return pad + (width - 2 * pad) * index / max(len(values) - 1, 1)

    def y(value: float) -> float:
        return height - pad - (height - 2 * pad) * (value - low) / span

    path = line_path(series.points, x, y)
    return el(
        "svg",
        el("path", d=path, fill="none", stroke=LINE, stroke_width=1.5),
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        class_="spark",
        aria_hidden="true",
    )


_TEXT = re.compile(r">([^<]+)<")
_ENTITY = re.compile(r"(&[#\w]+;)|([^&]+)")


def localized_chart(chart: Chart, locale: str) -> Chart:
    """`chart` with its catalogued texts (titles, "no data" notes) translated and the numbers of
    the others (labels, ticks, tooltips) in `locale`'s digits and separators; markup untouched."""
    if locale == "en":
        return chart

    def text(node: re.Match[str]) -> str:
        whole = translate(html.unescape(node.group(1)), locale)  # a catalogued text, translated
        if whole != html.unescape(node.group(1)):  # isolated right to left: the label was laid
            return ">" + str(escape(f"\u2067{whole}\u2069")) + "<"  # out for its English text
        return (
            ">"
            + _ENTITY.sub(
                lambda part: part.group(1) or localized(part.group(2), locale), node.group(1)
            )
            + "<"
        )

    return Chart(chart.name, chart.title, Markup(_TEXT.sub(text, str(chart.svg))))
