"""Gathering a report from the store: the KPI engine's stored values, goals, surveys and sync runs.

Numbers come from the KPI engine (`metrics.snapshots.latest_values`, `metrics.goals`); nothing
here re-derives a KPI. Values are read per grain and period, never all at once, so a large org's
account-grain values are not loaded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, func, select

from kpisync.config import Settings
from kpisync.report.content import GoalLine, Point, Report, RepRow, Series
from kpisync.report.deals import biggest_wins, rep_names
from kpisync.report.formats import period_label
from kpisync.report.freshness import source_freshness
from kpisync.report.options import ReportSettings, report_settings
from kpisync.report.surveys import enps_groups, nps_distribution
from kpisync.texts import translate
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.goals import goal_statuses
from metrics.models import KpiComputation
from metrics.options import MetricConfig, metric_config
from metrics.periods import period_start, shift
from metrics.snapshots import latest_values

LEADERBOARD_KPIS = ("sales_volume", "win_rate", "average_deal_size", "quota_attainment",
                    "new_opportunities")


def build_report(settings: Settings, engine: Engine, *, now: datetime,
                 period: str | None = None) -> Report:
    """Everything the report shows, as of `now`, for the period kind `period` (or the setting)."""
    options = report_settings(settings)
    config = metric_config(settings)
    kind = period or options.period
    now = now.astimezone(UTC)
    start = period_start(now.astimezone(config.zone).date(), kind, config.calendar)
    starts = [shift(start, kind, -back, config.calendar) for back in
              reversed(range(options.trend_periods.get(kind, 12)))]  # type: ignore[call-overload]
    wanted = dict.fromkeys((*options.tiles, *options.trends))
    org = {name: org_series(engine, name, kind, starts, settings.core.locale) for name in wanted}
    return Report(
        title=options.title, period=kind, period_start=start,
        period_label=period_label(start, kind, config.calendar, settings.core.locale),
        generated_at=now.astimezone(config.zone),
        timezone=config.timezone, currency=config.currency,
        computed_at=last_computation(engine, config),
        tiles=tuple(org[name] for name in options.tiles),
        trends=tuple(org[name] for name in options.trends),
        leaderboard=leaderboard(engine, kind, start, options),
        wins=biggest_wins(engine, config, kind, start, options.wins_shown),
        goals=goals(engine, config, now),
        nps=nps_distribution(engine, config, kind, start, now),
        enps=enps_groups(engine, config, kind, start, now),
        anonymity_minimum=config.metrics.anonymity_minimum,
        freshness=source_freshness(engine, sorted(settings.sources), now,
                                   options.stale_after_hours),
        locale=settings.core.locale, calendar=config.calendar,
    )


def org_series(engine: Engine, name: str, kind: str, starts: list[date],
               locale: str = "en") -> Series:
    """The KPI's org values over `starts`; a period without a stored value is a gap."""
    kpi = REGISTRY[name]
    stored = {v.period_start: v for v in latest_values(engine, name, kind, "org", "org")}
    points = []
    for start in starts:
        value = stored.get(start)
        reason = value.reason if value else "not computed for this period"
        points.append(Point(start, value.value if value else None, reason,
                            partial=start == starts[-1]))
    return Series(kpi.name, translate(kpi.title, locale), translate(kpi.definition, locale),
                  kpi.unit, kpi.direction, tuple(points))


def leaderboard(engine: Engine, kind: str, start: date, options: ReportSettings) -> tuple[RepRow, ...]:
    """Reps ranked by revenue won in the period, then by win rate."""
    values: dict[str, dict[str, KpiValue]] = {}
    for name in LEADERBOARD_KPIS:
        for value in latest_values(engine, name, kind, "rep", period_start=start):
            values.setdefault(value.key, {})[name] = value
    people = rep_names(engine, sorted(values))
    rows = []
    for key, mine in values.items():
        name, team = people.get(key, (key, None))
        rows.append(RepRow(
            key=key, name=name, team=team, revenue=number(mine, "sales_volume"),
            won=count(mine, "sales_volume"), win_rate=number(mine, "win_rate"),
            closed=count(mine, "win_rate"), average_deal=number(mine, "average_deal_size"),
            attainment=number(mine, "quota_attainment"),
            new_opportunities=number(mine, "new_opportunities")))
    rows.sort(key=lambda r: (-(r.revenue or 0.0), -(r.win_rate or 0.0), r.name))
    return tuple(rows[:options.leaderboard_size])


def number(values: dict[str, KpiValue], kpi: str) -> float | None:
    found = values.get(kpi)
    return found.value if found else None


def count(values: dict[str, KpiValue], kpi: str) -> int | None:
    found = values.get(kpi)
    return found.count if found else None


def goals(engine: Engine, config: MetricConfig, now: datetime) -> tuple[GoalLine, ...]:
    """Progress, pace and status of every configured goal, from the stored values."""
    values: list[KpiValue] = []
    for goal in config.metrics.goals:
        if goal.kpi in REGISTRY:
            values += latest_values(engine, goal.kpi, goal.period, goal.grain, goal.key)
    out = []
    for status in goal_statuses(config, values, now):
        name = status.goal.kpi
        known = name in REGISTRY
        out.append(GoalLine(status, REGISTRY[name].title if known else name,
                            REGISTRY[name].unit if known else ""))
    return tuple(out)


def last_computation(engine: Engine, config: MetricConfig) -> datetime | None:
    table = KpiComputation.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        found = connection.execute(select(func.max(table.c.finished_at))).scalar()
    return found.astimezone(config.zone) if found else None
