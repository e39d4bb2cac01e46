"""A computation keeps the last one's values only when none of its inputs moved.

Every case compares with a forced full recompute at the same instant: kept values must equal
recomputed ones, and every change of input (a synced page, a survey import, a setting, a new
local day, an activity that happened meanwhile) must recompute.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kpisync.config import load_settings
from kpisync.connector import Deleted, Page
from kpisync.cursor import Cursor
from kpisync.store.models import Activity
from kpisync.store.writer import write_page
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.engine import ComputeResult, compute_all
from metrics.goals import goal_statuses
from metrics.options import AlertRule, Goal, MetricConfig, metric_config
from metrics.snapshots import stored_values
from metrics.survey_import import import_surveys
from tests.test_metrics_fixture import FIXTURE, NOW, load_org

LATER = NOW + timedelta(hours=1)  # the same local day in Warsaw


def config(**metrics: object) -> MetricConfig:
    fixture = metric_config(load_settings(FIXTURE / "settings.toml"))
    return MetricConfig(
        fixture.metrics.model_copy(update=metrics),
        timezone=fixture.timezone,
        currency=fixture.currency,
        base=fixture.base,
    )


def contents(values: Iterable[KpiValue]) -> set[tuple[object, ...]]:
    def rounded(v: KpiValue) -> tuple[object, ...]:
        return (
            v.kpi,
            v.period,
            v.period_start,
            v.grain,
            v.key,
            None if v.value is None else round(v.value, 9),
            v.count,
            v.excluded,
            v.reason,
        )

    return {rounded(v) for v in values}


def standing(engine: Engine) -> set[tuple[object, ...]]:
    """The values the store holds now, every KPI."""
    return contents(stored_values(engine, set(REGISTRY.names())))


def recomputed(engine: Engine, settings: MetricConfig, now: datetime) -> ComputeResult:
    result = compute_all(engine, settings, now=now)
    before = standing(engine)
    assert len(before) == result.standing
    forced = compute_all(engine, settings, now=now, force=True)
    assert forced.reused_from is None and forced.changed == 0
    assert before == contents(forced.values)
    return result


def write(engine: Engine, page: Page) -> None:
    with engine.begin() as connection:
        write_page(connection, "crm", page, NOW)


def activity(external_id: str, at: datetime, account: str) -> Page:
    return Page(
        "activities",
        [
            Activity.row(
                external_id=external_id,
                kind="call",
                direction="outbound",
                occurred_at=at,
                owner_id="u1",
                account_id=account,
            )
        ],
    )


def test_an_unchanged_store_keeps_the_values_and_says_which_computation_they_are(
    engine: Engine,
) -> None:
    load_org(engine)
    first = compute_all(engine, config(), now=NOW)
    assert first.reused_from is None and first.values
    write(engine, Page("deals", [], cursor=Cursor()))  # a sync that found nothing new
    again = recomputed(engine, config(), LATER)
    assert again.reused_from == first.computation_id
    assert again.computation_id != first.computation_id and again.changed == 0
    assert again.values == [], "no goal or alert watches a KPI, so none is read back"
    assert standing(engine) == contents(first.values)
    only = compute_all(engine, config(), now=LATER, only=["win_rate"])
    assert only.reused_from is None, "a different set of KPIs is a different computation"


@pytest.mark.parametrize("change", ["deleted deal", "survey import", "setting", "next day"])
def test_any_change_of_input_recomputes(engine: Engine, tmp_path: Path, change: str) -> None:
    load_org(engine)
    first = compute_all(engine, config(), now=NOW)
    settings, now = config(), LATER
    if change == "deleted deal":
        write(engine, Page("deals", [], deleted=[Deleted("deal", "dP2")]))
    elif change == "survey import":
        answers = tmp_path / "answers.csv"
        answers.write_text(
            "kind,score,answered_at,respondent\nnps,2,2025-04-01,cara@acme.test\n", encoding="utf-8"
        )
        assert import_surveys(engine, answers, source="crm", timezone="Europe/Warsaw").imported == 1
    elif change == "setting":
        settings = config(engagement_days=7)
    else:
        now = NOW + timedelta(days=1)
    result = recomputed(engine, settings, now)
    assert result.reused_from is None
    assert contents(result.values) != contents(first.values)


@pytest.mark.parametrize(
    "at, account",
    [
        (NOW + timedelta(minutes=30), "a1"),  # in the future at NOW, done by LATER
        (
            NOW - timedelta(days=30) + timedelta(minutes=30),
            "a1",
        ),  # leaves the 30-day engagement window
    ],
)
def test_time_passing_over_an_activity_recomputes(
    engine: Engine, at: datetime, account: str
) -> None:
    load_org(engine)
    write(engine, activity("act-moving", at, account))
    first = compute_all(engine, config(), now=NOW)
    result = recomputed(engine, config(), LATER)
    assert result.reused_from is None
    assert contents(result.values) != contents(first.values)


def test_kept_values_feed_goals_and_alerts_as_a_recompute_would(engine: Engine) -> None:
    load_org(engine)
    watching = config(
        goals=(Goal(name="quarter", kpi="win_rate", target=0.5),),
        alerts=(AlertRule(name="volume", kpi="sales_volume", below=1e12),),
    )
    compute_all(engine, watching, now=NOW)
    kept = compute_all(engine, watching, now=LATER)
    assert kept.reused_from is not None
    forced = compute_all(engine, watching, now=LATER, force=True)
    watched = [v for v in forced.values if v.kpi in ("win_rate", "sales_volume")]
    assert watched and contents(kept.values) == contents(watched)
    assert kept.standing == forced.standing
    assert goal_statuses(watching, kept.values, LATER) == goal_statuses(
        watching, forced.values, LATER
    )
