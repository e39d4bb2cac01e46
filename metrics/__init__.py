"""The KPI engine: every KPI of the catalogue over the canonical store, with snapshots, goals,
alerts and survey imports.

This module is its public surface: the features above it (report, write-back, scheduler, CLI)
import from `metrics`, never from its modules (an import contract in pyproject.toml holds them
to it; docs/decisions/import-layers.md).

    compute_all(engine, config, *, now=None, only=None, force=False)         metrics.engine
    latest_values(engine, kpi=None, period=None, grain=None, key=None, period_start=None)
    value_history(engine, kpi, period, grain="org", key=None)
    last_computed_at(engine)                                                 metrics.snapshots
    metric_config(settings) -> MetricConfig                                  metrics.options
    goal_statuses(config, values, now) -> list[GoalStatus]                   metrics.goals
    import_surveys(engine, path, *, source, timezone) -> ImportReport        metrics.survey_import
    account_nps, latest_contact_answers, team_enps, rep_scores,
    open_deal_stages (and their row types)                                   metrics.records
    key_names, rep_names (the names of the rep and account grains' keys)     metrics.key_names
    period_start, period_end, shift, local_midnight_utc                      metrics.periods
    converted (an amount in the corporate currency, in SQL)                  metrics.money
    flag, lowered_in (portable SQL pieces)                                   metrics.portable
    in_unit, kpi_title, shown (a KPI and its values as people read them)     metrics.display
    REGISTRY (every Kpi declaration)                                         metrics.catalogue
"""

from metrics.catalogue import REGISTRY
from metrics.declaration import Kpi, KpiValue
from metrics.display import in_unit, kpi_title, shown
from metrics.engine import ComputeResult, compute_all
from metrics.goals import GoalStatus, goal_statuses
from metrics.key_names import KeyNames, key_names, rep_names
from metrics.money import converted
from metrics.options import MetricConfig, metric_config
from metrics.periods import local_midnight_utc, period_end, period_start, shift
from metrics.portable import flag, lowered_in
from metrics.records import (
    AccountNps,
    DealStage,
    LatestAnswer,
    RepScores,
    account_nps,
    latest_contact_answers,
    open_deal_stages,
    rep_scores,
    team_enps,
)
from metrics.snapshots import last_computed_at, latest_values, value_history
from metrics.survey_import import ImportReport, import_surveys

__all__ = [
    "REGISTRY",
    "AccountNps",
    "ComputeResult",
    "DealStage",
    "GoalStatus",
    "ImportReport",
    "KeyNames",
    "Kpi",
    "KpiValue",
    "LatestAnswer",
    "MetricConfig",
    "RepScores",
    "account_nps",
    "compute_all",
    "converted",
    "flag",
    "goal_statuses",
    "import_surveys",
    "in_unit",
    "key_names",
    "kpi_title",
    "last_computed_at",
    "latest_contact_answers",
    "latest_values",
    "local_midnight_utc",
    "lowered_in",
    "metric_config",
    "open_deal_stages",
    "period_end",
    "period_start",
    "rep_names",
    "rep_scores",
    "shift",
    "shown",
    "team_enps",
    "value_history",
]
