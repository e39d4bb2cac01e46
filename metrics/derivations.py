"""Formulas over other KPIs' aggregated values and over inputs kept outside the CRM.

Nothing here reads a record: each function combines values the database already aggregated
(revenue, counts, rates) with quotas, spend or working hours from settings. A missing or zero
denominator gives a value of None with a reason, never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from kpisync.store.models import User
from metrics.declaration import KpiValue, ValueIndex
from metrics.options import Quota
from metrics.periods import period_end, shift
from metrics.run import Run

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Derive = Callable[[Run, ValueIndex, str, str], list[KpiValue]]


def past_periods(run: Run, kind: str) -> list[date]:
    return [start for start in run.window.periods(kind) if start <= run.window.today]


def result(
    kpi: str,
    kind: str,
    grain: str,
    start: date,
    key: str,
    value: float | None,
    reason: str | None,
    count: int | None = None,
) -> KpiValue:
    return KpiValue(
        kpi,
        kind,
        start,
        grain,
        key,
        value,
        count,
        0 if count is not None else None,
        None if value is not None else reason,
    )


def growth(source: str, *, years: bool) -> Derive:
    """(this period − the previous one, or the same one a year before) / that one.

    The earlier period may lie before the shown window: its input is computed over the window's
    lead-in year (see `Window.lead_in`). A year's year-over-year growth is the previous year's.
    """

    def derive(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
        steps = {"week": 52, "month": 12, "quarter": 4, "year": 1}[kind] if years else 1
        name = (
            f"{source}_growth"
            if source != "sales_volume"
            else ("revenue_growth_yoy" if years else "revenue_growth")
        )
        found = values.get(source, kind, grain)
        keys = {key for (_, key) in found} or ({"org"} if grain == "org" else set())
        out = []
        for start in past_periods(run, kind):
            before = shift(start, kind, -steps, run.window.calendar)
            for key in sorted(keys):
                now_value = found.get((start, key))
                prior = found.get((before, key))
                if now_value is None and prior is None:
                    continue
                current = now_value.value if now_value else 0.0
                reason = growth_gap(run, before, current, prior)
                out.append(
                    result(name, kind, grain, start, key, None, reason)
                    if reason
                    else result(
                        name,
                        kind,
                        grain,
                        start,
                        key,
                        (current - prior.value) / prior.value,  # type: ignore[operator,union-attr]
                        None,
                    )
                )
        return out

    return derive


def growth_gap(run: Run, before: date, current: float | None, prior: KpiValue | None) -> str | None:
    """Why growth has no value, naming the period whose input is missing; None when it has one."""
    if before < run.window.lead_in:
        return "the earlier period is before the data kept for the computation"
    if current is None:
        return "this period's value is unknown (its records lack a usable input)"
    if prior is None or prior.value is None:
        return "the earlier period's value is unknown"
    if prior.value == 0:
        return "the earlier period's value is 0"
    return None


def rep_keys(run: Run) -> dict[str, tuple[str, str | None]]:
    """Rep external id and email (lowercased) -> (external id, team), for matching inputs."""
    u = User.__table__  # type: ignore[attr-defined]
    rows = run.connection.execute(
        select(u.c.external_id, u.c.email, u.c.team).where(u.c.deleted_at.is_(None))
    ).all()
    keys: dict[str, tuple[str, str | None]] = {}
    for external_id, email, team in rows:
        keys[external_id] = (external_id, team)
        if email:
            keys[email.lower()] = (external_id, team)
    return keys


def quota_table(run: Run, kind: str, quotas: Sequence[Quota]) -> dict[tuple[str, date, str], float]:
    """(grain, period start, key) -> quota; teams and the org sum their reps unless given."""
    reps = rep_keys(run)
    table: dict[tuple[str, date, str], float] = {}
    given_teams = {(q.start, q.team) for q in quotas if q.team and q.period == kind}
    for quota in quotas:
        if quota.period != kind:
            continue
        if quota.team:
            table[("team", quota.start, quota.team)] = quota.amount
            table[("org", quota.start, "org")] = (
                table.get(("org", quota.start, "org"), 0) + quota.amount
            )
            continue
        given = quota.rep or ""
        rep, team = reps.get(given, reps.get(given.lower(), (given, None)))
        table[("rep", quota.start, rep)] = quota.amount
        if team and (quota.start, team) not in given_teams:
            table[("team", quota.start, team)] = (
                table.get(("team", quota.start, team), 0) + quota.amount
            )
        if (quota.start, team) not in given_teams:
            table[("org", quota.start, "org")] = (
                table.get(("org", quota.start, "org"), 0) + quota.amount
            )
    return table


def attainment(
    run: Run, values: ValueIndex, kind: str, grain: str, quotas: Sequence[Quota]
) -> list[KpiValue]:
    """Won revenue over `quotas` (see metrics.quota for where they come from)."""
    revenue = values.get("sales_volume", kind, grain)
    out = []
    for (g, start, key), quota in sorted(quota_table(run, kind, quotas).items()):
        if g != grain or start not in past_periods(run, kind):
            continue
        won = revenue.get((start, key))
        value = (won.value or 0.0) if won else 0.0
        out.append(
            result(
                "quota_attainment",
                kind,
                grain,
                start,
                key,
                value / quota if quota else None,
                "the quota is 0",
                won.count if won else 0,
            )
        )
    return out


def cac(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
    spend: dict[tuple[date, str], float] = {}
    for entry in run.config.spend:
        if entry.period != kind:
            continue
        key = {"org": "org", "team": entry.team, "region": entry.region}[grain]
        if key is not None:
            spend[(entry.start, key)] = spend.get((entry.start, key), 0.0) + entry.amount
    customers = values.get("new_customers", kind, grain)
    out = []
    for (start, key), amount in sorted(spend.items()):
        if start not in past_periods(run, kind):
            continue
        found = customers.get((start, key))
        count = int(found.value or 0) if found else 0
        out.append(
            result(
                "cac",
                kind,
                grain,
                start,
                key,
                amount / count if count else None,
                "no new customers in the period",
                count,
            )
        )
    return out


def arpu(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
    out = []
    revenue = values.get("sales_volume", kind, grain)
    for (start, key), active in sorted(values.get("active_customers", kind, grain).items()):
        won = revenue.get((start, key))
        total = (won.value or 0.0) if won else 0.0
        out.append(
            result(
                "arpu",
                kind,
                grain,
                start,
                key,
                total / active.value if active.value else None,
                "no active customers in the period",
                int(active.value or 0),
            )
        )
    return out


def clv(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
    """ARPU × expected lifetime in periods (1 / churn rate) × margin where it is known."""
    out = []
    churn, margin = values.get("churn_rate", kind, grain), values.get("margin", kind, grain)
    for (start, key), per_customer in sorted(values.get("arpu", kind, grain).items()):
        rate = churn.get((start, key))
        share = margin.get((start, key))
        if per_customer.value is None or rate is None or not rate.value:
            out.append(
                result(
                    "clv",
                    kind,
                    grain,
                    start,
                    key,
                    None,
                    "no churn in the period (lifetime unbounded) or no revenue data",
                )
            )
            continue
        factor = share.value if share is not None and share.value is not None else 1.0
        out.append(
            result(
                "clv",
                kind,
                grain,
                start,
                key,
                per_customer.value / rate.value * factor,
                None,
                per_customer.count,
            )
        )
    return out


def ltv_cac(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
    out = []
    costs = values.get("cac", kind, grain)
    for (start, key), lifetime in sorted(values.get("clv", kind, grain).items()):
        cost = costs.get((start, key))
        if lifetime.value is None or cost is None or not cost.value:
            out.append(
                result(
                    "ltv_cac", kind, grain, start, key, None, "CLV or CAC is unknown for the period"
                )
            )
            continue
        out.append(result("ltv_cac", kind, grain, start, key, lifetime.value / cost.value, None))
    return out


def working_days(run: Run, first: date, end: date) -> int:
    """Configured working days from `first` to `end` (exclusive), never past today."""
    days = {DAYS.index(day) for day in run.config.metrics.working_hours.days}
    end = min(end, run.window.today + timedelta(days=1))
    return sum(
        1
        for n in range(max((end - first).days, 0))
        if (first + timedelta(days=n)).weekday() in days
    )


@dataclass(frozen=True)
class Member:
    rep: str
    team: str | None
    started: date | None  # hire date, else the user's creation (local date)
    active: bool


def members(run: Run) -> list[Member]:
    """Every live user with the date from which working time counts for them."""
    u = User.__table__  # type: ignore[attr-defined]
    rows = run.connection.execute(
        select(u.c.external_id, u.c.team, u.c.started_on, u.c.created_at, u.c.is_active).where(
            u.c.deleted_at.is_(None)
        )
    ).all()
    out = []
    for rep, team, started_on, created_at, active in rows:
        started = started_on if isinstance(started_on, date) else None
        if started is None and created_at is not None:
            moment = (
                created_at
                if isinstance(created_at, datetime)
                else datetime.fromisoformat(str(created_at))
            )
            started = (
                (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
                .astimezone(run.config.zone)
                .date()
            )
        out.append(Member(rep, team, started, bool(active)))
    return out


def selling_share(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
    """Selling hours over the working hours of the people employed in the period.

    A rep's working time runs from the later of the period's start and the rep's start; a rep
    who started after the period has none there and no value; an active rep without selling
    activity in a period he worked reads 0. A team's working time sums its active members'.
    """
    hours_per_day = run.config.metrics.working_hours.hours_per_day
    selling = values.get("selling_hours", kind, grain)
    people = members(run)
    days: dict[tuple[date, date], int] = {}  # reps mostly share a start: count each span once
    out = []
    for start in past_periods(run, kind):
        end = period_end(start, kind, run.window.calendar)
        available: dict[str, float] = {}
        for person in people:
            key = person.team if grain == "team" else person.rep
            if key is None or not (person.active or (start, person.rep) in selling):
                continue
            first = max(start, person.started or start)
            if (first, end) not in days:
                days[(first, end)] = working_days(run, first, end)
            available[key] = available.get(key, 0.0) + days[(first, end)] * hours_per_day
        for key in sorted(available.keys() | {k for (s, k) in selling if s == start}):
            found = selling.get((start, key))
            hours = available.get(key, 0.0)
            if not hours and found is None:
                continue  # not employed in the period, and nothing logged
            out.append(
                result(
                    "selling_time_share",
                    kind,
                    grain,
                    start,
                    key,
                    ((found.value or 0.0) if found else 0.0) / hours if hours else None,
                    "no working time in the period",
                    found.count if found else 0,
                )
            )
    return out
