"""The report in headless Chromium with a 300-character deal name and a long Persian account
name: every name stays inside its column (it wraps), a very long one is shortened with its full
text in a tooltip; and the heading says the period plainly."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from kpisync.config import load_settings
from kpisync.report.content import DealRow
from kpisync.report.figures import draw_charts
from kpisync.report.gather import build_report
from kpisync.report.page import NAME_SHOWN, inline_figures, render_html
from kpisync.store.database import open_store
from tests.test_report_e2e import chromium

DEAL = ("Enterprise renewal and expansion " * 10)[:300]
ACCOUNT = ("شرکت توسعه فناوری اطلاعات و ارتباطات پارس نوین " * 4).strip()
HUGE = "x" * 100_000
# Run by Chromium after layout: every cell of the two tables whose content is wider than the
# cell, and a table wider than its section, are counted into the page's title.
CHECK = """<script>
window.addEventListener("load", () => {
  const cut = [];
  for (const cell of document.querySelectorAll("#wins td, #leaderboard td")) {
    if (cell.scrollWidth > cell.clientWidth + 1) cut.push(cell.textContent.slice(0, 40));
  }
  for (const table of document.querySelectorAll("#wins table")) {
    if (table.scrollWidth > table.parentElement.clientWidth + 1) cut.push("table");
  }
  document.title = "overflow:" + JSON.stringify(cut);
});
</script>"""


def test_long_names_wrap_inside_their_columns(tmp_path: Path) -> None:
    settings_path = tmp_path / "settings.toml"
    settings_path.write_text(
        f'[kpisync]\nstore = "sqlite:///{tmp_path / "store.db"}"\n', encoding="utf-8"
    )
    settings = load_settings(settings_path)
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    report = build_report(
        settings, engine, now=datetime(2026, 9, 30, 21, 59, tzinfo=UTC), period="quarter"
    )
    wins = (
        DealRow(DEAL, ACCOUNT, "Olivia Baker", 125_000.0, None, date(2026, 9, 3)),
        DealRow(HUGE, "Acme", None, 9_000.0, None, date(2026, 9, 4)),
    )
    report = replace(report, wins=wins)
    html = render_html(report, inline_figures(draw_charts(report)))
    assert "x" * 1000 not in html  # neither the cell nor the tooltip carries it whole
    assert f'<bdi title="{"x" * 999}…">{"x" * (NAME_SHOWN - 1)}…</bdi>' in html
    page = tmp_path / "report.html"
    # the report allows no script (its CSP); the measuring copy drops that line and adds one
    measured = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    page.write_text(measured.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    for width in (1200, 800):
        dom = chromium(
            tmp_path,
            f"--window-size={width},2400",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ).stdout
        found = re.search(r"<title>overflow:(.*?)</title>", dom)
        assert found is not None, dom[:500]
        assert json.loads(found.group(1).replace("&quot;", '"')) == [], (width, found.group(1))
    shot = tmp_path / "report.png"
    chromium(tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    assert "<h1>Sales report — Q3 2026 to date, as of 2026-09-30 21:59</h1>" in html  # UTC
    engine.dispose()


def test_the_heading_names_a_complete_period_and_a_stale_store_is_flagged(tmp_path: Path) -> None:
    from decimal import Decimal

    from kpisync.connector import Page
    from kpisync.store.models import Account, Deal, User
    from kpisync.store.writer import write_page
    from metrics.engine import compute_all
    from metrics.options import metric_config

    settings_path = tmp_path / "settings.toml"
    settings_path.write_text(
        f'[kpisync]\nstore = "sqlite:///{tmp_path / "store.db"}"\n', encoding="utf-8"
    )
    settings = load_settings(settings_path)
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    deals = [
        Deal.row(
            external_id=f"d{n}",
            name=f"deal {n}",
            account_id="a1",
            owner_id="u1",
            is_closed=True,
            is_won=n % 2 == 0,
            amount=Decimal(1000 * n),
            currency="USD",
            close_date=date(2026, 8, n + 1),
            created_at=datetime(2026, 7, n + 1, tzinfo=UTC),
        )
        for n in range(1, 7)
    ]
    page = Page(
        stream="s",
        records=[
            User.row(external_id="u1", name="Olivia Baker"),
            Account.row(external_id="a1", name="Acme"),
            *deals,
        ],
    )
    with engine.begin() as connection:
        write_page(connection, "crm", page, datetime(2026, 9, 1, tzinfo=UTC))
    october = datetime(2026, 10, 2, 9, 0, tzinfo=UTC)
    compute_all(engine, metric_config(settings), now=october)
    report = build_report(settings, engine, now=october, period="quarter", latest_with_data=True)
    assert report.heading == "Q3 2026, complete"
    assert report.chosen.startswith("the latest quarter with data; Q4 2026 has none yet")
    assert report.store_changed_at is None
    assert all(not point.partial for series in report.tiles for point in series.points)
    running = build_report(settings, engine, now=october, period="quarter")
    assert running.heading == "Q4 2026 to date, as of 2026-10-02 09:00" and running.chosen == ""
    with engine.begin() as connection:  # a sync writes after the computation
        write_page(
            connection,
            "crm",
            Page(stream="s", records=[Account.row(external_id="a2", name="Beta")]),
            datetime.now(UTC),
        )
    stale = build_report(settings, engine, now=october, period="quarter", latest_with_data=True)
    assert stale.store_changed_at is not None
    html = render_html(stale, inline_figures(draw_charts(stale)))
    assert 'id="stale"' in html and "after the KPIs were last computed" in html
    engine.dispose()
