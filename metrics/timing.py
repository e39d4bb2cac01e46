"""Time KPIs: sales cycle, stage duration, time to acquisition, lead response, persistence, ramp."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, func, literal, select

from metrics.declaration import Derived, Kpi, KpiValue, Median, Ratio, Total, ValueIndex
from metrics.derivations import selling_share
from metrics.portable import days_between, flag, ratio
from metrics.quota import quotas_met
from metrics.run import Run

CYCLE_GRAINS = ("org", "team", "rep", "deal_type")


def ramp_to_quota(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
    """Mean days from each rep's start to the end of the first quota period at >= 100%.

    Per rep who started in the period: the earliest end (exclusive) of a quota period that ended
    after the start and in which the rep's attainment reached 1 (see `metrics.quota.quotas_met`);
    reps with none yet are counted as left out. The database aggregates; nothing loops over rows.
    """
    reps, met = run.table("kpi_rep"), quotas_met(run, values)
    period = reps.c["r_" + kind]
    first = (
        select(
            period.label("p"),
            reps.c.team,
            func.min(days_between(run.dialect, met.c.met_on, reps.c.started)).label("days"),
        )
        .select_from(
            reps.outerjoin(met, and_(met.c.rep == reps.c.rep, met.c.met_on > reps.c.started))
        )
        .where(period >= run.window.periods(kind)[0], period <= run.window.today)
        .group_by(reps.c.src, reps.c.rep, reps.c.team, period)
        .subquery("first")
    )
    key: Any = literal("org") if grain == "org" else first.c.team
    ramped = flag(first.c.days.is_not(None))
    query = (
        select(
            first.c.p,
            key,
            ratio(func.sum(first.c.days), func.sum(ramped)),
            func.sum(ramped),
            func.sum(flag(first.c.days.is_(None))),
        )
        .where(key.is_not(None))
        .group_by(first.c.p, key)
    )
    return [
        KpiValue(
            "rep_ramp_to_quota",
            kind,
            _day(start),
            grain,
            str(k),
            None if value is None else float(value),
            int(fed),
            int(left_out),
        )
        for start, k, value, fed, left_out in run.connection.execute(query)
    ]


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


KPIS = [
    Kpi(
        "sales_cycle_time",
        "Sales cycle time",
        "Mean days from creation to close date of deals won in the period.",
        "days",
        CYCLE_GRAINS,
        "deals.close_date (won deals)",
        "lower",
        "deal_closed",
        Ratio(
            lambda t: t.c.cycle_days,
            lambda t: flag(t.c.cycle_days.is_not(None)),
            lambda t: flag((t.c.is_won == 1) & t.c.cycle_days.is_(None)),
        ),
        "no won deal with a creation date in the period",
        notes="goal examples: cut by 5-8%",
    ),
    Kpi(
        "sales_cycle_median",
        "Sales cycle time (median)",
        "Median days from creation to close date of deals won in the period.",
        "days",
        CYCLE_GRAINS,
        "deals.close_date (won deals)",
        "lower",
        "deal_closed",
        Median(lambda t: t.c.cycle_days, lambda t: t.c.is_won == 1),
        "no won deal with a creation date in the period",
    ),
    Kpi(
        "stage_duration",
        "Stage duration",
        "Mean days deals spent in a stage, over stays that ended in the period.",
        "days",
        ("org", "rep", "stage"),
        "deal_stage_changes: when the deal left the stage",
        "lower",
        "stay",
        Ratio(lambda t: t.c.days, lambda t: literal(1)),
        "no stage stay ended in the period",
    ),
    Kpi(
        "time_to_acquisition",
        "Time to acquisition",
        "Mean days from the creation of the earliest converted lead (else contact) created by "
        "the first win to that win, for customers acquired in the period.",
        "days",
        ("org", "source"),
        "first won deal's close date",
        "lower",
        "acquired",
        Ratio(
            lambda t: t.c.acquisition_days,
            lambda t: flag(t.c.acquisition_days.is_not(None)),
            lambda t: flag(t.c.acquisition_days.is_(None)),
        ),
        "no customer acquired in the period has a lead or contact creation date",
    ),
    Kpi(
        "lead_response_time",
        "Lead response time",
        "Median hours from a lead's creation to its first outbound activity by a rep after it, "
        "for leads created in the period (on HubSpot a lead is the contact record).",
        "hours",
        ("org", "rep", "source"),
        "leads.created_at",
        "lower",
        "lead",
        Median(lambda t: t.c.response_hours, lambda t: literal(True)),
        "no lead created in the period has been contacted yet",
        notes="leads not contacted yet are counted as left out",
    ),
    Kpi(
        "follow_up_persistence",
        "Follow-up persistence",
        "Mean outbound activities after the first contact, until a reply or conversion, per "
        "contacted lead created in the period.",
        "count",
        ("org", "rep"),
        "leads.created_at",
        "higher",
        "lead",
        Ratio(lambda t: t.c.follow_ups, lambda t: flag(t.c.follow_ups.is_not(None))),
        "no lead created in the period was contacted",
    ),
    Kpi(
        "rep_ramp_time",
        "Rep ramp time",
        "Mean days from start (hire date, else user creation) to the first won deal, for reps "
        "who started in the period.",
        "days",
        ("org", "team"),
        "users.started_on, else created_at",
        "lower",
        "rep_start",
        Ratio(
            lambda t: t.c.ramp_days,
            lambda t: flag(t.c.ramp_days.is_not(None)),
            lambda t: flag(t.c.ramp_days.is_(None)),
        ),
        "no rep who started in the period has won a deal yet",
        notes="reps still without a win are counted as left out",
        needs=("start_dates",),
    ),
    Kpi(
        "rep_ramp_to_quota",
        "Rep ramp time to quota",
        "Mean days from start (hire date, else user creation) to the end of the first quota "
        "period in which the rep won at least the quota, for reps who started in the period.",
        "days",
        ("org", "team"),
        "users.started_on, else created_at",
        "lower",
        "",
        Derived(("sales_volume",), ramp_to_quota),
        "no rep who started in the period has reached a quota yet",
        notes="quota periods of any kind the rep has quotas for, the first to end after the start "
        "(end exclusive: Q1 ends on April 1); a period still running does not count yet; "
        "reps without one are counted as left out",
        needs=("start_dates",),
    ),
    Kpi(
        "selling_hours",
        "Selling time",
        "Hours of selling activities (configured kinds, calls and meetings by default).",
        "hours",
        ("org", "team", "rep"),
        "activities.occurred_at",
        "higher",
        "activity",
        Total(lambda t: t.c.selling_seconds / 3600.0, lambda t: flag(t.c.selling_seconds > 0)),
    ),
    Kpi(
        "selling_time_share",
        "Selling time share",
        "Hours of selling activities over the working hours of the people employed in the "
        "period, each from his start (to today in the current one).",
        "ratio",
        ("team", "rep"),
        "activities.occurred_at",
        "higher",
        "",
        Derived(("selling_hours",), selling_share),
        "no working time in the period",
        notes="typical 36%, goal 50%; working hours from metrics.working_hours",
    ),
]
