"""Goals: a target on any KPI, grain and period, with progress, pace and status.

Progress is actual / target. Pace is the value projected to the period's end at the current rate:
for additive KPIs (money, counts, hours) actual / elapsed share of the period; for rates, scores
and durations the current value itself. Status: achieved, on track, off pace, missed or no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from kpisync.calendars import GREGORIAN, Calendar
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.options import Goal, MetricConfig
from metrics.periods import period_end, period_start

ADDITIVE_UNITS = {"money", "count", "hours"}


@dataclass(frozen=True)
class GoalStatus:
    goal: Goal
    period_start: date
    actual: float | None
    progress: float | None
    pace: float | None
    status: str  # achieved | on track | off pace | missed | no data
    reason: str | None = None


def elapsed_share(
    start: date, kind: str, now: datetime, zone: ZoneInfo, calendar: Calendar = GREGORIAN
) -> float:
    begin = datetime.combine(start, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(period_end(start, kind, calendar), time(0), tzinfo=zone).astimezone(UTC)
    share = (now - begin).total_seconds() / (end - begin).total_seconds()
    return min(max(share, 0.0), 1.0)


def goal_status(
    goal: Goal, value: KpiValue | None, config: MetricConfig, now: datetime
) -> GoalStatus:
    kpi = REGISTRY[goal.kpi]
    start = goal.start or period_start(
        now.astimezone(config.zone).date(), goal.period, config.calendar
    )
    if value is None or value.value is None:
        reason = value.reason if value is not None else "no value computed for this period"
        return GoalStatus(goal, start, None, None, None, "no data", reason)
    actual = value.value
    share = elapsed_share(start, goal.period, now, config.zone, config.calendar)
    additive = kpi.unit in ADDITIVE_UNITS
    pace = actual / share if additive and share > 0 else actual
    higher = kpi.direction != "lower"
    met = actual >= goal.target if higher else actual <= goal.target
    on_pace = pace >= goal.target if higher else pace <= goal.target
    progress = actual / goal.target if goal.target else None
    if share >= 1.0:
        status = "achieved" if met else "missed"
    elif met and additive and higher:
        status = "achieved"  # a running total only grows
    else:
        status = "on track" if on_pace else "off pace"
    return GoalStatus(goal, start, actual, progress, pace, status)


def goal_statuses(config: MetricConfig, values: list[KpiValue], now: datetime) -> list[GoalStatus]:
    """The status of every configured goal, from freshly computed (or stored) values."""
    by_key = {(v.kpi, v.period, v.period_start, v.grain, v.key): v for v in values}
    out = []
    for goal in config.metrics.goals:
        if goal.kpi not in REGISTRY:
            out.append(
                GoalStatus(
                    goal,
                    goal.start or date.min,
                    None,
                    None,
                    None,
                    "no data",
                    f"unknown KPI {goal.kpi!r}",
                )
            )
            continue
        start = goal.start or period_start(
            now.astimezone(config.zone).date(), goal.period, config.calendar
        )
        value = by_key.get((goal.kpi, goal.period, start, goal.grain, goal.key))
        out.append(goal_status(goal, value, config, now))
    return out
