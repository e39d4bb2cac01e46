"""The report under locale fa and the Persian calendar, rendered in headless Chromium: right to
left, Persian digits in KPI values, tables and charts, no text overflowing its box."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image
from sqlalchemy import Engine

from kpisync.config import load_settings
from kpisync.report import build_report, draw_charts, export_pngs, inline_figures, render_html
from metrics.engine import compute_all
from metrics.options import metric_config
from tests.test_metrics_fixture import FIXTURE, load_org
from tests.test_report_e2e import chromium

NOW = datetime(2025, 6, 25, 12, 0, tzinfo=UTC)
LATIN_DIGIT = re.compile(r"[0-9]")
PERSIAN_DIGIT = re.compile(r"[۰-۹]")
# Measures the page as laid out, then writes what it found into the DOM for --dump-dom.
PROBE = """<script>
const boxes = [...document.querySelectorAll(
  'h1, h2, h3, p, .tile, .tile div, th, td, .sources li, dt, dd, figure')];
const over = boxes.filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1
  && getComputedStyle(e).overflowX === 'visible').map(e => e.tagName + ': ' + e.textContent);
const page = document.documentElement;
document.body.setAttribute('data-probe', JSON.stringify({
  direction: getComputedStyle(document.body).direction, lang: page.lang,
  wider: page.scrollWidth > page.clientWidth, overflowing: over,
  values: [...document.querySelectorAll('.tile .value')].map(e => e.textContent.trim())}));
</script>"""


class Probe(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, object] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.found = json.loads(dict(attrs).get("data-probe") or "{}")


def luminance(image: Image.Image, x: int, y: int) -> int:
    """The grey level of one pixel of an "L" (8-bit grey) image."""
    level = image.getpixel((x, y))
    assert isinstance(level, int), image.mode
    return level


def persian_report(engine: Engine, folder: Path) -> tuple[str, Path]:
    load_org(engine)
    load_org(engine, FIXTURE / "org-persian.json")
    text = (FIXTURE / "settings-persian.toml").read_text(encoding="utf-8")
    path = folder / "settings.toml"
    path.write_text(
        text.replace('calendar = "persian"', 'calendar = "persian"\nlocale = "fa"'),
        encoding="utf-8",
    )
    settings = load_settings(path)
    compute_all(engine, metric_config(settings), now=NOW)
    # the report of Q1 1404 as it stood on 25 Khordad 1404, from the values computed on 4 Tir
    report = build_report(
        settings, engine, now=datetime(2025, 6, 15, 12, 0, tzinfo=UTC), period="quarter"
    )
    assert report.period_label == "فصل اول ۱۴۰۴"
    charts = draw_charts(report)
    export_pngs(charts, folder / "png")
    return render_html(report, inline_figures(charts)), folder / "png"


def test_the_persian_report_reads_right_to_left_in_chromium(engine: Engine, tmp_path: Path) -> None:
    html, pngs = persian_report(engine, tmp_path)
    assert '<html lang="fa" dir="rtl">' in html
    assert "دستیابی به سهم" in html and "فروردین" not in html.split("<body>")[0]
    with Image.open(pngs / "trend-sales_volume.png") as image:  # drawn by resvg, at zoom 2
        title = image.convert("L").crop((0, 0, image.width, 60))
        ink = [
            x
            for x in range(title.width)
            for y in range(title.height)
            if luminance(title, x, y) < 100
        ]
    assert ink and min(ink) >= 20  # the Persian title starts at its margin, not cut off at 0
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace(
            "</body>", PROBE + "</body>"
        ),
        encoding="utf-8",
    )
    probe = Probe()
    probe.feed(
        chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", probe_page.as_uri()).stdout
    )
    found = probe.found
    assert (found["direction"], found["lang"], found["wider"]) == ("rtl", "fa", False)
    assert found["overflowing"] == []
    values = found["values"]
    assert isinstance(values, list)
    assert values and all(PERSIAN_DIGIT.search(v) or v.startswith("بدون داده") for v in values)
    assert not [v for v in values if LATIN_DIGIT.search(v)]
    charts = re.findall(r"<svg.*?</svg>", html, re.DOTALL)
    texts = [t for svg in charts for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert any(PERSIAN_DIGIT.search(t) for t in texts)
    assert not [t for t in texts if LATIN_DIGIT.search(t)]
    shot = tmp_path / "page.png"
    chromium(tmp_path, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri())
    with Image.open(shot) as image:
        heading = image.convert("L").crop((0, 20, 1200, 60))  # the title line
        dark = [
            x
            for x in range(heading.width)
            for y in range(heading.height)
            if luminance(heading, x, y) < 100
        ]
    assert dark and max(dark) - min(dark) < 1100 and max(dark) > 900, (
        min(dark),
        max(dark),
    )  # right-aligned
