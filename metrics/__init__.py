"""The KPI engine: every KPI of the catalogue over the canonical store, with snapshots, goals,
alerts and survey imports.

Public surface (see each module):

    compute_all(engine, config, *, now=None, only=None, force=False)         metrics.engine
    latest_values(engine, kpi=None, period=None, grain=None, key=None, period_start=None)
    value_history(engine, kpi, period, grain="org", key=None)                 metrics.snapshots
    metric_config(settings) -> MetricConfig                                  metrics.options
    goal_statuses(config, values, now) -> list[GoalStatus]                   metrics.goals
    import_surveys(engine, path, *, source, timezone) -> ImportReport        metrics.survey_import
    account_nps, latest_contact_answers, team_enps, rep_scores,
    open_deal_stages                                                         metrics.records
    REGISTRY (every Kpi declaration)                                         metrics.catalogue
"""

from metrics.catalogue import REGISTRY
from metrics.declaration import Kpi, KpiValue
from metrics.engine import ComputeResult, compute_all
from metrics.goals import GoalStatus, goal_statuses
from metrics.options import MetricConfig, metric_config
from metrics.records import (
    account_nps,
    latest_contact_answers,
    open_deal_stages,
    rep_scores,
    team_enps,
)
from metrics.snapshots import latest_values, value_history
from metrics.survey_import import ImportReport, import_surveys

__all__ = [
    "REGISTRY", "ComputeResult", "GoalStatus", "ImportReport", "Kpi", "KpiValue", "MetricConfig",
    "account_nps", "compute_all", "goal_statuses", "import_surveys", "latest_contact_answers",
    "latest_values", "metric_config", "open_deal_stages", "rep_scores", "team_enps",
    "value_history",
]
