"""Charts as PNG, for slides and for mail clients that do not show inline SVG.

resvg renders the same SVG the page shows, with the system's fonts; it shapes Arabic-script text
and orders right-to-left text, so Persian names come out right.
"""

from __future__ import annotations

from pathlib import Path

import resvg_py

from kpisync.errors import StateError
from kpisync.report.charts import Chart


def chart_png(chart: Chart, *, zoom: float = 2.0) -> bytes:
    """The chart as PNG bytes, at `zoom` times its SVG size (2: sharp on slides)."""
    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=str(chart.svg), zoom=zoom,
                                           background="#ffffff"))
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
