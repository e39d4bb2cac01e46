"""Alerts: a threshold crossed or a goal off pace, sent to the log and a webhook once per crossing.

Each (rule, key) has a state in `kpi_alert_state`. A notice goes out when the condition starts to
hold; nothing more while it keeps holding; the state clears when it stops, so the next crossing is
sent again. A webhook that fails is retried at the next computation while the crossing lasts.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy import Engine, select

from kpisync.formats import period_label
from kpisync.secrets import mask, read_secret
from metrics.declaration import KpiValue
from metrics.display import in_unit, kpi_title
from metrics.goals import goal_statuses
from metrics.key_names import KeyNames, key_names
from metrics.models import AlertState
from metrics.options import MetricConfig
from metrics.periods import period_start

log = logging.getLogger("kpisync.metrics.alerts")
STATE = AlertState.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Alert:
    rule: str
    key: str
    kpi: str
    period: str
    period_start: date
    value: float | None
    message: str


@dataclass(frozen=True)
class Check:
    alert: Alert
    crossed: bool


def subject(grain: str, key: str, names: KeyNames) -> str:
    """Whom a value is about, as a sales manager says it: "the org", "rep Olivia Baker"."""
    return "the org" if grain == "org" else f"{grain} {names.get((grain, key), key)}"


def threshold_checks(
    config: MetricConfig, values: list[KpiValue], now: datetime, names: KeyNames | None = None
) -> list[Check]:
    names = names or {}
    today = now.astimezone(config.zone).date()
    checks = []
    for rule in config.metrics.alerts:
        start = period_start(today, rule.period, config.calendar)
        for v in values:
            if (v.kpi, v.period, v.grain, v.period_start) != (
                rule.kpi,
                rule.period,
                rule.grain,
                start,
            ):
                continue
            if rule.key is not None and v.key != rule.key:
                continue
            bound = rule.above if rule.above is not None else rule.below
            crossed = v.value is not None and (
                v.value > rule.above if rule.above is not None else v.value < (rule.below or 0)
            )
            word = "above" if rule.above is not None else "below"
            message = (
                f"{rule.name}: {kpi_title(v.kpi)} of {subject(v.grain, v.key, names)}, "
                f"{period_label(start, v.period, config.calendar)}, is "
                f"{in_unit(v.kpi, v.value, config.currency)}, "
                f"{word} {in_unit(v.kpi, bound, config.currency)}"
            )
            checks.append(
                Check(Alert(rule.name, v.key, v.kpi, v.period, start, v.value, message), crossed)
            )
    return checks


def goal_checks(
    config: MetricConfig, values: list[KpiValue], now: datetime, names: KeyNames | None = None
) -> list[Check]:
    if not config.metrics.goal_alerts:
        return []
    names = names or {}
    checks = []
    for status in goal_statuses(config, values, now):
        goal = status.goal
        message = (
            f"goal {goal.name}: {kpi_title(goal.kpi)} of "
            f"{subject(goal.grain, goal.key, names)} is {status.status} (actual "
            f"{in_unit(goal.kpi, status.actual, config.currency)}, pace "
            f"{in_unit(goal.kpi, status.pace, config.currency)}, target "
            f"{in_unit(goal.kpi, goal.target, config.currency)})"
        )
        alert = Alert(
            f"goal:{goal.name}",
            goal.key,
            goal.kpi,
            goal.period,
            status.period_start,
            status.actual,
            message,
        )
        checks.append(Check(alert, status.status in ("off pace", "missed")))
    return checks


def watched_values(config: MetricConfig, values: list[KpiValue]) -> list[KpiValue]:
    """The values of the KPIs and grains that rules and goals watch (whose keys need names)."""
    watched = {(rule.kpi, rule.grain) for rule in config.metrics.alerts}
    watched |= {(goal.kpi, goal.grain) for goal in config.metrics.goals}
    return [v for v in values if (v.kpi, v.grain) in watched]


def watched_kpis(config: MetricConfig) -> set[str]:
    """The KPIs whose values threshold rules and goal alerts read."""
    goals = {goal.kpi for goal in config.metrics.goals} if config.metrics.goal_alerts else set()
    return {rule.kpi for rule in config.metrics.alerts} | goals


def evaluate_alerts(engine: Engine, config: MetricConfig, result: Any) -> list[Alert]:
    """Update alert states from `result` (a ComputeResult); returns the alerts sent this time."""
    names = key_names(engine, watched_values(config, result.values))
    checks = threshold_checks(config, result.values, result.as_of, names) + goal_checks(
        config, result.values, result.as_of, names
    )
    sent = []
    with engine.begin() as connection:
        states = {(r.rule, r.key): r for r in connection.execute(select(STATE))}
        for check in checks:
            state = states.get((check.alert.rule, check.alert.key))
            if not check.crossed:
                if state is not None and state.crossed:
                    save(connection, check.alert, crossed=False, delivered=False)
                continue
            if state is not None and state.crossed and state.delivered:
                continue
            log.warning("alert: %s", check.alert.message)
            delivered = post(config, check.alert)
            save(connection, check.alert, crossed=True, delivered=delivered)
            sent.append(check.alert)
    return sent


def save(connection: Any, alert: Alert, *, crossed: bool, delivered: bool) -> None:
    connection.execute(STATE.delete().where(STATE.c.rule == alert.rule, STATE.c.key == alert.key))
    connection.execute(
        STATE.insert().values(
            rule=alert.rule,
            key=alert.key,
            crossed=crossed,
            delivered=delivered,
            period_start=alert.period_start,
            value=alert.value,
            changed_at=datetime.now(UTC),
        )
    )


def webhook_url(config: MetricConfig) -> str | None:
    hook = config.metrics.webhook
    if hook.url_env:
        return read_secret(hook.url_env, key="metrics.webhook.url_env")
    return hook.url


def post(config: MetricConfig, alert: Alert) -> bool:
    """POST the alert as JSON; True when the webhook accepted it (or none is configured)."""
    url = webhook_url(config)
    if not url:
        return True
    payload = asdict(alert) | {"period_start": alert.period_start.isoformat()}
    try:
        response = httpx.post(url, json=payload, timeout=config.metrics.webhook.timeout_seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("alert webhook failed (will retry at the next computation): %s", mask(str(exc)))
        return False
    return True
