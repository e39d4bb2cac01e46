"""Gathering a report from the store: the KPI engine's stored values, goals, surveys and sync runs.

Numbers come from the KPI engine (`metrics.snapshots.latest_values`, `metrics.goals`); nothing
here re-derives a KPI. Values are read per grain and period, never all at once, so a large org's
account-grain values are not loaded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, func, select

from kpisync.calendars import GREGORIAN, Calendar
from kpisync.config import Settings
from kpisync.formats import period_label
from kpisync.report.content import GoalLine, Point, Report, RepRow, Series
from kpisync.report.deals import biggest_wins
from kpisync.report.freshness import source_freshness
from kpisync.report.options import ReportSettings, report_settings
from kpisync.report.surveys import enps_groups, nps_distribution
from kpisync.store.models import StoreRevision
from kpisync.texts import translate
from metrics import (
    REGISTRY,
    KpiValue,
    MetricConfig,
    goal_statuses,
    last_computed_at,
    latest_values,
    local_midnight_utc,
    metric_config,
    period_start,
    rep_names,
    shift,
)

LEADERBOARD_KPIS = (
    "sales_volume",
    "win_rate",
    "average_deal_size",
    "quota_attainment",
    "new_opportunities",
)


def build_report(
    settings: Settings,
    engine: Engine,
    *,
    now: datetime,
    period: str | None = None,
    latest_with_data: bool = False,
) -> Report:
    """Everything the report shows, as of `now`, for the period kind `period` (or the setting):
    the period holding `now`, or with `latest_with_data` the newest one (up to `now`'s) that has
    any org value of the tiles."""
    options = report_settings(settings)
    config = metric_config(settings)
    kind = period or options.period
    now = now.astimezone(UTC)
    cal = config.calendar
    current = period_start(now.astimezone(config.zone).date(), kind, cal)
    length = options.trend_periods.get(kind, 12)  # type: ignore[call-overload]
    start, chosen = current, ""
    if latest_with_data:
        start = newest_with_data(engine, options.tiles, kind, current, length, cal)
        if start != current:
            chosen = (
                f"the latest {kind} with data; "
                f"{period_label(current, kind, cal, settings.core.locale)} has none yet "
                f"(--as-of picks another)"
            )
    complete = local_midnight_utc(shift(start, kind, 1, cal), config.zone) <= now
    starts = [shift(start, kind, -back, cal) for back in reversed(range(length))]
    wanted = dict.fromkeys((*options.tiles, *options.trends))
    org = {
        name: org_series(engine, name, kind, starts, settings.core.locale, running=not complete)
        for name in wanted
    }
    computed_at = last_computation(engine, config)
    changed = store_changed_at(engine)
    return Report(
        complete=complete,
        chosen=chosen,
        store_changed_at=changed.astimezone(config.zone)
        if changed and computed_at and changed > computed_at
        else None,
        title=options.title,
        period=kind,
        period_start=start,
        period_label=period_label(start, kind, config.calendar, settings.core.locale),
        generated_at=now.astimezone(config.zone),
        timezone=config.timezone,
        currency=config.currency,
        computed_at=computed_at,
        tiles=tuple(org[name] for name in options.tiles),
        trends=tuple(org[name] for name in options.trends),
        leaderboard=leaderboard(engine, kind, start, options),
        wins=biggest_wins(engine, config, kind, start, options.wins_shown),
        goals=goals(engine, config, now),
        nps=nps_distribution(engine, config, kind, start, now),
        enps=enps_groups(engine, config, kind, start, now),
        anonymity_minimum=config.metrics.anonymity_minimum,
        freshness=source_freshness(
            engine, sorted(settings.sources), now, options.stale_after_hours
        ),
        locale=settings.core.locale,
        calendar=config.calendar,
    )


def newest_with_data(
    engine: Engine,
    names: tuple[str, ...] | list[str],
    kind: str,
    current: date,
    back: int,
    calendar: Calendar = GREGORIAN,
) -> date:
    """The newest period start, from `current` back `back` periods, where at least half the
    KPIs of `names` have an org value; `current` when none has."""
    for steps in range(back):
        start = shift(current, kind, -steps, calendar)
        shown = sum(
            any(
                v.value is not None
                for v in latest_values(engine, name, kind, "org", "org", period_start=start)
            )
            for name in names
        )
        if shown and 2 * shown >= len(names):
            return start
    return current


def store_changed_at(engine: Engine) -> datetime | None:
    """When any source's records last changed in the store."""
    table = StoreRevision.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        found: datetime | None = connection.execute(select(func.max(table.c.changed_at))).scalar()
    return found


def org_series(
    engine: Engine,
    name: str,
    kind: str,
    starts: list[date],
    locale: str = "en",
    *,
    running: bool = True,
) -> Series:
    """The KPI's org values over `starts`; a period without a stored value is a gap; the last
    is partial when `running`."""
    kpi = REGISTRY[name]
    stored = {v.period_start: v for v in latest_values(engine, name, kind, "org", "org")}
    points = []
    for start in starts:
        value = stored.get(start)
        reason = value.reason if value else "not computed for this period"
        points.append(
            Point(
                start,
                value.value if value else None,
                reason,
                partial=running and start == starts[-1],
            )
        )
    return Series(
        kpi.name,
        translate(kpi.title, locale),
        translate(kpi.definition, locale),
        kpi.unit,
        kpi.direction,
        tuple(points),
    )


def leaderboard(
    engine: Engine, kind: str, start: date, options: ReportSettings
) -> tuple[RepRow, ...]:
    """Reps ranked by revenue won in the period, then by win rate."""
    values: dict[str, dict[str, KpiValue]] = {}
    for name in LEADERBOARD_KPIS:
        for value in latest_values(engine, name, kind, "rep", period_start=start):
            values.setdefault(value.key, {})[name] = value
    people = rep_names(engine, sorted(values))
    rows = []
    for key, mine in values.items():
        name, team = people.get(key, (key, None))
        rows.append(
            RepRow(
                key=key,
                name=name,
                team=team,
                revenue=number(mine, "sales_volume"),
                won=count(mine, "sales_volume"),
                win_rate=number(mine, "win_rate"),
                closed=count(mine, "win_rate"),
                average_deal=number(mine, "average_deal_size"),
                attainment=number(mine, "quota_attainment"),
                new_opportunities=number(mine, "new_opportunities"),
            )
        )
    rows.sort(key=lambda r: (-(r.revenue or 0.0), -(r.win_rate or 0.0), r.name))
    return tuple(rows[: options.leaderboard_size])


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
        out.append(
            GoalLine(
                status,
                REGISTRY[name].title if known else name,
                REGISTRY[name].unit if known else "",
            )
        )
    return tuple(out)


def last_computation(engine: Engine, config: MetricConfig) -> datetime | None:
    found = last_computed_at(engine)
    return found.astimezone(config.zone) if found else None
