"""The hand-checked org under the Solar Hijri calendar (fixtures/kpi/README-persian.md): the values
of expected-persian.txt, exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine

from kpisync.config import load_settings
from metrics.declaration import KpiValue
from metrics.engine import compute_all
from metrics.options import metric_config
from tests.test_metrics_fixture import FIXTURE, Expected, load_org, number, row_mismatch

NOW = datetime(2025, 6, 25, 12, 0, tzinfo=UTC)  # 4 Tir 1404


def expected_rows() -> list[tuple[str, date, Expected]]:
    out, kind, start = [], "", date.min
    for line in (FIXTURE / "expected-persian.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("=="):
            _, kind, text, _ = line.split()
            start = date.fromisoformat(text)
            continue
        kpi, grain, key, value, count, excluded = line.split()
        out.append(
            (
                kind,
                start,
                Expected(
                    kpi,
                    grain,
                    key,
                    number(value),
                    None if count == "-" else int(count),
                    None if excluded == "-" else int(excluded),
                ),
            )
        )
    return out


def mismatches(values: list[KpiValue]) -> list[str]:
    got = {(v.kpi, v.period, v.period_start, v.grain, v.key): v for v in values}
    problems = []
    for kind, start, row in expected_rows():
        value = got.get((row.kpi, kind, start, row.grain, row.key))
        problem = row_mismatch(value, row, f"{row.kpi} {kind} {start} {row.grain} {row.key}")
        if problem:
            problems.append(problem)
    return problems


def test_the_hand_checked_org_under_the_persian_calendar(engine: Engine) -> None:
    load_org(engine)
    load_org(engine, FIXTURE / "org-persian.json")
    config = metric_config(load_settings(FIXTURE / "settings-persian.toml"))
    assert config.timezone == "Asia/Tehran"
    computed = compute_all(engine, config, now=NOW)
    assert len(expected_rows()) > 30
    assert mismatches(computed.values) == []
    quarters = sorted({v.period_start for v in computed.values if v.period == "quarter"})
    assert quarters[-3:] == [date(2024, 12, 21), date(2025, 3, 21), date(2025, 6, 22)]
    weeks = {v.period_start.weekday() for v in computed.values if v.period == "week"}
    assert weeks == {5}  # every week starts on a Saturday
