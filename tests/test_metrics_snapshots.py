"""Storing values: changed and stale values move their old version to the snapshots; idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, func, select, update

from metrics.declaration import KpiValue
from metrics.engine import compute_all
from metrics.options import MetricConfig, MetricSettings
from metrics.snapshots import (
    SNAPSHOTS,
    latest_values,
    prune_snapshots,
    store_values,
    value_history,
)

AT = datetime(2026, 1, 15, 12, tzinfo=UTC)
JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)


def snapshots(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(SNAPSHOTS)).scalar_one())


def test_a_second_store_archives_exactly_the_superseded_and_stale_versions(engine: Engine) -> None:
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
    assert set(stored) == {
        ("win_rate", "month", JAN, "org", "org"),
        ("win_rate", "month", FEB, "org", "org"),
        ("new_leads", "month", JAN, "org", "org"),
        ("new_leads", "week", JAN, "org", "org"),
    }
    assert stored[("win_rate", "month", FEB, "org", "org")].value == 0.25
    assert stored[("win_rate", "month", FEB, "org", "org")].reason is None
    assert stored[("new_leads", "month", JAN, "org", "org")].excluded == 1
    history = value_history(engine, "win_rate", "month")
    assert [(v.period_start, v.value) for _, v in history] == [(JAN, 0.5), (FEB, None), (FEB, 0.25)]
    assert [v.value for _, v in value_history(engine, "win_rate", "month", "rep")] == [1 / 3]


def test_storing_only_some_kpis_leaves_the_others_alone(engine: Engine) -> None:
    store_values(
        engine,
        [
            KpiValue("win_rate", "year", JAN, "org", "org", 0.5, 2, 0),
            KpiValue("new_leads", "year", JAN, "org", "org", 3.0, 3, 0),
        ],
        as_of=AT,
    )
    store_values(engine, [KpiValue("new_leads", "year", JAN, "org", "org", 4.0, 4, 0)], as_of=AT)
    assert sorted((v.kpi, v.value) for v in latest_values(engine)) == [
        ("new_leads", 4.0),
        ("win_rate", 0.5),
    ]


def test_versions_older_than_the_retention_are_dropped_and_the_current_ones_stay(
    engine: Engine,
) -> None:
    for value in (1.0, 2.0, 3.0):  # three computations: two superseded versions
        store_values(
            engine, [KpiValue("new_leads", "month", JAN, "org", "org", value, 1, 0)], as_of=AT
        )
    with engine.begin() as connection:  # the first superseded version is 200 days old
        oldest = connection.execute(select(func.min(SNAPSHOTS.c.id))).scalar_one()
        connection.execute(
            update(SNAPSHOTS)
            .where(SNAPSHOTS.c.id == oldest)
            .values(computed_at=datetime.now(UTC) - timedelta(days=200))
        )
    assert prune_snapshots(engine, older_than=datetime.now(UTC) - timedelta(days=180)) == 1
    assert [v.value for _, v in value_history(engine, "new_leads", "month")] == [2.0, 3.0]
    assert [v.value for v in latest_values(engine)] == [3.0]


def test_a_computation_keeps_snapshots_only_for_the_configured_days(engine: Engine) -> None:
    config = MetricConfig(MetricSettings(snapshot_days=30))
    compute_all(engine, config, now=AT)
    with engine.begin() as connection:  # a superseded version from 31 days ago, another of today
        for days in (31, 0):
            connection.execute(
                SNAPSHOTS.insert().values(
                    computation_id=1,
                    kpi="new_leads",
                    period="month",
                    period_start=JAN,
                    grain="org",
                    key="org",
                    value=float(days),
                    count=1,
                    excluded=0,
                    computed_at=datetime.now(UTC) - timedelta(days=days),
                )
            )
    compute_all(engine, config, now=AT, force=True)
    with engine.connect() as connection:
        kept = (
            connection.execute(select(SNAPSHOTS.c.value).where(SNAPSHOTS.c.computation_id == 1))
            .scalars()
            .all()
        )
    assert kept == [0.0]
