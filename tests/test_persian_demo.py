"""`kpisync demo --locale fa`: the demo org under the Solar Hijri calendar, in Persian."""

from __future__ import annotations

import re
from pathlib import Path

from kpisync.calendars import PERSIAN
from kpisync.config import load_settings
from tests.test_demo import demo


def test_the_demo_in_persian(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    done = demo(tmp_path, "--locale", "fa", "--keep", str(kept))
    assert done.returncode == 0, done.stderr
    assert "the whole org, فصل دوم ۱۴۰۵" in done.stdout  # the last full Persian quarter
    assert "دستیابی به سهم" in done.stdout and "نرخ برد / باخت" in done.stdout
    core = load_settings(kept / "settings.toml").core
    assert (core.period_calendar, core.locale, core.timezone) == (PERSIAN, "fa", "Asia/Tehran")
    page = (kept / "report.html").read_text(encoding="utf-8")
    assert '<html lang="fa" dir="rtl">' in page
    values = re.findall(r'<div class="value">([^<]*)</div>', page)
    assert values and not [v for v in values if re.search(r"[0-9]", v)]


def test_an_unknown_demo_locale_is_one_clear_line(tmp_path: Path) -> None:
    done = demo(tmp_path, "--locale", "de")
    assert done.returncode != 0
    assert "--locale 'de': no such locale" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
