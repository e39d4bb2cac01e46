"""NPS and eNPS answer distributions (how many answered 0, 1 … 10) for the report's period.

The scores themselves are the KPI engine's. A distribution counts the same answers the engine
counts (live, scored 0-10, answered in the period in the org's zone and not after `now`).

eNPS is anonymous: a group's distribution is shown only where the engine shows the group's eNPS
(which already hides groups under the minimum and groups that could be worked out by differencing,
see `metrics.anonymity`), only when it has at least the minimum of answers, and only when its
answers are exactly those the engine counted: if answers changed since the last computation, the
engine's differencing check no longer covers them, so the group waits for the next computation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import Engine, func, select

from kpisync.report.content import Distribution
from kpisync.store.models import SurveyResponse
from metrics import KpiValue, MetricConfig, latest_values, local_midnight_utc, period_end

ANSWERS = SurveyResponse.__table__  # type: ignore[attr-defined]
CHANGED = "hidden: answers changed since the KPIs were computed; shown after the next computation"


def answer_counts(
    engine: Engine, config: MetricConfig, kind: str, period: str, start: date, now: datetime
) -> dict[str | None, tuple[int, ...]]:
    """Team (None for NPS or no team) -> answers per score 0..10 in the period."""
    begin = local_midnight_utc(start, config.zone)
    end = min(local_midnight_utc(period_end(start, period, config.calendar), config.zone), now)
    s = ANSWERS
    query = (
        select(s.c.team, s.c.score, func.count())
        .where(
            s.c.kind == kind,
            s.c.deleted_at.is_(None),
            s.c.answered_at >= begin,
            s.c.answered_at <= end,
            s.c.score >= 0,
            s.c.score <= 10,
        )
        .group_by(s.c.team, s.c.score)
    )
    counts: dict[str | None, list[int]] = defaultdict(lambda: [0] * 11)
    with engine.connect() as connection:
        for team, score, n in connection.execute(query):
            counts[team if kind == "enps" else None][int(score)] += int(n)
    return {team: tuple(scores) for team, scores in counts.items()}


def nps_distribution(
    engine: Engine, config: MetricConfig, period: str, start: date, now: datetime
) -> Distribution | None:
    """The org's NPS answers of the period by score, with the engine's NPS; None without answers."""
    counts = answer_counts(engine, config, "nps", period, start, now).get(None)
    stored = latest_values(engine, "nps", period, "org", "org", period_start=start)
    score = stored[0].value if stored else None
    if counts is None:
        return None
    return Distribution("org", "org", score, counts)


def enps_groups(
    engine: Engine, config: MetricConfig, period: str, start: date, now: datetime
) -> tuple[Distribution, ...]:
    """The org and each team, as the engine stored them for the period: shown or hidden."""
    minimum = config.metrics.anonymity_minimum
    stored = [
        v
        for grain in ("org", "team")
        for v in latest_values(engine, "enps", period, grain, period_start=start)
    ]
    if not stored:
        return ()
    by_team = answer_counts(engine, config, "enps", period, start, now)
    out = []
    for value in sorted(stored, key=lambda v: (v.grain != "org", v.key)):
        counts = summed(by_team.values()) if value.grain == "org" else by_team.get(value.key)
        out.append(guarded(value, counts, minimum))
    return tuple(out)


def guarded(value: KpiValue, counts: tuple[int, ...] | None, minimum: int) -> Distribution:
    if value.value is None:
        return Distribution(value.grain, value.key, None, (), value.reason or "hidden")
    answers = sum(counts or ())
    if counts is None or answers != value.count or answers < minimum:
        return Distribution(value.grain, value.key, None, (), CHANGED)
    return Distribution(value.grain, value.key, value.value, counts)


def summed(groups: Iterable[tuple[int, ...]]) -> tuple[int, ...] | None:
    totals = [0] * 11
    seen = False
    for counts in groups:
        seen = True
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    return tuple(totals) if seen else None
