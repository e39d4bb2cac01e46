"""Storing values: changed and stale values move their old version to the snapshots; idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, func, select

from metrics.declaration import KpiValue
from metrics.snapshots import SNAPSHOTS, latest_values, store_values, value_history

AT = datetime(2026, 1, 15, 12, tzinfo=UTC)
JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)


def snapshots(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(SNAPSHOTS)).scalar_one())


def test_a_second_store_archives_exactly_the_superseded_and_stale_versions(
        engine: Engine) -> None:
    first = [
        KpiValue("win_rate", "month", JAN, "org", "org", 0.5, 4, 0),
        KpiValue("win_rate", "month", JAN, "rep", "u1", 1 / 3, 3, 1),
        KpiValue("win_rate", "month", FEB, "org", "org", None, 0, 0, "no closed deals"),
        KpiValue("new_leads", "month", JAN, "org", "org", 7.0, 7, 0),
    ]
    assert store_values(engine, first, as_of=AT)[1] == 4
    assert store_values(engine, first, as_of=AT)[1] == 0
    assert snapshots(engine) == 0  # current versions live in kpi_values only

    second = [
        KpiValue("win_rate", "month", JAN, "org", "org", 0.5 + 1e-13, 4, 0),  # float noise only
        KpiValue("win_rate", "month", FEB, "org", "org", 0.25, 4, 0),  # no data -> a value
        KpiValue("new_leads", "month", JAN, "org", "org", 7.0, 7, 1),  # excluded changed
        KpiValue("new_leads", "week", JAN, "org", "org", 2.0, 2, 0),  # new
    ]
    _, changed = store_values(engine, second, as_of=AT)
    assert changed == 3
    assert snapshots(engine) == 3  # win_rate Feb and new_leads Jan superseded, win_rate u1 gone
    stored = {(v.kpi, v.period, v.period_start, v.grain, v.key): v for v in latest_values(engine)}
    assert set(stored) == {("win_rate", "month", JAN, "org", "org"),
                           ("win_rate", "month", FEB, "org", "org"),
                           ("new_leads", "month", JAN, "org", "org"),
                           ("new_leads", "week", JAN, "org", "org")}
    assert stored[("win_rate", "month", FEB, "org", "org")].value == 0.25
    assert stored[("win_rate", "month", FEB, "org", "org")].reason is None
    assert stored[("new_leads", "month", JAN, "org", "org")].excluded == 1
    history = value_history(engine, "win_rate", "month")
    assert [(v.period_start, v.value) for _, v in history] == [(JAN, 0.5), (FEB, None), (FEB, 0.25)]
    assert [v.value for _, v in value_history(engine, "win_rate", "month", "rep")] == [1 / 3]


def test_storing_only_some_kpis_leaves_the_others_alone(engine: Engine) -> None:
    store_values(engine, [KpiValue("win_rate", "year", JAN, "org", "org", 0.5, 2, 0),
                          KpiValue("new_leads", "year", JAN, "org", "org", 3.0, 3, 0)], as_of=AT)
    store_values(engine, [KpiValue("new_leads", "year", JAN, "org", "org", 4.0, 4, 0)], as_of=AT)
    assert sorted((v.kpi, v.value) for v in latest_values(engine)) == [("new_leads", 4.0),
                                                                       ("win_rate", 0.5)]
