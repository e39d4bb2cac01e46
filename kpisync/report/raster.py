"""Charts as PNG, for slides and for mail clients that do not show inline SVG.

resvg renders the same SVG the page shows, with the system's fonts; it shapes Arabic-script text
and orders right-to-left text, so Persian names come out right. It anchors right-to-left text as
if it ran left to right, where a browser mirrors `text-anchor` under `direction="rtl"` (measured:
resvg puts the end of `direction="rtl" text-anchor="end"` text at x, Chromium its start), so the
anchors `svg.label` mirrored for the page are mirrored back for resvg.
"""

from __future__ import annotations

import re
from pathlib import Path

import resvg_py

from kpisync.errors import StateError
from kpisync.report.charts import Chart

_RTL_TEXT = re.compile(r'<text [^>]*direction="rtl"[^>]*>')
_ANCHOR = re.compile(r'text-anchor="(start|end)"')


def resvg_anchors(svg: str) -> str:
    """`svg` with the text-anchor of right-to-left texts swapped (start <-> end) for resvg."""

    def swap(tag: re.Match[str]) -> str:
        return _ANCHOR.sub(
            lambda a: f'text-anchor="{"end" if a.group(1) == "start" else "start"}"', tag.group(0)
        )

    return _RTL_TEXT.sub(swap, svg)


def chart_png(chart: Chart, *, zoom: float = 2.0) -> bytes:
    """The chart as PNG bytes, at `zoom` times its SVG size (2: sharp on slides)."""
    try:
        return bytes(
            resvg_py.svg_to_bytes(
                svg_string=resvg_anchors(str(chart.svg)), zoom=zoom, background="#ffffff"
            )
        )
    except ValueError as error:
        raise StateError(f"could not draw chart {chart.name!r} as PNG: {error}") from None


def export_pngs(charts: tuple[Chart, ...], folder: Path) -> list[Path]:
    """Write each chart to `folder/<name>.png`; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        path = folder / f"{chart.name}.png"
        path.write_bytes(chart_png(chart))
        written.append(path)
    return written
