"""Every table of settings.toml, validated by its owner, when a command starts.

kpisync.config checks [kpisync] and [sources.*]; the other tables belong to the stages that read
them (metrics, write-back, report, scheduler, alerts, budgets). Each command checks them all
first, so a mistake in [writeback] stops `kpisync sync` at once, with the key it names, instead
of an unattended run failing at its write-back stage hours later. The same holds for each
source's own options, against the model its connector declares.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

from kpisync.alerts_ops import alert_settings
from kpisync.budget import OrgBudget, org_budgets
from kpisync.config import Settings, validate_model
from kpisync.connector import options_model_of, reports_daily_limit
from kpisync.errors import ConfigError
from kpisync.registry import connector_factory
from kpisync.report.options import report_settings
from kpisync.scheduler.options import scheduler_settings
from metrics import REGISTRY, metric_config
from writeback import mapped_sources, source_plan

TABLES = ("kpisync", "sources", "metrics", "writeback", "report", "scheduler", "alerts", "budgets")


def check_settings(settings: Settings) -> None:
    """Raise the ConfigError of the first mistake anywhere in `settings`."""
    for name, config in sorted(settings.sources.items()):
        check_source_options(name, config.type, config.options)
    for name in settings.extra or {}:
        if name not in TABLES:
            raise ConfigError(
                f"[{name}]: unknown table{did_you_mean(name, TABLES)}",
                hint="tables: " + ", ".join(f"[{table}]" for table in TABLES),
            )
    metrics = metric_config(settings).metrics
    for index, goal in enumerate(metrics.goals):
        check_kpi_and_grain(f"metrics.goals[{index}] ({goal.name})", goal.kpi, goal.grain)
    for index, alert in enumerate(metrics.alerts):
        check_kpi_and_grain(f"metrics.alerts[{index}] ({alert.name})", alert.kpi, alert.grain)
    for source in mapped_sources(settings):
        source_plan(settings, source)
    report_settings(settings)
    scheduler_settings(settings)
    alert_settings(settings)
    for org, budget in org_budgets(settings).items():
        check_budget_limit(settings, org, budget)


def check_source_options(name: str, kind: str, options: dict[str, Any]) -> None:
    """A source's connector type must be installed, and its options must be ones the connector
    takes: a misspelt `min_api_remaining` would otherwise leave its default in force, and a
    worker would start and fail every run. A connector declares them as its `options_model`,
    validated here without reading a secret or making a call."""
    try:
        factory = connector_factory(kind)
    except ConfigError as error:
        raise ConfigError(f"sources.{name}.type: {error.message}", hint=error.hint) from None
    model = options_model_of(factory)
    if model is not None:
        validate_model(model, options, prefix=f"sources.{name}")


def check_budget_limit(settings: Settings, org: str, budget: OrgBudget) -> None:
    """A budget without `daily_allowance` takes the limit the CRM reports; a connector that
    reports none would fail each run at its first judgement, so it is refused here. A connector
    that reports it (Capability.REPORTS_ALLOWANCE) says in which setups through
    `reports_daily_limit(options)`."""
    if budget.settings.daily_allowance is not None:
        return
    for source in budget.settings.sources:
        config = settings.source(source)
        kind, factory = config.type, connector_factory(config.type)
        if not reports_daily_limit(factory, config.options):
            raise ConfigError(
                f"budgets.{org}.daily_allowance: not set, and {source} ({kind}) "
                "does not report the org's daily limit",
                hint="set daily_allowance to the calls per day the CRM allows",
            )


def check_kpi_and_grain(key: str, kpi: str, grain: str) -> None:
    if kpi not in REGISTRY:
        raise ConfigError(
            f"{key}.kpi: unknown KPI {kpi!r}{did_you_mean(kpi, REGISTRY.names())}",
            hint="known KPIs: " + ", ".join(REGISTRY.names()),
        )
    grains = REGISTRY[kpi].grains
    if grain not in grains:
        raise ConfigError(
            f"{key}.grain: {kpi} has no grain {grain!r}", hint="its grains: " + ", ".join(grains)
        )


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
